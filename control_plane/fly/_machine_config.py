"""The Machine config of one subscriber's trader machine.

Sizing per subscription tier (Fly guest ``shared`` CPU kind, 1 vCPU):

=======  =========
tier     memory_mb
=======  =========
pro      256
elite    512
power    1024
=======  =========

Restart policy ``on-failure`` (restarted after a crash, up to ``max_retries`` times; a
clean exit, e.g. after ``POST /shutdown``, stays stopped). Stop: SIGTERM, SIGKILL after
30 s (Fly's own default signal is SIGINT; we set it explicitly so real Fly and the local
engine behave the same). No ``services``: the machine's HTTP (``HTTP_PORT``) is reachable
only on the private network, never through Fly's public proxy. One HTTP check,
``health``: ``GET /health`` on that port every 30 s, 5 s timeout (as ``fly.toml``), reported
in the Machine's ``checks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._models import (
    HTTP_PORT_ENV,
    MachineCheck,
    MachineConfig,
    MachineGuest,
    MachineInit,
    MachineRestart,
    StopConfig,
)

__all__ = ["TIER_MEMORY_MB", "machine_config_for"]

#: Memory per subscription tier, in MB.
TIER_MEMORY_MB: Mapping[str, int] = {"pro": 256, "elite": 512, "power": 1024}
#: Automatic restarts after failures before the Machine is left stopped.
MAX_RESTARTS = 5
#: Seconds between SIGTERM and SIGKILL on stop: time for the machine to persist its state.
STOP_TIMEOUT = "30s"
DEFAULT_HTTP_PORT = 8080
#: Name of the Machine's HTTP health check.
HEALTH_CHECK = "health"


def machine_config_for(
    user_id: str,
    tier: str,
    image: str,
    env: Mapping[str, str],
    *,
    cmd: Sequence[str] | None = None,
    http_port: int = DEFAULT_HTTP_PORT,
) -> MachineConfig:
    """Config of ``user_id``'s trader machine.

    ``env`` becomes the Machine's environment (``USER_ID`` and ``HTTP_PORT`` are added
    unless given); ``cmd`` overrides the image's command (``config.init.cmd``).
    Metadata ``{"user_id", "tier"}`` lets ``list_machines(metadata={"user_id": ...})``
    find the Machine. Raises ValueError for an unknown tier or empty user_id/image.
    """
    if tier not in TIER_MEMORY_MB:
        raise ValueError(f"unknown tier {tier!r} (expected one of {', '.join(TIER_MEMORY_MB)})")
    if not user_id or not image:
        raise ValueError("user_id and image must not be empty")
    machine_env = {"USER_ID": str(user_id), HTTP_PORT_ENV: str(http_port), **dict(env)}
    return MachineConfig(
        image=image,
        env=machine_env,
        guest=MachineGuest(cpu_kind="shared", cpus=1, memory_mb=TIER_MEMORY_MB[tier]),
        init=MachineInit(cmd=list(cmd)) if cmd else None,
        metadata={"user_id": str(user_id), "tier": tier},
        restart=MachineRestart(policy="on-failure", max_retries=MAX_RESTARTS),
        stop_config=StopConfig(signal="SIGTERM", timeout=STOP_TIMEOUT),
        checks={
            HEALTH_CHECK: MachineCheck(
                type="http", port=http_port, path="/health", interval="30s", timeout="5s", grace_period="10s"
            )
        },
    )
