"""Run a :class:`Simulator` in a background thread, for synchronous callers."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from ._server import Simulator


class SimulatorThread:
    """A :class:`Simulator` on its own event loop in a daemon thread.

    Use as a context manager::

        with SimulatorThread(Path("../shared/data/binance"), speed=600) as sim:
            urllib.request.urlopen(sim.rest_url + "/api/v3/time")

    Keyword arguments are those of :class:`Simulator`. ``start()`` waits until the
    server listens (raising what ``Simulator`` raised, or TimeoutError after
    ``startup_timeout`` seconds); ``stop()`` shuts it down and joins the thread.
    """

    def __init__(self, replay_dir: Path, *, startup_timeout: float = 30.0, **kwargs: Any) -> None:
        self._replay_dir = replay_dir
        self._kwargs = kwargs
        self._timeout = startup_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.simulator: Simulator | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                self.simulator = Simulator(self._replay_dir, **self._kwargs)
                await self.simulator.start()
            except BaseException as exc:  # handed to the starting thread
                self._error = exc
                self._ready.set()
                return
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.simulator.stop()

        asyncio.run(main())

    def start(self) -> Simulator:
        self._thread = threading.Thread(target=self._run, name="exchange_sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError(f"simulator did not start within {self._timeout} s")
        if self._error is not None:
            raise self._error
        assert self.simulator is not None
        return self.simulator

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
        self._loop = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
