"""Symbol filters of ``exchangeInfo`` checked on new orders (Binance spot API docs, ``filters.md``).

A failure is :class:`~._errors.BinanceAPIError` ``-1013`` "Filter failure: NAME", as
Binance answers. Checked here: ``PRICE_FILTER`` (price and stop price: min, max, tick
size; a 0 bound is not checked), ``LOT_SIZE`` (every order's quantity), ``MARKET_LOT_SIZE``
(market orders' quantity, a 0 step not checked), ``NOTIONAL`` (price x quantity; market
orders at the average price, each bound only when ``applyMinToMarket`` /
``applyMaxToMarket``), ``MIN_NOTIONAL`` (older entries) and ``PERCENT_PRICE_BY_SIDE``
(a limit price within ``[avgPrice * down, avgPrice * up]`` of its side), ``MAX_NUM_ORDERS``
and ``MAX_NUM_ALGO_ORDERS`` (open orders of the account on the symbol). All amounts are
``Decimal`` (prices in the quote asset, quantities in the base asset).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._errors import BinanceAPIError

__all__ = ["SymbolSpec", "check_open_orders", "check_order_filters"]

_ZERO = Decimal(0)


def _failure(name: str) -> BinanceAPIError:
    return BinanceAPIError(-1013, f"Filter failure: {name}")


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """What the matching engine needs of one ``exchangeInfo`` symbol entry."""

    symbol: str
    base_asset: str
    quote_asset: str
    order_types: frozenset[str]
    filters: Mapping[str, Mapping[str, Any]]
    base_commission_precision: int = 8
    quote_commission_precision: int = 8
    default_stp: str = "NONE"
    oco_allowed: bool = True
    allowed_stp: frozenset[str] = frozenset({"NONE"})

    @classmethod
    def from_exchange_info(cls, entry: Mapping[str, Any]) -> SymbolSpec:
        return cls(
            symbol=entry["symbol"], base_asset=entry["baseAsset"], quote_asset=entry["quoteAsset"],
            order_types=frozenset(entry.get("orderTypes", ())),
            filters={f["filterType"]: f for f in entry.get("filters", ())},
            base_commission_precision=int(entry.get("baseCommissionPrecision", 8)),
            quote_commission_precision=int(entry.get("quoteCommissionPrecision", 8)),
            default_stp=str(entry.get("defaultSelfTradePreventionMode", "NONE")),
            oco_allowed=bool(entry.get("ocoAllowed", True)),
            allowed_stp=frozenset(entry.get("allowedSelfTradePreventionModes", ("NONE",))),
        )  # fmt: skip

    @property
    def tick_size(self) -> Decimal:
        f = self.filters.get("PRICE_FILTER")
        return _d(f["tickSize"]) if f else _ZERO


def _on_step(value: Decimal, origin: Decimal, step: Decimal) -> bool:
    return step == 0 or (value - origin) % step == 0


def _check_price(spec: SymbolSpec, price: Decimal) -> None:
    f = spec.filters.get("PRICE_FILTER")
    if f is None:
        return
    low, high, tick = _d(f["minPrice"]), _d(f["maxPrice"]), _d(f["tickSize"])
    if (low and price < low) or (high and price > high) or not _on_step(price, low, tick):
        raise _failure("PRICE_FILTER")


def _check_lot(f: Mapping[str, Any] | None, name: str, quantity: Decimal) -> None:
    if f is None:
        return
    low, high, step = _d(f["minQty"]), _d(f["maxQty"]), _d(f["stepSize"])
    if quantity < low or (high and quantity > high) or not _on_step(quantity, low, step):
        raise _failure(name)


def check_order_filters(
    spec: SymbolSpec, *, side: str, market: bool, quantity: Decimal, price: Decimal | None,
    stop_price: Decimal | None, avg_price: Decimal,
) -> None:
    """Check one new order (module doc); ``price`` None for market orders, ``avg_price`` the
    symbol's ``GET /api/v3/avgPrice``.

    Raises:
        BinanceAPIError: -1013 naming the first filter that fails.
    """
    for p in (price, stop_price):
        if p is not None:
            _check_price(spec, p)
    _check_lot(spec.filters.get("LOT_SIZE"), "LOT_SIZE", quantity)
    if market:
        _check_lot(spec.filters.get("MARKET_LOT_SIZE"), "MARKET_LOT_SIZE", quantity)
    reference = avg_price if market or price is None else price
    notional = reference * quantity
    f = spec.filters.get("NOTIONAL")
    if f is not None:
        low, high = _d(f["minNotional"]), _d(f["maxNotional"])
        if (not market or f.get("applyMinToMarket", True)) and notional < low:
            raise _failure("NOTIONAL")
        if (not market or f.get("applyMaxToMarket", False)) and high and notional > high:
            raise _failure("NOTIONAL")
    f = spec.filters.get("MIN_NOTIONAL")
    if f is not None and (not market or f.get("applyToMarket", True)) and notional < _d(f["minNotional"]):
        raise _failure("MIN_NOTIONAL")
    f = spec.filters.get("PERCENT_PRICE_BY_SIDE")
    if f is not None and price is not None and avg_price > 0:
        up, down = (f["bidMultiplierUp"], f["bidMultiplierDown"]) if side == "BUY" else (
            f["askMultiplierUp"], f["askMultiplierDown"])
        if not avg_price * _d(down) <= price <= avg_price * _d(up):
            raise _failure("PERCENT_PRICE_BY_SIDE")


def check_open_orders(spec: SymbolSpec, *, open_orders: int, open_algo: int, algo: bool) -> None:
    """Check that one more order fits the symbol's open-order caps: ``open_orders`` the account's
    open orders of the symbol, ``open_algo`` those of them that are stop-loss / take-profit orders,
    ``algo`` whether the new one is.

    Raises:
        BinanceAPIError: -1013 "Filter failure: MAX_NUM_ORDERS" (or ``MAX_NUM_ALGO_ORDERS``).
    """
    f = spec.filters.get("MAX_NUM_ORDERS")
    if f is not None and open_orders + 1 > int(f.get("maxNumOrders", f.get("limit", 0)) or 1 << 62):
        raise _failure("MAX_NUM_ORDERS")
    f = spec.filters.get("MAX_NUM_ALGO_ORDERS")
    if algo and f is not None and open_algo + 1 > int(f.get("maxNumAlgoOrders", f.get("limit", 0)) or 1 << 62):
        raise _failure("MAX_NUM_ALGO_ORDERS")
