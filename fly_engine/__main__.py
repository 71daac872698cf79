"""``python -m fly_engine --state-dir DIR --token T [--port N] ...``

Runs the engine until SIGINT/SIGTERM. The first line on stdout is its base URL (point any
Fly Machines API client at it, e.g. ``FLY_API_HOSTNAME``); logs are JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from ._engine import Engine
from ._options import DEFAULT_ENV_PASSTHROUGH
from ._ratelimit import FLY_RATE_LIMITS


def _image_command(text: str) -> tuple[str, list[str]]:
    image, sep, command = text.partition("=")
    if not sep or not image or not command.strip():
        raise argparse.ArgumentTypeError(f"expected IMAGE=COMMAND, got {text!r}")
    return image, shlex.split(command)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fly_engine", description=__doc__.split("\n\n")[1])
    p.add_argument("--state-dir", type=Path, required=True, help="logs and Machine working directories")
    p.add_argument("--token", default=os.environ.get("FLY_ENGINE_TOKEN"),
                   help="bearer token required on every request (default: $FLY_ENGINE_TOKEN)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--app", action="append", default=[], help="app that exists from the start (repeatable)")
    p.add_argument("--image-command", type=_image_command, action="append", default=[], metavar="IMAGE=COMMAND",
                   help="command for Machines of IMAGE without init.cmd (repeatable)")
    p.add_argument("--default-command", type=shlex.split, default=[], help="command for any other image")
    p.add_argument("--cwd", type=Path, help="working directory of every Machine")
    p.add_argument("--env-passthrough", action="append", default=None, metavar="NAME",
                   help=f"engine env var a Machine inherits (repeatable; default {' '.join(DEFAULT_ENV_PASSTHROUGH)})")
    p.add_argument("--port-env", help="give each Machine a free port in this env var (e.g. HTTP_PORT)")
    p.add_argument("--region", default="local", help="region of Machines created without one")
    p.add_argument("--oom-kill", action="store_true", help="kill Machines whose memory (PSS of the process tree) exceeds guest.memory_mb")
    p.add_argument("--no-processes", action="store_true",
                   help="run no process for a Machine: a started Machine is only a record (benches)")
    p.add_argument("--no-rate-limits", action="store_true", help="serve beyond Fly's per-action rate limits")
    return p


def _configure_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def _serve(args: argparse.Namespace) -> None:
    engine = Engine(
        args.state_dir,
        token=args.token,
        host=args.host,
        port=args.port,
        apps=args.app,
        image_commands=dict(args.image_command),
        default_command=args.default_command,
        cwd=args.cwd,
        env_passthrough=DEFAULT_ENV_PASSTHROUGH if args.env_passthrough is None else args.env_passthrough,
        port_env=args.port_env,
        region=args.region,
        oom_kill=args.oom_kill,
        processes=not args.no_processes,
        rate_limits=None if args.no_rate_limits else FLY_RATE_LIMITS,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with engine:
        print(engine.base_url, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.token:
        _parser().error("--token (or FLY_ENGINE_TOKEN) is required")
    _configure_logging()
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
