"""Opening, changing and closing positions: risk gate, intent, order, fill, in that order.

Every order is persisted as an intent with its deterministic client order id
before it is sent; the fill is persisted before the position changes state.
Paper positions are sized from the trader's equity (``machine.accounts.equity``:
cash plus holdings at the last price, never a short's proceeds) and reserve
their funds with the intent (``machine.accounts.open_reservation``).

A position's changes (close, reduce, increase, moved levels) run one at a time per
position, each on the position as stored at that moment (so a stop-loss racing a
partial close sells what is left, never what was there). ``reduce`` and ``increase``
are steps of an order sequence (``machine.sequences``): their client order ids come
from (sequence, step, attempt), and a step whose order is already pending is resolved
by asking the executor, never by sending it again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from machine.accounts import (
    equity,
    open_fill_changes,
    open_reservation,
)
from machine.crashpoints import crashpoint
from machine.execution._closing import MANUAL_EXIT, _Closing, fee_in_quote
from machine.execution._errors import ExecutionError, NoPrice, OutcomeUnknown, RiskDenied
from machine.execution._exits import _Exits
from machine.execution._fill_rules import market_fill_price
from machine.execution._orders import Executor, Fill, OrderRequest, Trigger, client_order_id
from machine.execution._rules import SymbolRules, level_problem, market_quantity_problem, notional_problem, round_level
from machine.execution._steps import _Steps
from machine.money import quantity_for_notional, sl_tp_from_pct
from machine.persistence import InsufficientFunds, PositionRecord, TradingRepository
from machine.traders import TraderConfig

__all__ = ["MANUAL_EXIT", "ExecutionService"]

log = structlog.get_logger(__name__)
_HUNDRED = Decimal(100)


class ExecutionService(_Closing, _Exits, _Steps):
    """Turns executable decisions into orders for one user.

    Args:
        repo: trading persistence.
        executors: executor per trader mode (``paper``, later ``live``).
        rules: symbol -> trading rules.
        last_price: latest price of a symbol in the quote asset.
        on_opened: called with a position when it opened or changed (size, levels).
        on_closed: called with a closed position and its reason.
        avg_price: a symbol's average price over its NOTIONAL ``avgPriceMins``
            (Binance ``GET /api/v3/avgPrice``), for the notional and percent-price
            checks; default the last price.
        live_balances: the exchange account's balances (asset -> (free, locked)), fresh;
            a live trader is sized from them (its orders do not move the paper ledger).
    """

    def __init__(
        self,
        *,
        user_id: UUID,
        repo: TradingRepository,
        executors: Mapping[str, Executor],
        rules: Callable[[str], SymbolRules | None],
        last_price: Callable[[str], Decimal | None],
        quote_asset: str,
        start_balance: Decimal,
        on_opened: Callable[[PositionRecord], None],
        on_closed: Callable[[PositionRecord, str], None],
        avg_price: Callable[[str], Decimal | None] | None = None,
        gate: Callable[[UUID, str, str], Awaitable[None]] | None = None,
        live_balances: Callable[[], Awaitable[Mapping[str, tuple[Decimal, Decimal]]]] | None = None,
    ) -> None:
        self._user_id = user_id
        self._repo = repo
        self._executors = executors
        self._rules = rules
        self._last_price = last_price
        self._quote = quote_asset
        self._start_balance = start_balance
        self._on_opened = on_opened
        self._on_closed = on_closed
        self._avg_price = avg_price or last_price
        self._gate = gate
        self._live_balances = live_balances
        self._locks: dict[UUID, asyncio.Lock] = {}
        self._position_locks: dict[UUID, asyncio.Lock] = {}
        self._reported_at: dict[UUID, float] = {}  # position -> when its exit list was last asked about
        self.in_flight: set[str] = set()  # client order ids being sent now (reconciliation leaves them be)
        self.orders_sent = 0
        self.orders_failed = 0
        self.orders_unresolved = 0  # unknown outcomes the venue could not tell (intents kept pending)

    async def open(
        self,
        trader: TraderConfig,
        signal_id: UUID,
        symbol: str,
        side: str,
        *,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        position_id: UUID | None = None,
    ) -> PositionRecord:
        """Open a ``long``/``short`` position of ``risk.position_size_pct`` of the trader's equity.

        Stop-loss/take-profit come from the decision when given and on the right
        side of the price, otherwise from the trader's risk percentages.
        ``position_id``: the new position's id (an order sequence fixes it in advance).

        Raises:
            RiskDenied: max positions reached, a live position on the symbol, a
                short in live mode, free quote below the reservation, a size below
                the exchange minimums, or no executor for the mode.
            NoPrice: no last price yet (for the symbol or an asset held).
        """
        executor = self._executors.get(trader.mode)
        if executor is None:
            raise RiskDenied(f"{trader.mode} execution is not available on this machine")
        if side == "short" and trader.mode != "paper":
            raise RiskDenied("live spot cannot short (paper shorts are 1x margin shorts)")
        rules = self._rules(symbol)
        if rules is None:
            raise RiskDenied(f"{symbol} is not a tradable symbol")
        base, quote = self._assets(symbol, rules)
        price = self._last_price(symbol)
        if price is None:
            raise NoPrice(f"no last price for {symbol}")
        # The gate and the intent are one step per trader: concurrent signals of the
        # same trader must not all pass a max_positions check made before any intent exists.
        async with self._locks.setdefault(trader.id, asyncio.Lock()):
            await self._ask(trader.id, symbol, "entry")
            if await self._repo.count_live(trader.id) >= trader.risk.max_positions:
                raise RiskDenied(f"max_positions ({trader.risk.max_positions}) reached")
            await self._repo.ensure_account(trader.id, self._user_id, self._start_balance, self._quote)
            balances = await self._balances(trader)
            try:
                value = equity(balances, self._quote, lambda asset: self._last_price(asset + self._quote))
            except LookupError as exc:
                raise NoPrice(str(exc)) from None
            target = value * trader.risk.position_size_pct / _HUNDRED
            qty = quantity_for_notional(target, price, rules.step_size, rules.min_qty)
            if qty <= 0:
                raise RiskDenied(f"position size below exchange minimum (target {target:.2f} {self._quote})")
            avg = self._avg_price(symbol) or price
            problem = market_quantity_problem(qty, rules) or notional_problem(qty, avg, rules)
            if problem:
                raise RiskDenied(f"position size refused: {problem} (target {target:.2f} {self._quote})")
            order_side = "BUY" if side == "long" else "SELL"
            expected = market_fill_price(order_side, price, getattr(executor, "slippage_bps", Decimal(0)), rules.tick_size)
            sl, tp = self._levels(trader, side, expected, rules, stop_loss, take_profit, avg)
            position_id = position_id or uuid.uuid4()
            reserved = open_reservation(price, qty)
            try:
                trade = await self._repo.create_open_intent(
                    signal_id=signal_id,
                    trader_id=trader.id,
                    user_id=self._user_id,
                    mode=trader.mode,
                    symbol=symbol,
                    side=side,
                    quantity=qty,
                    client_order_id=client_order_id(position_id, "open"),
                    position_id=position_id,
                    reserve=reserved,
                    quote_asset=quote,
                    stop_loss=sl,
                    take_profit=tp,
                )
            except InsufficientFunds as exc:
                raise RiskDenied(str(exc)) from None
            except asyncpg.UniqueViolationError:
                raise RiskDenied(f"a position on {symbol} is already open") from None
        fill = await self._send(executor, trade, OrderRequest(trade.client_order_id, symbol, trade.side, qty))
        changes, held, locked = open_fill_changes(side, base, quote, fill.price, fill.quantity, fill.fee, reserved)
        default_sl, default_tp = self._default_levels(trader, side, fill.price, rules)
        sl = sl if stop_loss is not None else default_sl
        tp = tp if take_profit is not None else default_tp
        position = await self._repo.record_open_fill(
            trade, price=fill.price, quantity=fill.quantity, fee=fill.fee, fee_asset=fill.fee_asset,
            fee_quote=fee_in_quote(fill, quote), held=held, locked=locked, changes=changes,
            stop_loss=sl, take_profit=tp, signal_id=signal_id, order_id=fill.order_id,
            price_time_ms=fill.price_time_ms,
        )
        log.info("position_opened", trader_id=str(trader.id), symbol=symbol, side=side, price=str(fill.price),
                 size=str(held), stop_loss=str(sl), take_profit=str(tp), client_order_id=trade.client_order_id)
        self._on_opened(position)
        crashpoint("fill_recorded")
        return await self._protect_opened(position)

    async def _protect_opened(self, position: PositionRecord) -> PositionRecord:
        """A live long just opened: its exit list on the exchange (``_exits``); a failure to ask is logged
        (the monitor still watches the levels; the next change or restart protects it)."""
        if not self._protected(position):
            return position
        async with self._position_lock(position.id):
            return await self._reprotect(position)

    async def _reprotect(self, position: PositionRecord) -> PositionRecord:
        """:meth:`_protect` under the position's lock (held by the caller); a failure to ask the exchange
        is logged, not raised: the change it follows is booked."""
        try:
            protected = await self._protect(position)
        except ExecutionError as exc:
            log.warning("exits_unconfirmed", trader_id=str(position.trader_id), symbol=position.symbol,
                        error=str(exc))
            return position
        if protected is not None:
            self._on_opened(protected)
        return protected or position

    async def _release_exits(self, position: PositionRecord) -> None:
        """Cancel a live long's exit list before an order that changes what it holds (its legs lock it).

        Raises:
            RiskDenied: a leg had filled: the position is booked closed by it.
        """
        state, _ = await self._unprotect(position)
        if state == "closed":
            raise RiskDenied("the position was closed by its exit order on the exchange")

    async def ensure_exits(self, position: PositionRecord) -> PositionRecord | None:
        """The live long's exit list as the exchange has it, placed when none works (``_exits``; at start,
        shutdown and reconciliation). A level the price has already crossed cannot be placed (the
        exchange refuses an OCO that would trigger at once): the position is closed at market for it.
        Returns the position, or None when it closed (a leg had filled, or a crossed level).

        Raises:
            ExecutionError: the exchange could not be asked.
        """
        async with self._position_lock(position.id):
            current = await self._repo.position(position.id)
            if current is None or current.status != "open":
                return None
            protected = await self._protect(current)
        if protected is None:
            return None
        self._on_opened(protected)
        trigger = self._crossed(protected) if protected.exit_order_list_id is None else None
        if trigger is not None and self._protected(protected):
            self._reported_at.pop(protected.id, None)  # just asked: the close asks again, then sells at market
            log.warning("exit_level_crossed_unprotected", trader_id=str(protected.trader_id), symbol=protected.symbol,
                        level=trigger.kind)
            await self.close(protected, trigger.kind, trigger)
            return None
        return protected

    def _crossed(self, position: PositionRecord) -> Trigger | None:
        """The level of a long the last price has crossed (stop-loss first), or None."""
        price = self._last_price(position.symbol)
        if price is None or position.side != "long":
            return None
        if position.stop_loss is not None and price <= position.stop_loss:
            return Trigger("stop_loss", position.stop_loss, price, price, price)
        if position.take_profit is not None and price >= position.take_profit:
            return Trigger("take_profit", position.take_profit, price, price, price)
        return None

    async def recover_open(self, trade: Any) -> PositionRecord | None:
        """Resolve an opening intent a restart left pending by asking the venue for its client order id:
        the position opens on the fill the venue reports (with the levels planned with the intent), or
        the intent is cancelled when the venue never carried the order out. Never sends it.

        Returns:
            The opened position, or None when the intent was cancelled.

        Raises:
            ExecutionError: the venue could not tell (``OutcomeUnknown``, ``RateLimited``...): the
                intent stays pending for the next attempt.
        """
        executor = self._executor(trade.type)
        known = await executor.query(trade.client_order_id, trade.symbol)
        if known is None:
            await self._repo.cancel_trade(trade, "interrupted before the order reached the venue (machine restarted)")
            return None
        pending = await self._repo.position(trade.position_id)
        if pending is None or pending.status != "pending":
            return pending
        rules = self._rules(trade.symbol)
        base, quote = self._assets(trade.symbol, rules)
        changes, held, locked = open_fill_changes(pending.side, base, quote, known.price, known.quantity, known.fee,
                                                  pending.reserved)
        position = await self._repo.record_open_fill(
            trade, price=known.price, quantity=known.quantity, fee=known.fee, fee_asset=known.fee_asset,
            fee_quote=fee_in_quote(known, quote), held=held, locked=locked, changes=changes,
            stop_loss=pending.stop_loss, take_profit=pending.take_profit, signal_id=pending.signal_id,
            order_id=known.order_id, price_time_ms=known.price_time_ms,
        )
        log.info("position_opened", trader_id=str(trade.trader_id), symbol=trade.symbol, side=pending.side,
                 price=str(known.price), size=str(held), recovered=True, client_order_id=trade.client_order_id)
        self._on_opened(position)
        return await self._protect_opened(position)

    async def _balances(self, trader: TraderConfig) -> Mapping[str, tuple[Decimal, Decimal]]:
        """What ``trader`` is sized from: its paper ledger, or for a live trader the exchange account."""
        if trader.mode == "live" and self._live_balances is not None:
            return await self._live_balances()
        return await self._repo.balances(trader.id)

    async def _resolve_unknown(self, executor: Executor, trade: Any) -> Fill:
        """An order whose outcome is unknown (``OutcomeUnknown``): its fill, by asking the venue for its
        client order id; never by sending it again.

        Raises:
            ExecutionError: the venue does not know it (the intent is cancelled: nothing happened).
            OutcomeUnknown: the venue could not tell; the intent stays pending for reconciliation.
        """
        try:
            known = await executor.query(trade.client_order_id, trade.symbol)
        except ExecutionError as exc:
            self.orders_unresolved += 1
            log.warning("order_outcome_unresolved", trader_id=str(trade.trader_id), symbol=trade.symbol,
                        client_order_id=trade.client_order_id, error=str(exc))
            raise OutcomeUnknown(f"order {trade.client_order_id}: outcome unknown, intent kept pending ({exc})") from None
        if known is None:
            self.orders_failed += 1
            await self._repo.cancel_trade(trade, "order unknown to the venue after an unknown outcome; not sent again")
            raise ExecutionError(f"order {trade.client_order_id} was not carried out")
        return known

    # ------------------------------------------------------------ changing an open position
    def _position_lock(self, position_id: UUID) -> asyncio.Lock:
        return self._position_locks.setdefault(position_id, asyncio.Lock())

    async def _open_position(self, position_id: UUID) -> PositionRecord:
        current = await self._repo.position(position_id)
        if current is None or current.status != "open":
            raise RiskDenied("the position is no longer open")
        return current

    async def set_levels(
        self, position: PositionRecord, *, stop_loss: Decimal | None = None, take_profit: Decimal | None = None
    ) -> PositionRecord:
        """Move an open position's stop-loss and/or take-profit (the other stays).

        A level is rounded to the tick size towards the current price and must be on its
        right side (a long's stop-loss below it, take-profit above; a short's mirrored) and
        within PRICE_FILTER and PERCENT_PRICE_BY_SIDE (``_rules.level_problem``).

        Raises:
            RiskDenied: the position is not open, or a level cannot be placed.
            NoPrice: no last price yet.
        """
        async with self._position_lock(position.id):
            current = await self._open_position(position.id)
            rules = self._rules(current.symbol)
            price = self._last_price(current.symbol)
            if price is None:
                raise NoPrice(f"no last price for {current.symbol}")
            avg = self._avg_price(current.symbol) or price
            sl, tp = current.stop_loss, current.take_profit
            for kind, level in (("stop_loss", stop_loss), ("take_profit", take_profit)):
                if level is None:
                    continue
                if rules is not None:
                    level = round_level(current.side, level, price, rules.tick_size)
                    problem = level_problem(current.side, kind, level, price, avg, rules, reference="current price")
                    if problem:
                        raise RiskDenied(problem)
                if kind == "stop_loss":
                    sl = level
                else:
                    tp = level
            updated = await self._repo.update_levels(current.id, sl, tp)
            if updated is not None and self._protected(updated) and updated.exit_attempt:
                await self._release_exits(updated)  # a cancel-replace: the next attempt at the new levels
                updated = await self._reprotect(await self._open_position(updated.id))
        if updated is None:
            raise RiskDenied("the position is no longer open")
        log.info("position_levels_moved", trader_id=str(current.trader_id), symbol=current.symbol,
                 stop_loss=str(sl), take_profit=str(tp))
        self._on_opened(updated)
        return updated

    async def _ask(self, trader_id: UUID, symbol: str, kind: str) -> None:
        if self._gate is not None:
            await self._gate(trader_id, symbol, kind)

    def _executor(self, mode: str) -> Executor:
        executor = self._executors.get(mode)
        if executor is None:
            raise RiskDenied(f"{mode} execution is not available on this machine")
        return executor

    async def _send(self, executor: Executor, trade: Any, order: OrderRequest) -> Fill:
        """Send the order of a written intent: its fill. An unknown outcome is resolved by asking
        (:meth:`_resolve_unknown`); any other failure cancels the intent and is raised."""
        self.in_flight.add(order.client_order_id)
        crashpoint("intent_written")
        try:
            fill = await executor.submit(order)
            crashpoint("order_answered")
        except OutcomeUnknown:
            fill = await self._resolve_unknown(executor, trade)
        except Exception as exc:
            self.orders_failed += 1
            await self._repo.cancel_trade(trade, f"order failed: {exc}")
            raise
        finally:
            self.in_flight.discard(order.client_order_id)
        self.orders_sent += 1
        return fill

    def _assets(self, symbol: str, rules: SymbolRules | None) -> tuple[str, str]:
        """``(base, quote)`` of ``symbol``: from the exchange rules, else the symbol minus the quote suffix."""
        if rules is not None and rules.base_asset and rules.quote_asset:
            return rules.base_asset, rules.quote_asset
        if symbol.endswith(self._quote):
            return symbol[: -len(self._quote)], self._quote
        raise RiskDenied(f"{symbol} is not a {self._quote} symbol")

    def _levels(
        self, trader: TraderConfig, side: str, entry: Decimal, rules: SymbolRules,
        sl: Decimal | None, tp: Decimal | None, avg: Decimal,
    ) -> tuple[Decimal, Decimal]:
        """The exit levels for an expected ``entry``: the decision's, rounded towards the entry
        (``_rules.round_level``), else the trader's risk percentages; each checked.

        Raises:
            RiskDenied: a level on the wrong side of the entry, or outside PRICE_FILTER
                or PERCENT_PRICE_BY_SIDE; nothing is substituted.
        """
        default_sl, default_tp = self._default_levels(trader, side, entry, rules)
        sl = round_level(side, sl, entry, rules.tick_size) if sl is not None else default_sl
        tp = round_level(side, tp, entry, rules.tick_size) if tp is not None else default_tp
        problem = level_problem(side, "stop_loss", sl, entry, avg, rules) or level_problem(
            side, "take_profit", tp, entry, avg, rules
        )
        if problem:
            raise RiskDenied(problem)
        return sl, tp

    @staticmethod
    def _default_levels(trader: TraderConfig, side: str, entry: Decimal, rules: SymbolRules) -> tuple[Decimal, Decimal]:
        raw_sl, raw_tp = sl_tp_from_pct(side, entry, trader.risk.stop_loss_pct, trader.risk.take_profit_pct, Decimal(0))
        return round_level(side, raw_sl, entry, rules.tick_size), round_level(side, raw_tp, entry, rules.tick_size)
