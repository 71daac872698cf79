"""Paper execution: the fills a live Binance Spot account would get, commission as Binance charges it."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Final

from machine.accounts import commission, commission_asset
from machine.execution._errors import NoPrice, StalePrice
from machine.execution._fill_rules import market_fill_price, stop_loss_fill_price, take_profit_fill_price
from machine.execution._orders import Fill, OrderRequest
from machine.execution._rules import SymbolRules

__all__ = ["PaperExecutor"]

_REMEMBERED: Final = 10_000
_POLL_S: Final = 0.25


class PaperExecutor:
    """Simulated fills (``machine.execution._fill_rules``).

    Args:
        last_price: the latest traded price of a symbol (quote asset), or None.
        taker_rate: taker commission rate, e.g. ``Decimal("0.001")`` (0.1 %, Binance's spot base rate).
        rules: symbol -> its exchange rules (assets, tick size).
        maker_rate: maker commission rate (a take-profit rests on the book; default the taker rate).
        slippage_bps: how far a MARKET order fills from the last price, against the taker, in basis points.
        price_age_s: symbol -> seconds since its last price was received (None: never); default: always fresh.
        price_max_age_s: a price older than this is stale: the order waits up to that long
            for a fresh one (counted in ``stale_waits``), then fails with ``StalePrice``.
        price_time_ms: symbol -> exchange time (ms) of its last price, recorded with each fill.
    """

    def __init__(
        self,
        last_price: Callable[[str], Decimal | None],
        taker_rate: Decimal,
        rules: Callable[[str], SymbolRules],
        maker_rate: Decimal | None = None,
        *,
        slippage_bps: Decimal = Decimal(0),
        price_age_s: Callable[[str], float | None] | None = None,
        price_max_age_s: float = 10.0,
        price_time_ms: Callable[[str], int | None] | None = None,
    ) -> None:
        self._last_price = last_price
        self.taker_rate = taker_rate
        self.maker_rate = taker_rate if maker_rate is None else maker_rate
        self._rules = rules
        self.slippage_bps = slippage_bps
        self._price_age_s = price_age_s
        self.price_max_age_s = price_max_age_s
        self._price_time_ms = price_time_ms
        self._fills: OrderedDict[str, Fill] = OrderedDict()
        self.stale_waits = 0

    async def submit(self, order: OrderRequest) -> Fill:
        """Fill the whole quantity (module doc); the commission in the asset received (``machine.accounts``).

        Raises:
            NoPrice: no price is known for the symbol yet.
            StalePrice: its price stayed older than ``price_max_age_s`` for that long again.
        """
        known = self._fills.get(order.client_order_id)
        if known is not None:  # the same client order id is the same order: never filled twice
            return known
        last = await self._fresh_price(order.symbol)
        rules = self._rules(order.symbol)
        trigger = order.trigger
        if trigger is None:
            price, rate = market_fill_price(order.side, last, self.slippage_bps, rules.tick_size), self.taker_rate
        else:
            position_side = "long" if order.side == "SELL" else "short"
            if trigger.kind == "take_profit":
                price = take_profit_fill_price(position_side, trigger.level, trigger.low, trigger.high)
                rate = self.maker_rate
            else:
                price, rate = stop_loss_fill_price(position_side, trigger.level, trigger.last), self.taker_rate
        fill = Fill(
            price=price,
            quantity=order.quantity,
            fee=commission(order.side, price, order.quantity, rate),
            fee_asset=commission_asset(order.side, rules.base_asset, rules.quote_asset),
            price_time_ms=self._price_time_ms(order.symbol) if self._price_time_ms is not None else None,
        )
        self._fills[order.client_order_id] = fill
        while len(self._fills) > _REMEMBERED:
            self._fills.popitem(last=False)
        return fill

    async def query(self, client_order_id: str, symbol: str) -> Fill | None:
        """The fill of an order this executor filled (the last 10,000), or None if it never saw it."""
        return self._fills.get(client_order_id)

    def is_stale(self, symbol: str) -> bool:
        """Whether the symbol's last price is older than ``price_max_age_s`` (or was never received live)."""
        if self._price_age_s is None:
            return False
        age = self._price_age_s(symbol)
        return age is None or age > self.price_max_age_s

    async def _fresh_price(self, symbol: str) -> Decimal:
        price = self._last_price(symbol)
        if price is None or price <= 0:
            raise NoPrice(f"no last price for {symbol}")
        if not self.is_stale(symbol):
            return price
        self.stale_waits += 1
        deadline = time.monotonic() + self.price_max_age_s
        while time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
            if not self.is_stale(symbol):
                return self._last_price(symbol) or price
        age = self._price_age_s(symbol) if self._price_age_s else None
        raise StalePrice(f"the last price of {symbol} is stale ({'never received' if age is None else f'{age:.0f} s old'}); "
                         f"no fill on a price older than {self.price_max_age_s:g} s")
