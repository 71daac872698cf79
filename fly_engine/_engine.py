"""The engine: an aiohttp server for the Machines API running Machines as local processes.

Use it as ``async with Engine(state_dir, token=...) as engine: engine.base_url`` from async
code, or :class:`EngineThread` (its own event loop in a thread) from sync code.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from ._api import build_app
from ._errors import EngineError
from ._fleet import Fleet
from ._options import DEFAULT_ENV_PASSTHROUGH, EngineOptions
from ._ratelimit import RequestLimiter

__all__ = ["Engine", "EngineThread"]

log = structlog.get_logger("fly_engine")


class Engine:
    """A local stand-in for ``https://api.machines.dev``.

    Args:
        state_dir: per-Machine log files and working directories.
        token: the bearer token every request must carry.
        host, port: where to listen (port 0 picks a free one; see :attr:`base_url`).
        apps: app names that exist from the start (more via ``POST /v1/apps``).
        image_commands: argv per image for Machines without ``config.init.cmd``, looked up
            by full image reference, then without tag, then by last path component.
        default_command: argv for images not in ``image_commands``.
        cwd: working directory of every Machine (default: one per Machine in ``state_dir``).
        env_passthrough: engine environment variables a Machine inherits besides PATH.
        port_env: when set, each Machine gets a free local port in this variable, published
            as ``config.metadata["fly_engine_port"]`` (its HTTP is ``http://127.0.0.1:<port>``).
        **options: further :class:`~fly_engine._options.EngineOptions` fields
            (``region``, ``default_stop_signal``, ``default_stop_timeout_s``,
            ``restart_backoff_s``, ``oom_kill``, ``oom_poll_s``, ``default_lease_ttl_s``,
            ``lease_owner``, ``shutdown_timeout_s``, ``rate_limits``).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        apps: Iterable[str] = (),
        image_commands: Mapping[str, Sequence[str]] | None = None,
        default_command: Sequence[str] = (),
        cwd: Path | None = None,
        env_passthrough: Sequence[str] = DEFAULT_ENV_PASSTHROUGH,
        port_env: str | None = None,
        **options: Any,
    ) -> None:
        if not token:
            raise EngineError("token must not be empty")
        self._options = EngineOptions(
            state_dir=Path(state_dir),
            image_commands={k: tuple(v) for k, v in (image_commands or {}).items()},
            default_command=tuple(default_command),
            cwd=Path(cwd) if cwd is not None else None,
            env_passthrough=tuple(env_passthrough),
            port_env=port_env,
            **options,
        )
        self._token = token
        self._host = host
        self._port = port
        self._fleet = Fleet(self._options, apps)
        limits = self._options.rate_limits
        self._limiter = RequestLimiter(limits) if limits is not None else None
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (API paths start with ``/v1``). Raises EngineError before start."""
        if self._base_url is None:
            raise EngineError("engine not started")
        return self._base_url

    @property
    def options(self) -> EngineOptions:
        return self._options

    @property
    def rate_limited(self) -> Counter[str]:
        """Requests answered 429 so far, per spec operation (empty without rate limits)."""
        return self._limiter.rejected if self._limiter is not None else Counter()

    def log_path(self, machine_id: str) -> Path:
        """The Machine's log file (stdout and stderr of all its runs)."""
        return self._options.log_path(machine_id)

    async def start(self) -> None:
        """Start serving. Raises OSError when the address is unavailable."""
        if self._runner is not None:
            raise EngineError("engine already started")
        self._options.state_dir.mkdir(parents=True, exist_ok=True)
        # Pending Machines_wait requests are cut off right away at shutdown (aiohttp default: 60 s).
        runner = web.AppRunner(
            build_app(self._fleet, self._token, self._limiter), access_log=None, shutdown_timeout=0.25
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        log.info("fly engine listening", base_url=self._base_url, state_dir=str(self._options.state_dir))

    async def stop(self) -> None:
        """Stop every Machine process (stop signal, then SIGKILL) and the server."""
        if self._runner is None:
            return
        try:
            await self._fleet.shutdown()
        finally:
            await self._runner.cleanup()
            self._runner = None
            log.info("fly engine stopped", base_url=self._base_url)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class EngineThread:
    """An :class:`Engine` on its own event loop in a daemon thread, for sync callers.

    ``with EngineThread(state_dir, token="t") as engine: engine.base_url``. Takes the same
    arguments as :class:`Engine`.
    """

    def __init__(self, state_dir: Path, **engine_kwargs: Any) -> None:
        self.engine = Engine(state_dir, **engine_kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return self.engine.base_url

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        async def run() -> None:
            self._stopped = asyncio.Event()
            try:
                await self.engine.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stopped.wait()
            finally:
                await self.engine.stop()

        try:
            loop.run_until_complete(run())
        finally:
            loop.close()

    def start(self, timeout_s: float = 30.0) -> str:
        """Start the engine; its base URL. Raises EngineError if it fails or times out."""
        self._thread = threading.Thread(target=self._main, name="fly-engine", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise EngineError("engine did not start in time")
        if self._error is not None:
            raise EngineError(f"engine failed to start: {self._error}") from self._error
        return self.base_url

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the engine and its Machines; waits for the thread to end."""
        if self._thread is None or self._loop is None or self._stopped is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> EngineThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
