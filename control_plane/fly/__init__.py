"""Fly Machines API client: the control plane's only Fly code path.

The same :class:`FlyClient` talks to ``https://api.machines.dev`` and to the local engine
(``python -m fly_engine``); only the base URL and token differ.
"""

from ._client import FLY_API_BASE_URL, NONCE_HEADER, FlyClient
from ._errors import (
    FlyAuthError,
    FlyBadRequest,
    FlyConflict,
    FlyError,
    FlyNameTaken,
    FlyNotFound,
    FlyRateLimited,
    FlyTimeout,
    FlyUnavailable,
    LeaseHeld,
)
from ._machine_config import FLY_TOML, TIER_MEMORY_MB, FlyToml, machine_config_for
from ._models import (
    App,
    CheckStatus,
    ImageRef,
    Lease,
    Machine,
    MachineCheck,
    MachineConfig,
    MachineEvent,
    MachineGuest,
    MachineInit,
    MachineRestart,
    MachineService,
    StopConfig,
    WaitResult,
)
from ._ratelimit import GET_MACHINE_LIMIT, MACHINE_ACTION_LIMIT, RateLimit, RateLimiter
from ._retry import RetryPolicy

__all__ = [
    "FLY_API_BASE_URL",
    "FLY_TOML",
    "GET_MACHINE_LIMIT",
    "MACHINE_ACTION_LIMIT",
    "NONCE_HEADER",
    "TIER_MEMORY_MB",
    "App",
    "CheckStatus",
    "FlyAuthError",
    "FlyBadRequest",
    "FlyClient",
    "FlyConflict",
    "FlyError",
    "FlyNameTaken",
    "FlyNotFound",
    "FlyToml",
    "FlyRateLimited",
    "FlyTimeout",
    "FlyUnavailable",
    "ImageRef",
    "Lease",
    "LeaseHeld",
    "Machine",
    "MachineCheck",
    "MachineConfig",
    "MachineEvent",
    "MachineGuest",
    "MachineInit",
    "MachineRestart",
    "MachineService",
    "RateLimit",
    "RateLimiter",
    "RetryPolicy",
    "StopConfig",
    "WaitResult",
    "machine_config_for",
]
