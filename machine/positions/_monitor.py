"""Stop-loss / take-profit monitor.

Levels are evaluated against every price the machine receives
(:meth:`PositionMonitor.on_price`, fed by ``MarketStore.add_price_listener``:
each ticker and kline update, with the low and high the forming candle reached
since the previous update, so a wick through a level counts), and every
``interval_s`` seconds against the last price as a safety net. A crossed level
closes the position with reason ``stop_loss`` or ``take_profit``, carrying
the :class:`~machine.execution.Trigger` the fill is priced from. When both are
crossed in one update, stop-loss wins: the conservative reading of an
ambiguous candle. Every position one update (or one safety-net pass) crosses is
closed in one batch (``ExecutionService.close_many``): a move through many stops
books them together instead of one after another. A position whose close failed is
tried again on a later price, not before a backoff (1 s doubling to ``MAX_BACKOFF_S``):
an exchange refusing orders is not hammered, and each try's client order id is spent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog

from machine.execution import Trigger
from machine.latency import LatencyBook
from machine.persistence import PositionRecord

__all__ = ["PositionMonitor", "exit_trigger"]

log = structlog.get_logger(__name__)

#: Longest wait (seconds) before a position whose closes keep failing is tried again.
MAX_BACKOFF_S = 60.0


def exit_trigger(position: PositionRecord, low: Decimal, high: Decimal, last: Decimal) -> Trigger | None:
    """The exit a price update fires, or None; ``low``/``high`` span the prices it reached (quote asset).

    Long: stop-loss when ``low <= stop_loss``, take-profit when ``high >= take_profit``.
    Short: stop-loss when ``high >= stop_loss``, take-profit when ``low <= take_profit``.
    Both: stop-loss.
    """
    sl, tp = position.stop_loss, position.take_profit
    if position.side == "long":
        hit_sl, hit_tp = sl is not None and low <= sl, tp is not None and high >= tp
    else:
        hit_sl, hit_tp = sl is not None and high >= sl, tp is not None and low <= tp
    if hit_sl:
        return Trigger("stop_loss", sl, low, high, last)  # type: ignore[arg-type]
    if hit_tp:
        return Trigger("take_profit", tp, low, high, last)  # type: ignore[arg-type]
    return None


Closer = Callable[[Sequence[tuple[PositionRecord, Trigger]]], Awaitable[Sequence[Any]]]
"""Closes positions for their triggers (reason: the trigger's kind); per position None when it
was already closed, the exception when it stayed open, anything else when it closed."""


class PositionMonitor:
    """Watches open positions in memory; the database stays the source of truth.

    Args:
        last_price: latest price of a symbol.
        close: closes a batch of positions (:data:`Closer`; the execution service's ``close_many``).
        interval_s: check period in seconds.
        latency: where exits fired by a price update record their latency (update -> close committed).
        clock: monotonic seconds (the backoff's clock).
    """

    def __init__(
        self,
        last_price: Callable[[str], Decimal | None],
        close: Closer,
        interval_s: float = 1.0,
        latency: LatencyBook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._last_price = last_price
        self._close = close
        self._interval_s = interval_s
        self._latency = latency
        self._positions: dict[UUID, PositionRecord] = {}
        self._closing: set[UUID] = set()
        self._failures: dict[UUID, tuple[int, float]] = {}  # position -> (failed closes in a row, retry not before)
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[int]] = set()
        self.checks = 0
        self.exits = 0

    def track(self, position: PositionRecord) -> None:
        self._positions[position.id] = position

    def on_price(self, symbol: str, low: Decimal, high: Decimal, last: Decimal) -> None:
        """A price update (``MarketStore.add_price_listener``): close the positions of ``symbol`` it triggers.

        Runs in the store's update path, so it only schedules the closes (one batch).
        """
        arrived = time.perf_counter()
        batch = []
        now = self._clock()
        for position in list(self._positions.values()):
            if position.symbol != symbol or position.id in self._closing or self._backing_off(position.id, now):
                continue
            trigger = exit_trigger(position, low, high, last)
            if trigger is not None:
                self._closing.add(position.id)
                batch.append((position, trigger))
        if batch:
            task = asyncio.get_running_loop().create_task(self._exit(batch, arrived))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _exit(self, batch: list[tuple[PositionRecord, Trigger]], arrived: float | None = None) -> int:
        """Close the batch's positions; returns how many this call closed (``_closing`` is released).

        ``arrived``: ``perf_counter`` time of the price update that crossed the levels, for the latency book.
        A position that failed to close stays monitored: the next price retries it.
        """
        closed = 0
        try:
            results = await self._close(batch)
        except Exception as exc:
            results = [exc] * len(batch)
        finally:
            for position, _ in batch:
                self._closing.discard(position.id)
        for (position, trigger), result in zip(batch, results):
            if isinstance(result, Exception):
                failures = self._failures.get(position.id, (0, 0.0))[0] + 1
                backoff = min(MAX_BACKOFF_S, 2.0 ** (failures - 1))
                self._failures[position.id] = (failures, self._clock() + backoff)
                log.error("position_close_failed", trader_id=str(position.trader_id), symbol=position.symbol,
                          reason=trigger.kind, error=str(result), retry_in_s=backoff)
            elif result is not None:  # None: already closed
                self._failures.pop(position.id, None)
                closed += 1
                if self._latency is not None and arrived is not None:
                    self._latency.record_exit(str(position.trader_id), position.symbol, trigger.kind, arrived)
        self.exits += closed
        return closed

    def _backing_off(self, position_id: UUID, now: float) -> bool:
        failed = self._failures.get(position_id)
        return failed is not None and now < failed[1]

    def forget(self, position_id: UUID) -> None:
        self._positions.pop(position_id, None)
        self._failures.pop(position_id, None)

    @property
    def positions(self) -> list[PositionRecord]:
        return list(self._positions.values())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="position-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._tasks:  # exits in flight finish (their fills are booked) before shutdown goes on
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def check_once(self) -> int:
        """Check every position once against its symbol's last price; returns how many were closed."""
        self.checks += 1
        batch = []
        now = self._clock()
        for position in list(self._positions.values()):
            if position.id in self._closing or self._backing_off(position.id, now):
                continue
            price = self._last_price(position.symbol)
            if price is None:
                continue
            trigger = exit_trigger(position, price, price, price)
            if trigger is not None:
                self._closing.add(position.id)
                batch.append((position, trigger))
        return await self._exit(batch) if batch else 0

    async def _run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval_s)
