"""Apps and their Machines: the operations of the Machines API, with Fly's preconditions.

Every method maps to one spec operation (named in its docstring) and raises
:class:`ApiError` with Fly's status codes: 404 unknown app/Machine, 409 lease held by
someone else (``fly-machine-lease-nonce`` missing or wrong), 412 ``failed_precondition``
for an operation the Machine's state does not allow, 422 ``name_taken``.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ._config import CreateRequest, StopSpec, UpdateRequest, parse_stop_request, stop_spec
from ._errors import ApiError, not_found, precondition_failed
from ._ids import iso_now, new_machine_id, new_machine_name, new_nonce
from ._machine import Lease, Machine
from ._options import PORT_METADATA_KEY, EngineOptions
from ._process import resolve_command
from ._supervisor import Supervisor

__all__ = ["App", "Fleet"]

log = structlog.get_logger("fly_engine")

_RUNNING = frozenset({"starting", "started"})


@dataclass
class App:
    """A Fly App (spec schema ``App``) and its Machines."""

    name: str
    org_slug: str
    network: str
    id: str = field(default_factory=new_machine_id)
    created_at: str = field(default_factory=iso_now)
    machines: dict[str, Machine] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {value, digest, created_at, updated_at}
    secrets_version: int = 0

    def secret_env(self) -> dict[str, str]:
        """The app's secrets as a Machine sees them: environment variables, name -> value."""
        return {name: item["value"] for name, item in self.secrets.items()}

    def set_secrets(self, values: dict[str, str | None]) -> int:
        """Set (a string) or unset (None) each secret; returns the new secrets version."""
        now = iso_now()
        for name, value in values.items():
            if value is None:
                self.secrets.pop(name, None)
                continue
            created = self.secrets.get(name, {}).get("created_at", now)
            digest = hashlib.sha256(value.encode()).hexdigest()[:16]
            self.secrets[name] = {"value": value, "digest": digest, "created_at": created, "updated_at": now}
        self.secrets_version += 1
        return self.secrets_version

    def secret_json(self, name: str, show_value: bool) -> dict[str, str]:
        item = self.secrets[name]
        out = {"name": name, "digest": item["digest"], "created_at": item["created_at"], "updated_at": item["updated_at"]}
        if show_value:
            out["value"] = item["value"]
        return out

    def to_json(self) -> dict[str, Any]:
        live = [m for m in self.machines.values() if m.state != "destroyed"]
        return {
            "id": self.id,
            "name": self.name,
            "status": "deployed" if live else "pending",
            "machine_count": len(live),
            "volume_count": 0,
            "network": self.network,
            "organization": {"name": self.org_slug, "slug": self.org_slug},
        }


def _check_secrets_version(app: App, wanted: int | None) -> None:
    """``min_secrets_version``: the Machine must start with at least that secrets version. Raises 400."""
    if wanted is not None and wanted > app.secrets_version:
        raise ApiError(
            400, f"min_secrets_version: app {app.name} is at secrets version {app.secrets_version}, not {wanted}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Fleet:
    """All apps and Machines of one engine. Used only on the engine's event loop."""

    def __init__(self, options: EngineOptions, apps: Iterable[str] = ()) -> None:
        self.options = options
        self.apps: dict[str, App] = {}
        self._supervisors: dict[str, Supervisor] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()
        for name in apps:
            self.create_app(name, "personal", "default")

    # -- apps ------------------------------------------------------------------------

    def create_app(self, name: str, org_slug: str, network: str) -> App:
        """Fly spec operation ``Apps_create``. Raises 422 ``name_taken``."""
        if name in self.apps:
            raise ApiError(422, f"app name {name!r} is already taken", code="name_taken")
        app = self.apps[name] = App(name=name, org_slug=org_slug, network=network or "default")
        return app

    def app(self, name: str) -> App:
        """Fly spec operation ``Apps_show``. Raises 404."""
        try:
            return self.apps[name]
        except KeyError:
            raise not_found(f"app not found: {name}") from None

    # -- lookups ---------------------------------------------------------------------

    def machine(self, app_name: str, machine_id: str) -> Machine:
        """The Machine, destroyed ones included. Raises 404 for an unknown app or Machine."""
        app = self.app(app_name)
        try:
            return app.machines[machine_id]
        except KeyError:
            raise not_found(f"machine not found: {machine_id}") from None

    def _live(self, app_name: str, machine_id: str, nonce: str | None) -> Machine:
        machine = self.machine(app_name, machine_id)
        if machine.state == "destroyed":
            raise not_found(f"machine not found: {machine_id} (destroyed)")
        self._check_lease(machine, nonce)
        return machine

    def _check_lease(self, machine: Machine, nonce: str | None) -> None:
        lease = machine.active_lease()
        if lease is not None and nonce != lease.nonce:
            raise ApiError(
                409,
                f"aborted: machine ID {machine.id} lease currently held by {lease.owner}, "
                f"expires at {lease.expires_iso()}",
            )

    def lock(self, machine_id: str) -> asyncio.Lock:
        return self._locks.setdefault(machine_id, asyncio.Lock())

    def supervisor(self, machine_id: str) -> Supervisor:
        return self._supervisors[machine_id]

    def list_machines(
        self,
        app_name: str,
        *,
        include_deleted: bool = False,
        region: str | None = None,
        states: frozenset[str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> list[Machine]:
        """Fly spec operation ``Machines_list`` (filters ``include_deleted``, ``region``,
        ``state``, ``metadata.{key}``), oldest first."""
        result = []
        for machine in self.app(app_name).machines.values():
            if machine.state == "destroyed" and not include_deleted:
                continue
            if region is not None and machine.region != region:
                continue
            if states is not None and machine.state not in states:
                continue
            meta = machine.config.get("metadata") or {}
            if metadata and any(meta.get(k) != v for k, v in metadata.items()):
                continue
            result.append(machine)
        return result

    # -- lifecycle -------------------------------------------------------------------

    def _prepare_config(self, config: dict[str, Any], port: str | None) -> dict[str, Any]:
        if self.options.processes:
            resolve_command(config, self.options.image_commands, self.options.default_command)
        if port is not None:
            config["metadata"] = {**(config.get("metadata") or {}), PORT_METADATA_KEY: port}
        return config

    def _new_lease(self, machine: Machine, ttl_s: int, description: str) -> Lease:
        machine.lease = Lease(
            nonce=new_nonce(),
            owner=self.options.lease_owner,
            description=description,
            expires_at=int(time.time()) + ttl_s,
            version=machine.instance_id,
        )
        return machine.lease

    async def create(self, app_name: str, request: CreateRequest) -> tuple[Machine, str | None]:
        """Fly spec operation ``Machines_create``: record the Machine (state ``created``) and
        start it unless ``skip_launch``. Returns the Machine and, with ``lease_ttl``, the
        lease nonce. Raises 404 unknown app, 400 no command, 422 ``name_taken``."""
        app = self.app(app_name)
        _check_secrets_version(app, request.min_secrets_version)
        name = request.name or new_machine_name()
        if any(m.name == name and m.state != "destroyed" for m in app.machines.values()):
            raise ApiError(422, f"machine name {name!r} is already taken", code="name_taken")
        port = str(_free_port()) if self.options.port_env else None
        config = self._prepare_config(request.config, port)
        machine = Machine(
            machine_id=new_machine_id(),
            name=name,
            app=app_name,
            region=request.region or self.options.region,
            config=config,
        )
        machine.skip_secrets = request.skip_secrets
        app.machines[machine.id] = machine
        self._supervisors[machine.id] = Supervisor(machine, self.options, app.secret_env)
        machine.transition("created", "launch", "user")
        nonce = None
        if request.lease_ttl_s:
            nonce = self._new_lease(machine, request.lease_ttl_s, "").nonce
        log.info("machine created", app=app_name, machine_id=machine.id, name=name, image=config["image"])
        if not request.skip_launch:
            # Like Fly, answer with the Machine still "created"; it boots right after.
            asyncio.get_running_loop().call_soon(self._launch_created, machine)
        return machine, nonce

    def _launch_created(self, machine: Machine) -> None:
        if machine.state == "created" and not self.supervisor(machine.id).active:
            self._start(machine)

    def _start(self, machine: Machine) -> None:
        machine.transition("starting", "start", "user")
        self._supervisors[machine.id].start()

    def _stop_spec(self, machine: Machine) -> StopSpec:
        return stop_spec(machine.config, self.options.default_stop_signal, self.options.default_stop_timeout_s)

    async def start(self, app_name: str, machine_id: str, nonce: str | None) -> str:
        """Fly spec operation ``Machines_start``. Returns the previous state.
        Raises 412 when the Machine is not stopped or created."""
        async with self.lock(machine_id):
            machine = self._live(app_name, machine_id, nonce)
            previous = machine.state
            if previous not in ("created", "stopped", "suspended", "failed"):
                raise precondition_failed(f"machine still active, refusing to start (state {previous})")
            await self.supervisor(machine_id).finished()
            self._start(machine)
            return previous

    async def stop(self, app_name: str, machine_id: str, nonce: str | None, body: Any) -> None:
        """Fly spec operation ``Machines_stop``: stop signal now, SIGKILL after the timeout.
        A Machine that is not running is left as it is. Raises 412 while replacing/destroying."""
        async with self.lock(machine_id):
            machine = self._live(app_name, machine_id, nonce)
            spec = parse_stop_request(body, self._stop_spec(machine))
            if machine.state in ("replacing", "destroying"):
                raise precondition_failed(f"machine is {machine.state}")
            supervisor = self.supervisor(machine_id)
            if not supervisor.active:
                return
            if machine.state in _RUNNING:
                machine.transition("stopping", "stop", "user")
            supervisor.request_stop("stop", spec)

    async def restart(self, app_name: str, machine_id: str, nonce: str | None, body: Any) -> None:
        """Fly spec operation ``Machines_restart``: stop (``signal``, ``timeout`` as for stop), then start
        the same version. Raises 412 when the Machine is not running."""
        async with self.lock(machine_id):
            machine = self._live(app_name, machine_id, nonce)
            if machine.state not in _RUNNING:
                raise precondition_failed(f"machine is not running, refusing to restart (state {machine.state})")
            spec = parse_stop_request(body, self._stop_spec(machine))
            supervisor = self.supervisor(machine_id)
            machine.transition("stopping", "restart", "user")
            supervisor.request_stop("restart", spec)
            await supervisor.finished()
            self._start(machine)

    def metadata(self, app_name: str, machine_id: str) -> dict[str, str]:
        """Fly spec operation ``Machines_show_metadata`` (the config's ``metadata``)."""
        return dict(self.machine(app_name, machine_id).config.get("metadata") or {})

    def set_metadata(self, app_name: str, machine_id: str, nonce: str | None, key: str, value: str | None) -> None:
        """Fly spec operations ``Machines_upsert_metadata`` (``value``) and ``Machines_delete_metadata``
        (None). The Machine keeps its version. Raises 404 for a missing key on delete."""
        machine = self._live(app_name, machine_id, nonce)
        metadata = dict(machine.config.get("metadata") or {})
        if value is None:
            if key not in metadata:
                raise not_found(f"metadata key not found: {key}")
            del metadata[key]
        else:
            metadata[key] = value
        machine.config = {**machine.config, "metadata": metadata}

    def delete_app(self, name: str) -> None:
        """Fly spec operation ``Apps_delete``. Raises 404; 412 while it has Machines that are not destroyed."""
        app = self.app(name)
        live = [m.id for m in app.machines.values() if m.state != "destroyed"]
        if live:
            raise precondition_failed(f"app {name} still has machines: {', '.join(sorted(live))}")
        del self.apps[name]

    async def update(self, app_name: str, machine_id: str, nonce: str | None, request: UpdateRequest) -> Machine:
        """Fly spec operation ``Machines_update``: new config and version; a running Machine
        is stopped (``replacing``) and started with the new config, a stopped one is
        started unless ``skip_launch``. Raises 412 on a stale ``current_version``."""
        async with self.lock(machine_id):
            machine = self._live(app_name, machine_id, nonce)
            _check_secrets_version(self.app(app_name), request.min_secrets_version)
            if request.current_version and request.current_version != machine.instance_id:
                raise precondition_failed(
                    f"machine version {request.current_version} is not the current version {machine.instance_id}"
                )
            if machine.state in ("replacing", "destroying", "stopping"):
                raise precondition_failed(f"machine is {machine.state}")
            port = (machine.config.get("metadata") or {}).get(PORT_METADATA_KEY)
            config = self._prepare_config(request.config, port)
            supervisor = self.supervisor(machine_id)
            running = supervisor.active
            old_stop = self._stop_spec(machine)  # the running version stops as its config says
            machine.new_version(config)
            machine.skip_secrets = request.skip_secrets
            if request.lease_ttl_s:
                self._new_lease(machine, request.lease_ttl_s, "")
            machine.transition("replacing" if running else machine.state, "update", "user")
            if running:
                supervisor.request_stop("replace", old_stop)
                task = asyncio.create_task(self._relaunch(machine, launch=not request.skip_launch))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            elif not request.skip_launch:
                self._start(machine)
            return machine

    async def _relaunch(self, machine: Machine, *, launch: bool) -> None:
        supervisor = self.supervisor(machine.id)
        await supervisor.finished()
        async with self.lock(machine.id):
            if machine.state != "replacing":
                return
            if launch:
                self._start(machine)
            else:
                machine.transition("stopped", "update", "flyd")

    async def destroy(self, app_name: str, machine_id: str, nonce: str | None, force: bool) -> None:
        """Fly spec operation ``Machines_delete``. A running Machine needs ``force``
        (SIGKILL), otherwise 412 ``failed_precondition``."""
        async with self.lock(machine_id):
            machine = self._live(app_name, machine_id, nonce)
            supervisor = self.supervisor(machine_id)
            if supervisor.active and not force:
                raise precondition_failed("unable to destroy machine, not currently stopped or suspended")
            machine.transition("destroying", "destroy", "user")
            if supervisor.active:
                supervisor.request_stop("destroy", StopSpec(signal.SIGKILL, 0.0))
                await supervisor.finished()
            machine.lease = None
            machine.transition("destroyed", "destroy", "flyd")
            log.info("machine destroyed", app=app_name, machine_id=machine_id, force=force)

    # -- leases ----------------------------------------------------------------------

    def create_lease(self, app_name: str, machine_id: str, nonce: str | None, ttl_s: int, description: str) -> Lease:
        """Fly spec operation ``Machines_create_lease``: a new lease, or with the current
        nonce a refreshed one. Raises 409 when someone else holds it."""
        machine = self._live(app_name, machine_id, nonce)
        lease = machine.active_lease()
        if lease is not None:  # our own (checked above): refresh
            lease.expires_at = int(time.time()) + ttl_s
            if description:
                lease.description = description
            return lease
        return self._new_lease(machine, ttl_s, description)

    def get_lease(self, app_name: str, machine_id: str) -> Lease:
        """Fly spec operation ``Machines_show_lease``. Raises 404 when no lease is held."""
        lease = self.machine(app_name, machine_id).active_lease()
        if lease is None:
            raise not_found("lease not found")
        return lease

    def release_lease(self, app_name: str, machine_id: str, nonce: str | None) -> None:
        """Fly spec operation ``Machines_release_lease``. Raises 404 no lease, 409 wrong nonce."""
        machine = self.machine(app_name, machine_id)
        if machine.active_lease() is None:
            raise not_found("lease not found")
        self._check_lease(machine, nonce)
        machine.lease = None

    # -- shutdown --------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop every running Machine: stop signal, SIGKILL after ``shutdown_timeout_s``."""
        active = [s for s in self._supervisors.values() if s.active]
        for supervisor in active:
            spec = self._stop_spec(supervisor.machine)
            grace = min(spec.timeout_s, self.options.shutdown_timeout_s)
            supervisor.request_stop("shutdown", StopSpec(spec.signal, grace))
        if active:
            done = asyncio.gather(*(s.finished() for s in active), return_exceptions=True)
            try:
                await asyncio.wait_for(done, self.options.shutdown_timeout_s + 5.0)
            except TimeoutError:
                for supervisor in active:
                    supervisor.kill_now()
        for task in list(self._background):
            task.cancel()
