"""The Machine config of one subscriber's trader machine.

Sizing per subscription tier (Fly guest ``shared`` CPU kind, 1 vCPU):

=======  =========
tier     memory_mb
=======  =========
pro      256
elite    512
power    1024
=======  =========

The environment (``[env]``) and the checks (``[checks]``) come from the repository's
``fly.toml``, so what the control plane creates and what ``fly deploy`` would build
cannot drift; the tier sets the memory.

Restart policy ``on-failure`` (restarted after a crash, up to ``max_retries`` times; a
clean exit, e.g. after ``POST /shutdown``, stays stopped). Stop: SIGTERM, SIGKILL after
30 s (Fly's own default signal is SIGINT; we set it explicitly so real Fly and the local
engine behave the same). No ``services``: the machine's HTTP (``HTTP_PORT``) is reachable
only on the private network, never through Fly's public proxy. ``fly.toml``'s HTTP check
``health`` (``GET /health``) is reported in the Machine's ``checks``.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._models import (
    MachineCheck,
    MachineConfig,
    MachineGuest,
    MachineInit,
    MachineRestart,
    StopConfig,
)

__all__ = ["FLY_TOML", "TIER_MEMORY_MB", "FlyToml", "machine_config_for"]

#: Memory per subscription tier, in MB.
TIER_MEMORY_MB: Mapping[str, int] = {"pro": 256, "elite": 512, "power": 1024}
#: Automatic restarts after failures before the Machine is left stopped.
MAX_RESTARTS = 5
#: Seconds between SIGTERM and SIGKILL on stop: time for the machine to persist its state.
STOP_TIMEOUT = "30s"
#: The repository's fly.toml (``fly deploy``'s config of the machine image).
FLY_TOML = Path(__file__).resolve().parents[2] / "fly.toml"
_CHECK_FIELDS = ("type", "port", "path", "method", "interval", "timeout", "grace_period")


@dataclass(frozen=True)
class FlyToml:
    """What a subscriber's machine takes from ``fly.toml``: ``[env]`` and ``[checks]``."""

    env: Mapping[str, str]
    checks: Mapping[str, MachineCheck]

    @property
    def http_port(self) -> int:
        """The machine's HTTP port (``[env] HTTP_PORT``)."""
        return int(self.env["HTTP_PORT"])

    @classmethod
    @functools.cache
    def load(cls, path: Path = FLY_TOML) -> FlyToml:
        """Parse ``path``. Raises FileNotFoundError, tomllib.TOMLDecodeError, or ValueError for a
        config without ``[env] HTTP_PORT``."""
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
        env = {str(k): str(v) for k, v in (doc.get("env") or {}).items()}
        if "HTTP_PORT" not in env:
            raise ValueError(f"{path}: [env] HTTP_PORT is required")
        checks = {
            name: MachineCheck(**{k: check[k] for k in _CHECK_FIELDS if k in check})
            for name, check in (doc.get("checks") or {}).items()
        }
        return cls(env=env, checks=checks)


def machine_config_for(
    user_id: str,
    tier: str,
    image: str,
    env: Mapping[str, str],
    *,
    cmd: Sequence[str] | None = None,
    template: FlyToml | None = None,
) -> MachineConfig:
    """Config of ``user_id``'s trader machine: ``template`` (default: the repository's
    ``fly.toml``) plus the tier.

    The environment is ``fly.toml``'s ``[env]``, then ``USER_ID``, then ``env``; ``cmd``
    overrides the image's command (``config.init.cmd``). Metadata ``{"user_id", "tier"}``
    lets ``list_machines(metadata={"user_id": ...})`` find the Machine. Raises ValueError for
    an unknown tier or empty user_id/image.
    """
    if tier not in TIER_MEMORY_MB:
        raise ValueError(f"unknown tier {tier!r} (expected one of {', '.join(TIER_MEMORY_MB)})")
    if not user_id or not image:
        raise ValueError("user_id and image must not be empty")
    template = template or FlyToml.load()
    machine_env = {**template.env, "USER_ID": str(user_id), **dict(env)}
    return MachineConfig(
        image=image,
        env=machine_env,
        guest=MachineGuest(cpu_kind="shared", cpus=1, memory_mb=TIER_MEMORY_MB[tier]),
        init=MachineInit(cmd=list(cmd)) if cmd else None,
        metadata={"user_id": str(user_id), "tier": tier},
        restart=MachineRestart(policy="on-failure", max_retries=MAX_RESTARTS),
        stop_config=StopConfig(signal="SIGTERM", timeout=STOP_TIMEOUT),
        checks=dict(template.checks) or None,
    )
