"""Order sequence steps on an open position (the steps half of ``ExecutionService``): ``reduce``
(partial close, scale out) and ``increase`` (scale in).

Each step's client order id comes from (sequence, step, attempt); a step whose order is already
written is resolved by asking the executor (:meth:`_Steps._step_pending`), never sent again, and
:meth:`_Steps.settle_step` resolves one without sending anything (a restart, reconciliation). A
live long's exits are cancelled before the order and placed for the new size after (``_exits``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog

from machine.accounts import equity, open_fill_changes, open_reservation, reduce_changes
from machine.execution._closing import fee_in_quote
from machine.execution._errors import NoPrice, RiskDenied
from machine.execution._orders import Executor, Fill, OrderRequest, step_order_id
from machine.execution._rules import SymbolRules, market_quantity_problem, notional_problem
from machine.money import quantity_for_notional
from machine.persistence import InsufficientFunds, PositionRecord
from machine.traders import TraderConfig

if TYPE_CHECKING:
    from machine.persistence import TradingRepository

__all__: list[str] = []

log = structlog.get_logger(__name__)
_HUNDRED = Decimal(100)


class _Steps:
    """Mixin of ``ExecutionService``: the attributes and helpers below are its."""

    _user_id: UUID
    _repo: TradingRepository
    _rules: Callable[[str], SymbolRules | None]
    _last_price: Callable[[str], Decimal | None]
    _avg_price: Callable[[str], Decimal | None]
    _locks: dict[UUID, asyncio.Lock]
    _on_opened: Callable[[PositionRecord], None]
    _quote: str
    _executors: Mapping[str, Executor]

    async def _step_pending(self, executor: Executor, sequence_id: UUID, step: int) -> tuple[Any, Fill | None]:
        """The step's order already written: ``(trade, fill)`` when it is known to the venue
        (filled: book it), ``(trade, None)`` when it is booked already; ``(None, None)`` when there
        is none (a pending one the venue never saw is cancelled first)."""
        trade = await self._repo.step_trade(sequence_id, step)
        if trade is None:
            return None, None
        if trade.status == "filled":
            return trade, None
        known = await executor.query(trade.client_order_id, trade.symbol)
        if known is not None:
            return trade, known
        await self._repo.cancel_trade(trade, "order unknown to the venue; not sent")
        return None, None

    async def reduce(
        self, position: PositionRecord, *, sequence_id: UUID, step: int, quantity: Decimal
    ) -> PositionRecord:
        """Reduce an open position by an order of ``quantity`` (base asset): a SELL of what a long
        holds, a BUY that repays part of what a short owes (``machine.accounts.reduce_quantity``).

        Books the fill at the average cost (``machine.accounts.reduce_changes``): the realised
        PnL is added to the position's ``realized_pnl``. Idempotent per (sequence, step).

        Returns:
            The position after the reduce.

        Raises:
            RiskDenied: the position is not open, or the order is more than it holds or owes,
                or below the exchange minimums.
            NoPrice: no last price yet (the intent is cancelled).
        """
        executor = self._executor(position.mode)
        async with self._position_lock(position.id):
            current = await self._open_position(position.id)
            rules = self._rules(current.symbol)
            base, quote = self._assets(current.symbol, rules)
            trade, fill = await self._step_pending(executor, sequence_id, step)
            if trade is not None and fill is None:
                return await self._reprotect(current)  # booked before
            if trade is None:
                await self._ask(current.trader_id, current.symbol, "exit")
                problem = self._reduce_problem(current, quantity, executor, rules)
                if problem:
                    raise RiskDenied(problem)
                await self._release_exits(current)
                trade = await self._repo.create_step_intent(
                    current, self._user_id, purpose="reduce", sequence_id=sequence_id, step=step,
                    client_order_id=lambda attempt: step_order_id(sequence_id, step, attempt), quantity=quantity,
                    quote_asset=quote)
                if trade is None:
                    raise RiskDenied("the step's order was written concurrently")
                fill = await self._send(executor, trade, OrderRequest(trade.client_order_id, current.symbol, trade.side,
                                                                      quantity))
            updated = await self._book_reduce(current, trade, fill, base, quote)
        self._on_opened(updated)
        return updated

    async def _book_reduce(self, current: PositionRecord, trade: Any, fill: Fill, base: str, quote: str
                           ) -> PositionRecord:
        """Book a reduce step's fill at the average cost (under the position's lock), then protect what is left."""
        assert current.cost_basis is not None
        reduction = reduce_changes(current.side, base, quote, fill.price, fill.quantity, fill.fee, current.size,
                                   current.reserved, current.cost_basis)
        updated = await self._repo.record_reduce_fill(
            current, trade, price=fill.price, quantity=fill.quantity, fee=fill.fee, fee_asset=fill.fee_asset,
            fee_quote=fee_in_quote(fill, quote), reduction=reduction, order_id=fill.order_id,
            price_time_ms=fill.price_time_ms)
        log.info("position_reduced", trader_id=str(current.trader_id), symbol=current.symbol, side=current.side,
                 quantity=str(fill.quantity), price=str(fill.price), pnl=str(reduction.pnl), size=str(updated.size),
                 client_order_id=trade.client_order_id)
        return await self._reprotect(updated)

    async def _book_increase(self, current: PositionRecord, trade: Any, fill: Fill, base: str, quote: str
                             ) -> PositionRecord:
        """Book a scale-in step's fill (the entry becomes the average), then protect the new size."""
        changes, added, locked = open_fill_changes(current.side, base, quote, fill.price, fill.quantity, fill.fee,
                                                   trade.reserved)
        updated = await self._repo.record_increase_fill(
            current, trade, price=fill.price, quantity=fill.quantity, fee=fill.fee, fee_asset=fill.fee_asset,
            fee_quote=fee_in_quote(fill, quote), added=added, locked=locked, changes=changes,
            order_id=fill.order_id, price_time_ms=fill.price_time_ms)
        log.info("position_increased", trader_id=str(current.trader_id), symbol=current.symbol, side=current.side,
                 quantity=str(fill.quantity), price=str(fill.price), size=str(updated.size),
                 entry_price=str(updated.entry_price), client_order_id=trade.client_order_id)
        return await self._reprotect(updated)

    async def settle_step(self, trade: Any) -> PositionRecord | None:
        """Resolve an order sequence step's order (``increase``/``reduce``) left pending, without sending
        anything: booked when the venue filled it, cancelled when it never saw it (a restart that ends a
        risk-adding sequence, reconciliation).

        Returns:
            The position after it, or None when it is no longer open (the order is left to the audit).

        Raises:
            ExecutionError: the venue could not tell (the intent stays pending).
        """
        executor = self._executor(trade.type)
        async with self._position_lock(trade.position_id):
            current = await self._repo.position(trade.position_id)
            if current is None or current.status != "open" or trade.sequence_id is None or trade.step is None:
                return None
            pending, fill = await self._step_pending(executor, trade.sequence_id, trade.step)
            if pending is None or fill is None:
                return current  # never carried out (cancelled now), or booked before
            base, quote = self._assets(current.symbol, self._rules(current.symbol))
            if pending.purpose == "increase":
                updated = await self._book_increase(current, pending, fill, base, quote)
            else:
                updated = await self._book_reduce(current, pending, fill, base, quote)
        self._on_opened(updated)
        return updated

    def _reduce_problem(self, position: PositionRecord, quantity: Decimal, executor: Executor,
                        rules: SymbolRules | None) -> str | None:
        if quantity <= 0:
            return "the reduce rounds to nothing at the symbol's step size"
        repays = quantity if position.side == "long" else quantity - quantity * executor.taker_rate
        if repays > position.size:
            return f"the reduce ({quantity:f}) is more than the position's size {position.size:f}"
        if rules is None:
            return None
        price = self._last_price(position.symbol)
        avg = self._avg_price(position.symbol) or price
        return market_quantity_problem(quantity, rules) or (notional_problem(quantity, avg, rules) if avg else None)

    async def increase(
        self, trader: TraderConfig, position: PositionRecord, *, sequence_id: UUID, step: int,
        quantity: Decimal | None,
    ) -> PositionRecord:
        """Add to an open position (scale in): a BUY for a long, a SELL of borrowed base for a paper short.

        ``quantity`` (base asset) rounded down to the step size; None: the trader's position
        size (``risk.position_size_pct`` of its equity). Reserves funds with the intent like an
        open; the entry price becomes the average of the opening and increasing fills.
        Idempotent per (sequence, step).

        Raises:
            RiskDenied: the position is not open, a live short, funds or size below what the
                exchange or the account allows.
            NoPrice: no last price yet.
        """
        executor = self._executor(trader.mode)
        if position.side == "short" and trader.mode != "paper":
            raise RiskDenied("live spot cannot short (paper shorts are 1x margin shorts)")
        async with self._locks.setdefault(trader.id, asyncio.Lock()), self._position_lock(position.id):
            current = await self._open_position(position.id)
            rules = self._rules(current.symbol)
            if rules is None:
                raise RiskDenied(f"{current.symbol} is not a tradable symbol")
            base, quote = self._assets(current.symbol, rules)
            trade, fill = await self._step_pending(executor, sequence_id, step)
            if trade is not None and fill is None:
                return await self._reprotect(current)
            if trade is None:
                await self._ask(trader.id, current.symbol, "entry")
                price = self._last_price(current.symbol)
                if price is None:
                    raise NoPrice(f"no last price for {current.symbol}")
                qty = await self._increase_quantity(trader, current, quantity, price, rules)
                await self._release_exits(current)
                reserved = open_reservation(price, qty)
                try:
                    trade = await self._repo.create_step_intent(
                        current, self._user_id, purpose="increase", sequence_id=sequence_id, step=step,
                        client_order_id=lambda attempt: step_order_id(sequence_id, step, attempt), quantity=qty,
                        reserve=reserved, quote_asset=quote)
                except InsufficientFunds as exc:
                    raise RiskDenied(str(exc)) from None
                if trade is None:
                    raise RiskDenied("the step's order was written concurrently")
                fill = await self._send(executor, trade, OrderRequest(trade.client_order_id, current.symbol, trade.side,
                                                                      qty))
            updated = await self._book_increase(current, trade, fill, base, quote)
        self._on_opened(updated)
        return updated

    async def _increase_quantity(self, trader: TraderConfig, position: PositionRecord, quantity: Decimal | None,
                                 price: Decimal, rules: SymbolRules) -> Decimal:
        if quantity is None:
            balances = await self._balances(trader)
            try:
                value = equity(balances, self._quote, lambda asset: self._last_price(asset + self._quote))
            except LookupError as exc:
                raise NoPrice(str(exc)) from None
            qty = quantity_for_notional(value * trader.risk.position_size_pct / _HUNDRED, price, rules.step_size,
                                        rules.min_qty)
        else:
            step = rules.step_size
            qty = (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step if step > 0 else quantity
        if qty <= 0:
            raise RiskDenied("the scale-in is below the exchange minimum quantity")
        avg = self._avg_price(position.symbol) or price
        problem = market_quantity_problem(qty, rules) or notional_problem(qty, avg, rules)
        if problem:
            raise RiskDenied(f"scale-in size refused: {problem}")
        return qty
