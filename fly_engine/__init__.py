"""A local Fly-compatible machines engine.

Serves the subset of the Fly Machines API the project uses (spec:
``../shared/specs/fly-machines-openapi.json``, paths under ``/v1``) and runs each Machine
as a local process group: ``config.init`` or a command mapped from ``config.image``,
with ``config.env`` plus the variables Fly sets (``FLY_MACHINE_ID``, ``FLY_APP_NAME``,
``FLY_REGION``, ``FLY_PRIVATE_IP``, ``FLY_IMAGE_REF``, ``FLY_MACHINE_VERSION``...).

On Fly a Machine's HTTP is reached at its 6PN ``private_ip`` and the port it listens on;
here ``private_ip`` is ``127.0.0.1`` and, with ``port_env`` set, the engine gives each
Machine a free port in that variable and publishes it as
``config.metadata["fly_engine_port"]``.
"""

from ._engine import Engine, EngineThread
from ._errors import EngineError
from ._options import DEFAULT_ENV_PASSTHROUGH, PORT_METADATA_KEY
from ._ratelimit import FLY_RATE_LIMITS, RateLimits

__all__ = [
    "DEFAULT_ENV_PASSTHROUGH",
    "FLY_RATE_LIMITS",
    "PORT_METADATA_KEY",
    "Engine",
    "EngineError",
    "EngineThread",
    "RateLimits",
]
