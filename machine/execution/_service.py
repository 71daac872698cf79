"""Opening and closing positions: risk gate, intent, order, fill, in that order.

Every order is persisted as an intent with its deterministic client order id
before it is sent; the fill is persisted before the position changes state.
Paper positions are sized from the trader's equity (``machine.accounts.equity``:
cash plus holdings at the last price, never a short's proceeds) and reserve
their funds with the intent (``machine.accounts.open_reservation``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from uuid import UUID

import asyncpg
import structlog

from machine.accounts import close_fill_changes, close_quantity, equity, open_fill_changes, open_reservation
from machine.execution._errors import NoPrice, RiskDenied
from machine.execution._fill_rules import market_fill_price
from machine.execution._orders import Executor, Fill, OrderRequest, Trigger, client_order_id
from machine.execution._rules import SymbolRules, level_problem, market_quantity_problem, notional_problem, round_level
from machine.money import EIGHT_DP, quantity_for_notional, sl_tp_from_pct
from machine.persistence import InsufficientFunds, PositionRecord, TradeRecord, TradingRepository
from machine.traders import TraderConfig

__all__ = ["ExecutionService"]

log = structlog.get_logger(__name__)
_HUNDRED = Decimal(100)


class ExecutionService:
    """Turns executable decisions into orders for one user.

    Args:
        repo: trading persistence.
        executors: executor per trader mode (``paper``, later ``live``).
        rules: symbol -> trading rules.
        last_price: latest price of a symbol in the quote asset.
        on_opened / on_closed: callbacks for the position monitor.
        avg_price: a symbol's average price over its NOTIONAL ``avgPriceMins``
            (Binance ``GET /api/v3/avgPrice``), for the notional and percent-price
            checks; default the last price.
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
        self._locks: dict[UUID, asyncio.Lock] = {}
        self.orders_sent = 0
        self.orders_failed = 0

    async def open(
        self,
        trader: TraderConfig,
        signal_id: UUID,
        symbol: str,
        side: str,
        *,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
    ) -> PositionRecord:
        """Open a ``long``/``short`` position of ``risk.position_size_pct`` of the trader's equity.

        Stop-loss/take-profit come from the decision when given and on the right
        side of the price, otherwise from the trader's risk percentages.

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
            if await self._repo.count_live(trader.id) >= trader.risk.max_positions:
                raise RiskDenied(f"max_positions ({trader.risk.max_positions}) reached")
            await self._repo.ensure_account(trader.id, self._user_id, self._start_balance, self._quote)
            balances = await self._repo.balances(trader.id)
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
            position_id = uuid.uuid4()
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
                )
            except InsufficientFunds as exc:
                raise RiskDenied(str(exc)) from None
            except asyncpg.UniqueViolationError:
                raise RiskDenied(f"a position on {symbol} is already open") from None
        try:
            fill = await executor.submit(OrderRequest(trade.client_order_id, symbol, trade.side, qty))
        except Exception as exc:
            self.orders_failed += 1
            await self._repo.cancel_trade(trade, f"order failed: {exc}")
            raise
        self.orders_sent += 1
        changes, held, locked = open_fill_changes(side, base, quote, fill.price, fill.quantity, fill.fee, reserved)
        default_sl, default_tp = self._default_levels(trader, side, fill.price, rules)
        sl = sl if stop_loss is not None else default_sl
        tp = tp if take_profit is not None else default_tp
        position = await self._repo.record_open_fill(
            trade, price=fill.price, quantity=fill.quantity, fee=fill.fee, fee_asset=fill.fee_asset,
            fee_quote=_fee_in_quote(fill, quote), held=held, locked=locked, changes=changes,
            stop_loss=sl, take_profit=tp, signal_id=signal_id, order_id=fill.order_id,
            price_time_ms=fill.price_time_ms,
        )
        log.info("position_opened", trader_id=str(trader.id), symbol=symbol, side=side, price=str(fill.price),
                 size=str(held), stop_loss=str(sl), take_profit=str(tp), client_order_id=trade.client_order_id)
        self._on_opened(position)
        return position

    async def close(
        self, position: PositionRecord, reason: str, trigger: Trigger | None = None
    ) -> tuple[Decimal, Decimal] | None:
        """Close an open position; returns ``(pnl, pnl_percent)``, or None when it is already closed.

        ``trigger`` None: at market. Otherwise the stop-loss or take-profit that
        fired, filled as its order would be (``machine.execution._fill_rules``).

        A closing intent left ``pending`` by an earlier attempt (its order sent,
        its booking failed) is resolved by asking the executor for its fill by
        client order id: booked when it filled, cancelled when the executor never
        saw it; only then is a new order (a new attempt id) sent.

        Raises:
            NoPrice: no last price yet (the intent is cancelled; the position stays open).
        """
        executor = self._executors.get(position.mode)
        if executor is None:
            raise RiskDenied(f"{position.mode} execution is not available on this machine")
        rules = self._rules(position.symbol)
        base, quote = self._assets(position.symbol, rules)
        step = rules.step_size if rules is not None else Decimal(0)
        quantity = close_quantity(position.side, position.size, executor.taker_rate, step)
        coid = lambda attempt: client_order_id(position.id, "close", attempt)  # noqa: E731
        trade = await self._repo.create_close_intent(position, self._user_id, coid, quantity)
        if trade is None:
            pending = await self._repo.pending_close(position.id)
            if pending is None:
                return None  # already closed
            known = await executor.query(pending.client_order_id)
            if known is not None:
                return await self._book_close(position, pending, known, base, quote, reason)
            await self._repo.cancel_trade(pending, "closing order unknown to the venue; not sent")
            trade = await self._repo.create_close_intent(position, self._user_id, coid, quantity)
            if trade is None:
                return None
        try:
            fill = await executor.submit(
                OrderRequest(trade.client_order_id, position.symbol, trade.side, trade.quantity, trigger)
            )
        except Exception as exc:
            self.orders_failed += 1
            await self._repo.cancel_trade(trade, f"order failed: {exc}")
            raise
        self.orders_sent += 1
        return await self._book_close(position, trade, fill, base, quote, reason)

    async def _book_close(
        self, position: PositionRecord, trade: TradeRecord, fill: Fill, base: str, quote: str, reason: str
    ) -> tuple[Decimal, Decimal]:
        changes = close_fill_changes(position.side, base, quote, fill.price, fill.quantity, fill.fee, position.reserved)
        pnl = await self._repo.record_close_fill(
            position, trade, price=fill.price, quantity=fill.quantity, fee=fill.fee, fee_asset=fill.fee_asset,
            fee_quote=_fee_in_quote(fill, quote), changes=changes, reason=reason, order_id=fill.order_id,
            price_time_ms=fill.price_time_ms,
        )
        log.info("position_closed", trader_id=str(position.trader_id), symbol=position.symbol, reason=reason,
                 price=str(fill.price), pnl=str(pnl[0]), client_order_id=trade.client_order_id)
        self._on_closed(position, reason)
        return pnl

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


def _fee_in_quote(fill: Fill, quote: str) -> Decimal:
    """The fill's commission valued in the quote asset (a base-asset commission at the fill's price), 8 dp."""
    if fill.fee_asset == quote:
        return fill.fee
    return (fill.fee * fill.price).quantize(EIGHT_DP)
