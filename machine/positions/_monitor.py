"""Stop-loss / take-profit monitor.

Every ``interval_s`` seconds each open position is compared with the latest
ticker price of its symbol; a crossed level closes it at market with reason
``stop_loss`` or ``take_profit``. When both are crossed (a gap), stop-loss wins:
the conservative reading of an ambiguous candle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from uuid import UUID

import structlog

from machine.persistence import PositionRecord

__all__ = ["PositionMonitor", "exit_reason"]

log = structlog.get_logger(__name__)


def exit_reason(position: PositionRecord, price: Decimal) -> str | None:
    """``"stop_loss"``, ``"take_profit"`` or None for ``price`` (quote asset).

    Long: SL when ``price <= stop_loss``, TP when ``price >= take_profit``.
    Short: SL when ``price >= stop_loss``, TP when ``price <= take_profit``.
    """
    sl, tp = position.stop_loss, position.take_profit
    if position.side == "long":
        if sl is not None and price <= sl:
            return "stop_loss"
        if tp is not None and price >= tp:
            return "take_profit"
    else:
        if sl is not None and price >= sl:
            return "stop_loss"
        if tp is not None and price <= tp:
            return "take_profit"
    return None


class PositionMonitor:
    """Watches open positions in memory; the database stays the source of truth.

    Args:
        last_price: latest price of a symbol.
        close: closes a position with a reason (the execution service).
        interval_s: check period in seconds.
    """

    def __init__(
        self,
        last_price: Callable[[str], Decimal | None],
        close: Callable[[PositionRecord, str], Awaitable[object]],
        interval_s: float = 1.0,
    ) -> None:
        self._last_price = last_price
        self._close = close
        self._interval_s = interval_s
        self._positions: dict[UUID, PositionRecord] = {}
        self._closing: set[UUID] = set()
        self._task: asyncio.Task[None] | None = None
        self.checks = 0
        self.exits = 0

    def track(self, position: PositionRecord) -> None:
        self._positions[position.id] = position

    def forget(self, position_id: UUID) -> None:
        self._positions.pop(position_id, None)

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

    async def check_once(self) -> int:
        """Check every position once; returns how many were closed."""
        closed = 0
        self.checks += 1
        for position in list(self._positions.values()):
            if position.id in self._closing:
                continue
            price = self._last_price(position.symbol)
            if price is None:
                continue
            reason = exit_reason(position, price)
            if reason is None:
                continue
            self._closing.add(position.id)
            try:
                if await self._close(position, reason) is not None:  # None: already closed, not an exit of ours
                    closed += 1
                    self.exits += 1
            except Exception as exc:  # the position stays monitored; next check retries
                log.error("position_close_failed", trader_id=str(position.trader_id), symbol=position.symbol,
                          reason=reason, error=str(exc))
            finally:
                self._closing.discard(position.id)
        return closed

    async def _run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval_s)
