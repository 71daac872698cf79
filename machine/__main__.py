"""``trader-machine``: run one subscriber's machine (settings from the environment)."""

from __future__ import annotations

import asyncio
import os
import sys

__all__ = ["main"]


def main() -> None:
    from machine.credentials import CredentialsError, open_credentials
    from machine.logs import configure_logging
    from machine.persistence import SchemaMismatch
    from machine.settings import SettingsError, load_settings

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        credentials = open_credentials()  # out of the environment before any child process starts
        settings = load_settings()
    except (SettingsError, CredentialsError) as exc:
        print(f"trader-machine: invalid setting {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level)

    from machine.orchestrator import Machine

    try:
        code = asyncio.run(Machine(settings, credentials=credentials).run())
    except SchemaMismatch as exc:
        print(f"trader-machine: {exc}", file=sys.stderr)
        sys.exit(3)
    sys.exit(code)


if __name__ == "__main__":
    main()
