"""The reconcile loop of ``control-plane serve``: periodic passes, and NOTIFY-driven ones.

A full pass runs at start and every ``period_s`` seconds. Between passes the service
LISTENs on :data:`FLEET_CHANNEL` (migration 004's triggers announce a user id when a
subscriber is added, deleted, or changes tier or subscription status) and converges
that subscriber at once, so a cancellation or an upgrade takes effect within seconds.
A subscriber another replica holds the lock of is tried again shortly after. When the
LISTEN connection is lost, it is opened again and a full pass covers what was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog

from ._reconciler import PassReport, Reconciler

__all__ = ["FLEET_CHANNEL", "FleetService"]

log = structlog.get_logger("control_plane.fleet")

#: Channel of migration 004's ``users_notify_fleet`` trigger; the payload is a user id.
FLEET_CHANNEL = "fleet_changes"
#: Delay before a subscriber whose lock another replica held is tried again, seconds.
_LOCKED_RETRY_S = 1.0
_LOCKED_RETRIES = 30


class FleetService:
    """``async with FleetService(dsn, reconciler, period_s=30):`` runs the loop until exit.

    Args:
        dsn: Postgres DSN for the LISTEN connection (a connection of its own).
        reconciler: the replica's :class:`Reconciler`.
        period_s: seconds between full passes.
    """

    def __init__(self, dsn: str, reconciler: Reconciler, *, period_s: float = 30.0) -> None:
        self._dsn = dsn
        self.reconciler = reconciler
        self._period_s = period_s
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self._listener: asyncpg.Connection | None = None
        self._converging: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self.passes = 0
        self.last_pass: PassReport | None = None

    async def __aenter__(self) -> FleetService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """LISTEN, then start the periodic and the per-subscriber workers."""
        await self._listen()
        self._tasks = [
            asyncio.create_task(self._periodic(), name="fleet-periodic"),
            asyncio.create_task(self._per_user(), name="fleet-notified"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._converging]:
            task.cancel()
        for task in [*self._tasks, *self._converging]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()
        await self.reconciler.aclose()

    def wake(self) -> None:
        """Run a full pass now."""
        self._wake.set()

    async def run_pass(self) -> PassReport:
        """One full pass (passes never overlap within a replica)."""
        async with self._pass_lock:
            report = await self.reconciler.reconcile_once()
            self.passes += 1
            self.last_pass = report
            return report

    # -- LISTEN ----------------------------------------------------------------------------

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        await conn.add_listener(FLEET_CHANNEL, self._notified)
        conn.add_termination_listener(self._lost)
        self._listener = conn

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    def _lost(self, _conn: Any) -> None:
        log.warning("fleet LISTEN connection lost; reconnecting")
        task = asyncio.get_running_loop().create_task(self._relisten())
        self._tasks.append(task)

    async def _relisten(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("fleet LISTEN reconnect failed", error=str(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.wake()  # notifications sent while we were away are lost: a full pass covers them
            return

    # -- workers ---------------------------------------------------------------------------

    async def _periodic(self) -> None:
        while True:
            try:
                await self.run_pass()
            except Exception:  # noqa: BLE001 - the loop must outlive any one pass
                log.exception("fleet pass failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._period_s):
                    await self._wake.wait()
            self._wake.clear()

    async def _per_user(self) -> None:
        while True:
            user_id = await self._queue.get()
            task = asyncio.create_task(self._converge(user_id), name=f"fleet-user-{user_id}")
            self._converging.add(task)
            task.add_done_callback(self._converging.discard)

    async def _converge(self, user_id: str) -> None:
        for _ in range(_LOCKED_RETRIES):
            try:
                done = await self.reconciler.reconcile_user(user_id)
            except Exception:  # noqa: BLE001 - one subscriber's failure must not stop the loop
                log.exception("fleet reconcile of a notified subscriber failed", user_id=user_id)
                return
            if done is not None:
                return
            await asyncio.sleep(_LOCKED_RETRY_S)
