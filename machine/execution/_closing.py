"""Closing positions, alone or in batches (the closing half of ``ExecutionService``).

:meth:`_Closing.close_many` closes every position one price update crossed in one go:
each position's lock (in id order), one read of them all as stored, the risk gate per
position, one ``INSERT`` of every closing intent (committed before any order is sent),
the orders (concurrently), then one transaction booking every fill
(``machine.persistence._closes``). A batch of one is :meth:`_Closing.close`.

Per position nothing changes from closing it alone: a position already closed is
skipped (``None``); a closing intent left ``pending`` by an earlier attempt (its order
sent, its booking failed) is resolved by asking the executor for its fill by client
order id (booked when it filled, cancelled when the executor never saw it, and only then
a new attempt with a new id); an order whose outcome is unknown (``OutcomeUnknown``) is
resolved the same way at once, its intent kept pending when the venue cannot tell; an
order that fails otherwise cancels its intent; and when the
batch's booking fails, each fill is booked on its own so one bad row does not keep the
others open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Union
from uuid import UUID

import structlog

from machine.accounts import close_fill_changes, close_quantity
from machine.crashpoints import crashpoint
from machine.execution._errors import ExecutionError, OutcomeUnknown, RiskDenied
from machine.execution._exits import STOP_LIMIT_GAP
from machine.execution._orders import Executor, Fill, OrderRequest, Trigger, client_order_id
from machine.money import EIGHT_DP
from machine.persistence import CloseFill, CloseIntent, PositionRecord, TradeRecord

if TYPE_CHECKING:
    from machine.execution._rules import SymbolRules
    from machine.persistence import TradingRepository

__all__ = ["MANUAL_EXIT", "CloseRequest", "CloseResult"]

#: The close reason of an exit by hand (``/force-exit``): the risk gate lets it through in every state.
MANUAL_EXIT = "manual_exit"

log = structlog.get_logger(__name__)

CloseResult = Union[tuple[Decimal, Decimal], None, Exception]
"""Per request: ``(pnl, pnl_percent)`` in the quote asset and percent, None when the position
was already closed, or the error that kept it open (``RiskDenied``, ``NoPrice``, an order's)."""


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """A position to close, the reason stored with it and, for a stop-loss/take-profit, its trigger."""

    position: PositionRecord
    reason: str
    trigger: Trigger | None = None


@dataclass(frozen=True, slots=True)
class _Planned:
    index: int
    request: CloseRequest
    position: PositionRecord  # as stored when the batch started
    executor: Executor
    base: str
    quote: str
    intent: CloseIntent


def fee_in_quote(fill: Fill, quote: str) -> Decimal:
    """The fill's commission valued in the quote asset (a base-asset commission at the fill's price), 8 dp."""
    if fill.fee_asset == quote:
        return fill.fee
    return (fill.fee * fill.price).quantize(EIGHT_DP)


class _Closing:
    """Mixin of ``ExecutionService``: the attributes below are set by its constructor."""

    _user_id: UUID
    _repo: TradingRepository
    _executors: Mapping[str, Executor]
    _rules: Callable[[str], SymbolRules | None]
    _on_closed: Callable[[PositionRecord, str], None]
    orders_sent: int
    orders_failed: int
    in_flight: set[str]

    def _position_lock(self, position_id: UUID) -> asyncio.Lock:
        raise NotImplementedError

    async def _ask(self, trader_id: UUID, symbol: str, kind: str) -> None:
        raise NotImplementedError

    def _assets(self, symbol: str, rules: SymbolRules | None) -> tuple[str, str]:
        raise NotImplementedError

    # ------------------------------------------------------------ public
    async def close(
        self, position: PositionRecord, reason: str, trigger: Trigger | None = None
    ) -> tuple[Decimal, Decimal] | None:
        """Close an open position; returns ``(pnl, pnl_percent)``, or None when it is already closed.

        ``trigger`` None: at market. Otherwise the stop-loss or take-profit that
        fired, filled as its order would be (``machine.execution._fill_rules``).

        Raises:
            RiskDenied: the risk gate refused the exit, or no executor for the mode.
            NoPrice: no last price yet (the intent is cancelled; the position stays open).
        """
        [result] = await self.close_many([CloseRequest(position, reason, trigger)])
        if isinstance(result, Exception):
            raise result
        return result

    async def close_many(self, requests: Sequence[CloseRequest]) -> list[CloseResult]:
        """Close several positions together (module doc); one :data:`CloseResult` per request, in order.

        A position named twice is closed once (the second gets None). Errors are returned, not raised.
        """
        async with AsyncExitStack() as locks:
            for position_id in sorted({r.position.id for r in requests}):
                await locks.enter_async_context(self._position_lock(position_id))
            return await self._close_locked(requests)

    # ------------------------------------------------------------ steps
    async def _close_locked(self, requests: Sequence[CloseRequest]) -> list[CloseResult]:
        results: list[CloseResult] = [None] * len(requests)
        stored = await self._repo.positions_with_close_attempts([r.position.id for r in requests])
        planned: list[_Planned] = []
        taken: set[UUID] = set()
        for index, request in enumerate(requests):
            entry = stored.get(request.position.id)
            if entry is None or entry[0].status != "open" or request.position.id in taken:
                continue  # already closed
            taken.add(request.position.id)
            try:
                if entry[0].exit_attempt:  # a live position the exchange protects (``_exits``)
                    if request.trigger is not None and not self._report_due(entry[0].id):  # type: ignore[attr-defined]
                        continue  # asked a moment ago: the exchange holds the exit
                    state, result = await self._sync_exits(  # type: ignore[attr-defined]
                        entry[0], cancel=request.trigger is None)
                    if state == "working" and self._stop_failed(entry[0], request.trigger):
                        state, result = await self._sync_exits(entry[0], cancel=True)  # type: ignore[attr-defined]
                    if state == "closed" or (state == "working" and request.trigger is not None):
                        results[index] = result  # booked from the leg's fill, or still the exchange's to execute
                        continue
                planned.append(await self._plan(index, request, *entry))
            except Exception as exc:
                results[index] = exc
        written = await self._repo.create_close_intents(self._user_id, [p.intent for p in planned])
        sending: list[tuple[_Planned, UUID]] = []
        for p in planned:
            trade_id = written.get(p.position.id)
            if trade_id is not None:
                sending.append((p, trade_id))
            else:  # an earlier attempt's intent is still pending: resolve it by asking, never by resending
                results[p.index] = await self._resolve_pending(p)
        for p, result in zip([p for p, _ in sending], await self._send_and_book(sending)):
            results[p.index] = result
        return results

    async def _plan(self, index: int, request: CloseRequest, position: PositionRecord, attempts: int) -> _Planned:
        """Gate and size one close as the position is stored now (``attempts``: its earlier closing intents)."""
        trigger = request.trigger
        kind = "protective" if trigger is not None else "manual" if request.reason == MANUAL_EXIT else "exit"
        await self._ask(position.trader_id, position.symbol, kind)
        executor = self._executors.get(position.mode)
        if executor is None:
            raise RiskDenied(f"{position.mode} execution is not available on this machine")
        rules = self._rules(position.symbol)
        base, quote = self._assets(position.symbol, rules)
        step = rules.step_size if rules is not None else Decimal(0)
        quantity = close_quantity(position.side, position.size, executor.taker_rate, step)
        intent = CloseIntent(position.id, position.trader_id, position.mode, "SELL" if position.side == "long" else "BUY",
                             position.symbol, client_order_id(position.id, "close", attempts + 1), quantity)
        return _Planned(index, request, position, executor, base, quote, intent)

    @staticmethod
    def _stop_failed(position: PositionRecord, trigger: Trigger | None) -> bool:
        """Whether a working exit list's stop-loss leg triggered but cannot fill: the price is already
        below its limit (``_exits.STOP_LIMIT_GAP``); the list is then cancelled and the position closed at market."""
        if trigger is None or trigger.kind != "stop_loss" or position.stop_loss is None:
            return False
        return trigger.low < position.stop_loss * (1 - STOP_LIMIT_GAP)

    async def recover_close(self, trade: TradeRecord) -> CloseResult:
        """Resolve a closing intent left pending (reconciliation): the position closes on the fill the
        venue reports for its client order id (reason ``reconciled``), or the intent is cancelled when
        the venue never carried it out. Never sends it.

        Raises:
            ExecutionError: the venue could not tell (the intent stays pending).
        """
        async with self._position_lock(trade.position_id):
            entry = (await self._repo.positions_with_close_attempts([trade.position_id])).get(trade.position_id)
            if entry is None or entry[0].status != "open":
                return None
            position = entry[0]
            executor = self._executors[trade.type]
            known = await executor.query(trade.client_order_id, trade.symbol)
            if known is None:
                await self._repo.cancel_trade(trade, "closing order unknown to the venue (reconciliation); not sent")
                return None
            base, quote = self._assets(position.symbol, self._rules(position.symbol))
            intent = CloseIntent(position.id, position.trader_id, position.mode, trade.side, position.symbol,
                                 trade.client_order_id, trade.quantity)
            planned = _Planned(-1, CloseRequest(position, "reconciled"), position, executor, base, quote, intent)
            return (await self._book([(planned, trade, known)]))[0]

    async def _book_exit_fill(self, position: PositionRecord, kind: str, client_order_id: str, fill: Fill
                              ) -> CloseResult:
        """Book the fill of the position's exit list leg ``client_order_id`` (``take_profit``/``stop_loss``)
        as its close: the leg's closing trade is written, then filled (``_exits``).

        Raises:
            ExecutionError: another closing order of the position is pending and the exchange has it.
        """
        executor = self._executors[position.mode]
        base, quote = self._assets(position.symbol, self._rules(position.symbol))
        intent = CloseIntent(position.id, position.trader_id, position.mode, "SELL" if position.side == "long" else "BUY",
                             position.symbol, client_order_id, fill.quantity)
        trade_id = (await self._repo.create_close_intents(self._user_id, [intent])).get(position.id)
        if trade_id is None:  # a closing trade is pending: the leg's own (written before a crash), or another's
            pending = await self._repo.pending_close(position.id)
            if pending is None:
                return None  # closed meanwhile
            if pending.client_order_id != client_order_id:
                if await executor.query(pending.client_order_id, pending.symbol) is not None:
                    raise ExecutionError(f"{position.symbol}: exit leg {client_order_id} and closing order "
                                         f"{pending.client_order_id} both filled")
                await self._repo.cancel_trade(pending, "superseded: the exit list's leg filled first")
                return await self._book_exit_fill(position, kind, client_order_id, fill)
            trade_id = pending.id
        trade = TradeRecord(trade_id, position.id, position.trader_id, "close", intent.side, position.symbol,
                            client_order_id, fill.quantity, "pending", position.mode)
        planned = _Planned(-1, CloseRequest(position, kind), position, executor, base, quote, intent)
        [result] = await self._book([(planned, trade, fill)])
        if isinstance(result, Exception):
            raise result
        return result

    async def _resolve_pending(self, p: _Planned) -> CloseResult:
        try:
            pending = await self._repo.pending_close(p.position.id)
            if pending is None:
                return None  # closed meanwhile
            known = await p.executor.query(pending.client_order_id, pending.symbol)
            if known is not None:
                return (await self._book([(p, pending, known)]))[0]
            await self._repo.cancel_trade(pending, "closing order unknown to the venue; not sent")
            written = await self._repo.create_close_intents(self._user_id, [p.intent])  # the next attempt's id
            if p.position.id not in written:
                return None
            return (await self._send_and_book([(p, written[p.position.id])]))[0]
        except Exception as exc:
            return exc

    async def _send_and_book(self, sending: Sequence[tuple[_Planned, UUID]]) -> list[CloseResult]:
        """Send every written intent's order (concurrently), cancel the intents of failed ones, book the fills."""
        ids = {p.intent.client_order_id for p, _ in sending}
        self.in_flight |= ids
        crashpoint("intent_written")
        try:
            fills = await asyncio.gather(*(
                p.executor.submit(OrderRequest(p.intent.client_order_id, p.position.symbol, p.intent.side,
                                               p.intent.quantity, p.request.trigger))
                for p, _ in sending), return_exceptions=True)
        finally:
            self.in_flight -= ids
        crashpoint("order_answered")
        results: list[CloseResult] = [None] * len(sending)
        to_book: list[tuple[int, tuple[_Planned, TradeRecord, Fill]]] = []
        for i, ((p, trade_id), fill) in enumerate(zip(sending, fills)):
            trade = TradeRecord(trade_id, p.position.id, p.position.trader_id, "close", p.intent.side,
                                p.position.symbol, p.intent.client_order_id, p.intent.quantity, "pending",
                                p.position.mode)
            if isinstance(fill, OutcomeUnknown):  # resolved by asking, never by sending again
                try:
                    fill = await self._resolve_unknown(p.executor, trade)  # type: ignore[attr-defined]
                except ExecutionError as exc:  # not carried out (intent cancelled) or still unknown (kept pending)
                    results[i] = exc
                    continue
            if isinstance(fill, BaseException):
                if not isinstance(fill, Exception):
                    raise fill  # cancellation: the intents stay pending, a restart resolves them by asking
                self.orders_failed += 1
                await self._repo.cancel_trade(trade, f"order failed: {fill}")
                results[i] = fill
                continue
            self.orders_sent += 1
            to_book.append((i, (p, trade, fill)))
        for (i, _), result in zip(to_book, await self._book([item for _, item in to_book])):
            results[i] = result
        return results

    async def _book(self, items: Sequence[tuple[_Planned, TradeRecord, Fill]]) -> list[CloseResult]:
        """Book the fills in one transaction; on an error each on its own (module doc)."""
        if not items:
            return []
        fills = [
            CloseFill(trade.id, trade.type, p.position.id, p.position.trader_id, p.position.signal_id, p.position.side,
                      fill.price, fill.quantity, fill.fee, fill.fee_asset, fee_in_quote(fill, p.quote),
                      close_fill_changes(p.position.side, p.base, p.quote, fill.price, fill.quantity, fill.fee,
                                         p.position.reserved),
                      p.request.reason, fill.order_id, fill.price_time_ms)
            for p, trade, fill in items
        ]
        try:
            pnls = await self._repo.record_close_fills(fills)
        except Exception as exc:
            if len(items) == 1:
                return [exc]  # the intent stays pending with its fill known: the next close resolves it
            log.warning("close_batch_booking_failed", positions=len(items), error=str(exc))
            return [(await self._book([item]))[0] for item in items]
        for (p, trade, fill), (pnl, _) in zip(items, pnls):
            log.info("position_closed", trader_id=str(p.position.trader_id), symbol=p.position.symbol,
                     reason=p.request.reason, price=str(fill.price), pnl=str(pnl), client_order_id=trade.client_order_id)
            self._on_closed(p.position, p.request.reason)
        return list(pnls)
