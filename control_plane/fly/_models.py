"""Typed views of the Fly Machines API objects the control plane uses.

Each model is the subset of a spec schema (``../shared/specs/fly-machines-openapi.json``)
that we read or write; unknown fields are kept (``extra="allow"``) so a config read from
Fly and sent back in ``Machines_update`` loses nothing. ``null`` where a list or map is
expected reads as empty, as Fly sends ``"env": null``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = [
    "App",
    "CheckStatus",
    "ImageRef",
    "Lease",
    "Machine",
    "MachineCheck",
    "MachineConfig",
    "MachineEvent",
    "MachineGuest",
    "MachineInit",
    "MachineRestart",
    "MachineService",
    "StopConfig",
    "WaitResult",
]

#: Metadata key under which the local engine publishes a Machine's HTTP port.
ENGINE_PORT_METADATA_KEY = "fly_engine_port"
#: Environment variable the trader machine reads its HTTP port from.
HTTP_PORT_ENV = "HTTP_PORT"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    def to_api(self) -> dict[str, Any]:
        """JSON body for the API: unset/None fields left out, unknown fields kept."""
        return self.model_dump(mode="json", exclude_none=True)


class MachineGuest(_Model):
    """Spec ``fly.MachineGuest``: ``cpu_kind`` (``shared``/``performance``), ``cpus``, ``memory_mb`` (MB)."""

    cpu_kind: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None


class MachineInit(_Model):
    """Spec ``fly.MachineInit``: ``cmd`` replaces the image's CMD, ``exec`` the whole command."""

    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    exec: list[str] | None = None


class MachineRestart(_Model):
    """Spec ``fly.MachineRestart``: ``policy`` ``no``/``always``/``on-failure``, ``max_retries``."""

    policy: str | None = None
    max_retries: int | None = None


class StopConfig(_Model):
    """Spec ``fly.StopConfig``: ``signal`` (e.g. ``SIGTERM``) and ``timeout`` (``"30s"``)."""

    signal: str | None = None
    timeout: str | int | None = None


class MachineService(_Model):
    """Spec ``fly.MachineService`` (public proxy services); ports kept as raw objects."""

    internal_port: int | None = None
    protocol: str | None = None
    ports: list[dict[str, Any]] | None = None


class MachineCheck(_Model):
    """Spec ``fly.MachineCheck``: ``type`` (``http``/``tcp``), ``port``, ``path``, ``interval``,
    ``timeout`` and ``grace_period`` as Go durations (``"15s"``)."""

    type: str | None = None
    port: int | None = None
    path: str | None = None
    method: str | None = None
    interval: str | None = None
    timeout: str | None = None
    grace_period: str | None = None


class CheckStatus(_Model):
    """Spec ``CheckStatus``: ``status`` ``passing``/``warning``/``critical``; ``output`` says why."""

    name: str | None = None
    status: str | None = None
    output: str | None = None
    updated_at: str | None = None


class MachineConfig(_Model):
    """Spec ``fly.MachineConfig``: the image and how to run it."""

    image: str
    env: dict[str, str] | None = None
    guest: MachineGuest | None = None
    init: MachineInit | None = None
    metadata: dict[str, str] | None = None
    restart: MachineRestart | None = None
    services: list[MachineService] | None = None
    stop_config: StopConfig | None = None
    auto_destroy: bool | None = None
    checks: dict[str, MachineCheck] | None = None


class ImageRef(_Model):
    """Spec ``ImageRef``."""

    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None


class MachineEvent(_Model):
    """Spec ``MachineEvent``; ``timestamp`` in ms since the Unix epoch UTC.

    For ``exit`` events, ``request.exit_event`` carries flyd's exit details
    (``exit_code``, ``oom_killed``, ``requested_stop``, ``restarting``...).
    """

    id: str | None = None
    type: str | None = None
    status: str | None = None
    source: str | None = None
    timestamp: int | None = None
    request: dict[str, Any] | None = None

    @property
    def exit_event(self) -> dict[str, Any] | None:
        return (self.request or {}).get("exit_event")

    @property
    def exit_code(self) -> int | None:
        """Exit code of an ``exit`` event (flyd omits 0; reads as 0 on an exit event)."""
        exit_event = self.exit_event
        return None if exit_event is None else int(exit_event.get("exit_code") or 0)

    @property
    def oom_killed(self) -> bool:
        return bool((self.exit_event or {}).get("oom_killed"))


class Lease(_Model):
    """Spec ``Lease``; ``expires_at`` in seconds since the Unix epoch UTC."""

    nonce: str
    expires_at: int | None = None
    owner: str | None = None
    description: str | None = None
    version: str | None = None


class Machine(_Model):
    """Spec ``Machine``. ``events`` newest first, as Fly returns them."""

    id: str
    name: str | None = None
    state: str
    region: str | None = None
    instance_id: str | None = None
    private_ip: str | None = None
    config: MachineConfig | None = None
    image_ref: ImageRef | None = None
    created_at: str | None = None
    updated_at: str | None = None
    events: list[MachineEvent] = []
    checks: list[CheckStatus] = []
    nonce: str | None = None

    @field_validator("events", "checks", mode="before")
    @classmethod
    def _null_lists(cls, value: Any) -> Any:
        return value or []

    def check(self, name: str) -> str | None:
        """The status of check ``name`` (``passing``/``warning``/``critical``), None when not reported."""
        return next((c.status for c in self.checks if c.name == name), None)

    @property
    def metadata(self) -> dict[str, str]:
        return dict((self.config.metadata if self.config else None) or {})

    def http_base_url(self, default_port: int = 8080) -> str:
        """Base URL of the Machine's own HTTP server over the private network.

        On Fly: ``http://[private_ip]:PORT`` (6PN) with PORT from the config's
        ``HTTP_PORT`` env (else ``default_port``); on the local engine its allocated port
        from ``metadata["fly_engine_port"]`` at ``127.0.0.1``.
        """
        port: int | str = default_port
        if self.config is not None:
            port = self.metadata.get(ENGINE_PORT_METADATA_KEY) or (self.config.env or {}).get(HTTP_PORT_ENV) or port
        host = self.private_ip or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{int(port)}"

    def last_exit(self) -> MachineEvent | None:
        """The newest ``exit`` event, if any."""
        return next((e for e in self.events if e.type == "exit"), None)


class WaitResult(_Model):
    """Spec ``WaitMachineResponse``: ``ok``, ``state`` reached, ``version``, ``event_id``."""

    ok: bool = True
    state: str | None = None
    version: str | None = None
    event_id: str | None = None


class App(_Model):
    """Spec ``App``."""

    name: str
    id: str | None = None
    status: str | None = None
    machine_count: int | None = None
