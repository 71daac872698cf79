"""Writes the machine's heartbeat every ``interval_s`` seconds: ``MachineRepository.heartbeat``
with the stats the control plane's watcher reads (traders, symbols, open positions, newest kline age).

A failed write is logged and retried at the next beat; it never stops the machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID

import structlog

from machine.persistence import MachineRepository

__all__ = ["Heartbeat"]

log = structlog.get_logger(__name__)


class Heartbeat:
    """Lifecycle: :meth:`start` beats once then every ``interval_s``; :meth:`stop` ends the loop and beats
    a last time (the stats at shutdown).

    Args:
        stats: the stats to send, read at each beat.
    """

    def __init__(self, repo: MachineRepository, user_id: UUID, machine_id: str, stats: Callable[[], dict[str, Any]],
                 interval_s: float) -> None:
        self._repo = repo
        self._user_id = user_id
        self._machine_id = machine_id
        self._stats = stats
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.beats = 0

    async def once(self) -> None:
        try:
            await self._repo.heartbeat(self._user_id, self._machine_id, self._stats())
            self.beats += 1
        except Exception as exc:
            log.warning("heartbeat_failed", user_id=str(self._user_id), error=str(exc))

    async def start(self) -> None:
        await self.once()
        self._task = asyncio.create_task(self._loop(), name="heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.once()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.once()
