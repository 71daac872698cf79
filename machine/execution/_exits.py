"""A live position's exits on the exchange (the exits half of ``ExecutionService``).

A live long is protected by one OCO order list on Binance (``LiveExecutor.place_exits``): a
LIMIT_MAKER take-profit and a STOP_LOSS, selling what the position holds, placed as soon as the
entry fills. Each placement is an *attempt* whose client ids derive from (position, attempt)
(``exit_ids``); the attempt is written on the position before the list is sent and the
exchange's ``orderListId`` after its answer, so a restart asks the exchange about exactly that
attempt (persist before acting; never placed twice under one id).

:meth:`_Exits._sync_exits` brings the stored attempt to what the exchange says, optionally
cancelling it first: still working, ended by a leg's fill (the position is booked closed on that
fill, under the leg's client order id), or not working (never placed, cancelled, ended unfilled).
Every change of a protected position goes through it: a close at market, a reduce or a scale-in
cancel the list first (its legs lock the base asset) and protect the new size after; moving a
level is a cancel-replace (the next attempt). A stop-loss or take-profit the monitor sees crossed
does not send a market order while the list works: the exchange executes it, and the fill is
booked when the exchange reports it. A list the exchange refuses (a level already passed, a size
below the filters) leaves the position to the monitor, which closes it at market when a level is
crossed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog

from machine.crashpoints import crashpoint
from machine.execution._errors import ExecutionError, OrderRejected, OutcomeUnknown
from machine.execution._orders import Executor, Fill, exit_ids, exit_list_owner
from machine.execution._rules import round_level
from machine.persistence import PositionRecord

if TYPE_CHECKING:
    from machine.execution._rules import SymbolRules
    from machine.persistence import TradingRepository

__all__ = ["ExitState", "stop_limit_price"]

log = structlog.get_logger(__name__)

ExitState = str
"""``working`` (the list executes on the exchange), ``closed`` (a leg filled: the position is
booked closed), ``none`` (no list works on the exchange)."""

#: Seconds between two reports asked for one position while the monitor sees a level crossed.
REPORT_EVERY_S = 1.0
#: The stop-loss leg's limit price sits this fraction below its trigger (rounded down to the tick):
#: room for the market to fill it when it triggers. A price already below that limit while the list
#: still works means the stop triggered but could not fill: the list is cancelled and the position
#: closed at market.
STOP_LIMIT_GAP = Decimal("0.01")
#: Placements per position (two-digit attempt in the client ids); a refused one does not count.
MAX_ATTEMPTS = 99


def stop_limit_price(stop_loss: Decimal, tick_size: Decimal) -> Decimal:
    """The stop-loss leg's limit price: ``STOP_LIMIT_GAP`` below ``stop_loss``, rounded down to ``tick_size``."""
    limit = stop_loss * (1 - STOP_LIMIT_GAP)
    return (limit / tick_size).to_integral_value(rounding=ROUND_DOWN) * tick_size if tick_size > 0 else limit


class _Exits:
    """Mixin of ``ExecutionService``: the attributes below are set by its constructor."""

    _repo: TradingRepository
    _executors: Mapping[str, Executor]
    _rules: Callable[[str], SymbolRules | None]
    _on_opened: Callable[[PositionRecord], None]
    _reported_at: dict[UUID, float]

    async def _book_exit_fill(self, position: PositionRecord, kind: str, client_order_id: str, fill: Fill) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------ state
    @staticmethod
    def _protected(position: PositionRecord) -> bool:
        """Whether ``position`` is one the exchange protects (a live long)."""
        return position.mode == "live" and position.side == "long"

    async def _sync_exits(self, position: PositionRecord, *, cancel: bool) -> tuple[ExitState, Any]:
        """The state of the position's last exit attempt on the exchange (module doc); with ``cancel``
        the list is cancelled first, so ``working`` is never the answer. ``closed`` comes with the
        booking's result ``(pnl, pnl_percent)``.

        Raises:
            ExecutionError: the exchange could not be asked (the stored state is unchanged).
        """
        attempt = position.exit_attempt
        if not self._protected(position) or attempt == 0:
            return "none", None
        executor = self._executors["live"]
        ids = exit_ids(position.id, attempt)
        if cancel and await executor.cancel_exits(position.symbol, ids):  # type: ignore[attr-defined]
            await self._repo.set_exit_list(position.id, attempt, None)
            log.info("exits_cancelled", trader_id=str(position.trader_id), symbol=position.symbol,
                     list_client_order_id=ids.list_id)
            return "none", None
        report = await executor.exit_report(position.symbol, ids)  # type: ignore[attr-defined]
        self._reported_at[position.id] = time.monotonic()
        if report is None:
            return "none", None
        if report.executing:
            if cancel:
                raise ExecutionError(f"exit list {ids.list_id} is still working after its cancel")
            if position.exit_order_list_id != report.order_list_id:
                self._on_opened(await self._repo.set_exit_list(position.id, attempt, report.order_list_id))
            return "working", None
        if report.filled is not None:
            kind, leg_id, fill = report.filled
            return "closed", await self._book_exit_fill(position, kind, leg_id, fill)
        if position.exit_order_list_id is not None:
            await self._repo.set_exit_list(position.id, attempt, None)
        return "none", None

    def _report_due(self, position_id: UUID) -> bool:
        """Whether the exchange may be asked about the position's exits again (``REPORT_EVERY_S``)."""
        return time.monotonic() - self._reported_at.get(position_id, 0.0) >= REPORT_EVERY_S

    # ------------------------------------------------------------ placing
    async def _protect(self, position: PositionRecord) -> PositionRecord | None:
        """Make sure a live long has a working exit list for its size and levels: nothing to do when its
        last attempt works; otherwise the next attempt is written, then placed (module doc).

        Returns:
            The position as stored after it, or None when a leg had filled (the position is closed).
            A list the exchange refuses or cannot confirm leaves the position unprotected (logged);
            the monitor closes it at market if a level is crossed and the next change or restart
            places the next attempt.

        Raises:
            ExecutionError: the exchange could not be asked about the last attempt.
        """
        if not self._protected(position) or position.status != "open":
            return position
        state, _ = await self._sync_exits(position, cancel=False)
        if state == "working":
            return position
        if state == "closed":
            return None
        if position.stop_loss is None or position.take_profit is None:
            return position
        executor = self._executors["live"]
        rules = self._rules(position.symbol)
        step = rules.step_size if rules is not None else Decimal(0)
        quantity = (position.size / step).to_integral_value(rounding=ROUND_DOWN) * step if step > 0 else position.size
        tick = rules.tick_size if rules is not None else Decimal(0)
        entry = position.entry_price or position.stop_loss
        take_profit = round_level("long", position.take_profit, entry, tick)  # on the tick grid, towards the entry
        stop_loss = round_level("long", position.stop_loss, entry, tick)
        stop_limit = stop_limit_price(stop_loss, tick)
        attempt = position.exit_attempt + 1
        if attempt > MAX_ATTEMPTS:
            log.error("exits_attempts_exhausted", trader_id=str(position.trader_id), symbol=position.symbol)
            return position
        ids = exit_ids(position.id, attempt)
        position = await self._repo.set_exit_list(position.id, attempt, None)  # written before it is sent
        crashpoint("exits_written")
        tlog = log.bind(trader_id=str(position.trader_id), symbol=position.symbol, list_client_order_id=ids.list_id)
        try:
            list_id = await executor.place_exits(  # type: ignore[attr-defined]
                position.symbol, quantity, take_profit, stop_loss, stop_limit, ids)
            crashpoint("exits_placed")
        except OutcomeUnknown:
            try:
                report = await executor.exit_report(position.symbol, ids)  # type: ignore[attr-defined]
            except ExecutionError as exc:
                tlog.warning("exits_unconfirmed", error=str(exc))
                return position
            if report is None:
                tlog.warning("exits_not_placed", error="unknown outcome; the exchange never saw the list")
                return position
            list_id = report.order_list_id
        except OrderRejected as exc:
            tlog.warning("exits_refused", error=str(exc), stop_loss=str(position.stop_loss),
                         take_profit=str(position.take_profit))
            # refused, so never placed: the attempt's ids stay free for the next try
            return await self._repo.set_exit_list(position.id, attempt - 1, None)
        position = await self._repo.set_exit_list(position.id, attempt, list_id)
        tlog.info("exits_placed", order_list_id=list_id, quantity=str(quantity), stop_loss=str(position.stop_loss),
                  take_profit=str(position.take_profit))
        return position

    async def cancel_orphan_list(self, symbol: str, list_client_order_id: str) -> bool:
        """Cancel a working exit list of ours that its position no longer owns (reconciliation): the
        position is closed, or the list is not its current attempt (read under the position's lock).
        Returns whether it was cancelled.

        Raises:
            ExecutionError: the exchange refused or could not be asked.
        """
        owner = exit_list_owner(list_client_order_id)
        if owner is None:
            return False
        position_id, attempt = owner
        async with self._position_lock(position_id):  # type: ignore[attr-defined]
            current = await self._repo.position(position_id)
            if current is not None and current.status == "open" and current.exit_attempt == attempt:
                return False  # its position's current protection after all
            cancelled = await self._executors["live"].cancel_exits(symbol, exit_ids(position_id, attempt))  # type: ignore[attr-defined]
        if cancelled:
            log.warning("orphan_exits_cancelled", symbol=symbol, list_client_order_id=list_client_order_id)
        return cancelled

    async def _unprotect(self, position: PositionRecord) -> tuple[ExitState, Any]:
        """Cancel the position's working exit list before an order that sells or changes what it
        holds; ``("closed", result)`` when a leg had filled first."""
        return await self._sync_exits(position, cancel=True)
