"""Engine options shared by the fleet, the supervisors and the HTTP layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._ratelimit import FLY_RATE_LIMITS, RateLimits

__all__ = ["DEFAULT_ENV_PASSTHROUGH", "PORT_METADATA_KEY", "EngineOptions"]

#: Variables of the engine's own environment a Machine process inherits (besides PATH).
DEFAULT_ENV_PASSTHROUGH = ("PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL", "TZ", "TMPDIR", "HOME")
#: Metadata key under which the engine publishes a Machine's allocated local port.
PORT_METADATA_KEY = "fly_engine_port"


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs Machines.

    - ``state_dir``: per-Machine log files (``machines/<id>/machine.log``) and, unless
      ``cwd`` is set, per-Machine working directories (``machines/<id>/root``).
    - ``image_commands`` / ``default_command``: argv for a Machine without ``init.cmd``.
    - ``env_passthrough``: engine environment variables a Machine inherits besides PATH.
    - ``port_env``: when set, each Machine gets a free local port in this variable, also
      published as ``config.metadata["fly_engine_port"]`` (on Fly: 6PN address + port).
    - ``region``: region of Machines created without one.
    - ``default_stop_signal`` / ``default_stop_timeout_s``: stop when the config has no
      ``stop_config`` (Fly's own default signal is SIGINT, ``fly.toml`` ``kill_signal``).
    - ``restart_backoff_s``: (first, max) delay in seconds between automatic restarts,
      doubling each time.
    - ``oom_kill``: kill a Machine whose process tree uses more than ``guest.memory_mb``
      (PSS summed over the tree: shared pages count once), checked every ``oom_poll_s`` seconds.
    - ``default_lease_ttl_s``: lease TTL when ``CreateLeaseRequest.ttl`` is absent.
    - ``lease_owner``: the ``owner`` of leases (Fly: the token's user).
    - ``shutdown_timeout_s``: grace before SIGKILL when the engine stops.
    - ``rate_limits``: Fly's per-action rate limits (429 beyond them); None serves every request.
    - ``processes``: False runs no process at all: a started Machine is only a record (no
      command needed, no checks, no memory limit), for benches of the control plane at scale.
    """

    state_dir: Path
    image_commands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_command: tuple[str, ...] = ()
    cwd: Path | None = None
    env_passthrough: tuple[str, ...] = DEFAULT_ENV_PASSTHROUGH
    port_env: str | None = None
    region: str = "local"
    default_stop_signal: str = "SIGTERM"
    default_stop_timeout_s: float = 5.0
    restart_backoff_s: tuple[float, float] = (0.1, 5.0)
    oom_kill: bool = False
    oom_poll_s: float = 0.1
    default_lease_ttl_s: int = 30
    lease_owner: str = "local@fly-engine"
    shutdown_timeout_s: float = 5.0
    rate_limits: RateLimits | None = FLY_RATE_LIMITS
    processes: bool = True

    def machine_dir(self, machine_id: str) -> Path:
        return self.state_dir / "machines" / machine_id

    def log_path(self, machine_id: str) -> Path:
        """The Machine's log file: stdout and stderr of every run, appended."""
        return self.machine_dir(machine_id) / "machine.log"

    def workdir(self, machine_id: str) -> Path:
        return self.cwd if self.cwd is not None else self.machine_dir(machine_id) / "root"
