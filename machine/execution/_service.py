"""Opening and closing positions: risk gate, intent, order, fill, in that order.

Every order is persisted as an intent with its deterministic client order id
before it is sent; the fill is persisted before the position changes state.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

import asyncpg
import structlog

from machine.execution._errors import NoPrice, RiskDenied
from machine.money import quantity_for_notional, sl_tp_from_pct
from machine.execution._orders import Executor, OrderRequest, client_order_id
from machine.persistence import PositionRecord, TradingRepository
from machine.traders import TraderConfig

__all__ = ["ExecutionService", "SymbolRules"]

log = structlog.get_logger(__name__)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """Exchange trading rules of a symbol (Binance exchangeInfo filters)."""

    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal


class ExecutionService:
    """Turns executable decisions into orders for one user.

    Args:
        repo: trading persistence.
        executors: executor per trader mode (``paper``, later ``live``).
        rules: symbol -> trading rules.
        last_price: latest price of a symbol in the quote asset.
        on_opened / on_closed: callbacks for the position monitor.
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
        """Open a ``long``/``short`` position sized by ``risk.position_size_pct`` of the quote balance.

        Stop-loss/take-profit come from the decision when given and on the right
        side of the price, otherwise from the trader's risk percentages.

        Raises:
            RiskDenied: max positions reached, a live position on the symbol,
                no balance, a size below the exchange minimums, or no executor for the mode.
            NoPrice: no last price yet.
        """
        executor = self._executors.get(trader.mode)
        if executor is None:
            raise RiskDenied(f"{trader.mode} execution is not available on this machine")
        rules = self._rules(symbol)
        if rules is None:
            raise RiskDenied(f"{symbol} is not a tradable symbol")
        price = self._last_price(symbol)
        if price is None:
            raise NoPrice(f"no last price for {symbol}")
        # The gate and the intent are one step per trader: concurrent signals of the
        # same trader must not all pass a max_positions check made before any intent exists.
        async with self._locks.setdefault(trader.id, asyncio.Lock()):
            if await self._repo.count_live(trader.id) >= trader.risk.max_positions:
                raise RiskDenied(f"max_positions ({trader.risk.max_positions}) reached")
            balance = await self._repo.ensure_account(trader.id, self._user_id, self._start_balance, self._quote)
            target = balance * trader.risk.position_size_pct / _HUNDRED
            qty = quantity_for_notional(target, price, rules.step_size, rules.min_qty)
            if qty <= 0 or qty * price < rules.min_notional:
                raise RiskDenied(f"position size below exchange minimum (target {target:.2f} {self._quote})")
            position_id = uuid.uuid4()
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
                )
            except asyncpg.UniqueViolationError:
                raise RiskDenied(f"a position on {symbol} is already open") from None
        try:
            fill = await executor.submit(OrderRequest(trade.client_order_id, symbol, trade.side, qty))
        except Exception as exc:
            self.orders_failed += 1
            await self._repo.cancel_trade(trade, f"order failed: {exc}")
            raise
        self.orders_sent += 1
        sl, tp = self._levels(trader, side, fill.price, rules, stop_loss, take_profit)
        position = await self._repo.record_open_fill(
            trade, price=fill.price, quantity=fill.quantity, fee=fill.fee, fee_asset=fill.fee_asset,
            stop_loss=sl, take_profit=tp, signal_id=signal_id, order_id=fill.order_id,
        )
        log.info("position_opened", trader_id=str(trader.id), symbol=symbol, side=side, price=str(fill.price),
                 size=str(fill.quantity), stop_loss=str(sl), take_profit=str(tp), client_order_id=trade.client_order_id)
        self._on_opened(position)
        return position

    async def close(self, position: PositionRecord, reason: str) -> tuple[Decimal, Decimal] | None:
        """Close an open position at market; returns ``(pnl, pnl_percent)`` or None if already closing.

        Raises:
            NoPrice: no last price yet (the intent is cancelled; the position stays open).
        """
        executor = self._executors.get(position.mode)
        if executor is None:
            raise RiskDenied(f"{position.mode} execution is not available on this machine")
        trade = await self._repo.create_close_intent(
            position, self._user_id, lambda attempt: client_order_id(position.id, "close", attempt)
        )
        if trade is None:
            return None
        try:
            fill = await executor.submit(OrderRequest(trade.client_order_id, position.symbol, trade.side, position.size))
        except Exception as exc:
            self.orders_failed += 1
            await self._repo.cancel_trade(trade, f"order failed: {exc}")
            raise
        self.orders_sent += 1
        pnl = await self._repo.record_close_fill(
            position, trade, price=fill.price, fee=fill.fee, fee_asset=fill.fee_asset, reason=reason, order_id=fill.order_id
        )
        log.info("position_closed", trader_id=str(position.trader_id), symbol=position.symbol, reason=reason,
                 price=str(fill.price), pnl=str(pnl[0]), client_order_id=trade.client_order_id)
        self._on_closed(position, reason)
        return pnl

    @staticmethod
    def _levels(
        trader: TraderConfig, side: str, entry: Decimal, rules: SymbolRules, sl: Decimal | None, tp: Decimal | None
    ) -> tuple[Decimal, Decimal]:
        default_sl, default_tp = sl_tp_from_pct(side, entry, trader.risk.stop_loss_pct, trader.risk.take_profit_pct, rules.tick_size)
        if side == "long":
            sl = sl if sl is not None and 0 < sl < entry else default_sl
            tp = tp if tp is not None and tp > entry else default_tp
        else:
            sl = sl if sl is not None and sl > entry else default_sl
            tp = tp if tp is not None and 0 < tp < entry else default_tp
        return sl, tp
