"""Typed market events and symbol metadata, as parsed from Binance's wire format.

Prices are in the quote asset, quantities in the base asset, times in ms since the
Unix epoch (UTC). ``Decimal`` fields come from the wire strings without a float
round trip; the float tuples feed the numpy store and the filters.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["KlineEvent", "TickerEvent", "SymbolInfo", "MarketEvent"]


@dataclass(frozen=True, slots=True)
class KlineEvent:
    """One kline/candlestick stream update (Binance stream ``<symbol>@kline_<interval>``).

    Attributes:
        symbol: upper case, e.g. ``BTCUSDT`` (``k.s``).
        interval: e.g. ``1m`` (``k.i``).
        row: 11 floats in Binance kline column order (``sandbox._segment.KLINE_COLUMNS``):
            open_time ``k.t``, open ``k.o``, high ``k.h``, low ``k.l``, close ``k.c``,
            volume ``k.v``, close_time ``k.T``, quote_volume ``k.q``, trades ``k.n``,
            taker_buy_base_volume ``k.V``, taker_buy_quote_volume ``k.Q``.
        closed: ``k.x``: True on the update that closes the candle.
        event_time_ms: ``E``.
        close_price: ``k.c`` as an exact Decimal (the latest trade price).
    """

    symbol: str
    interval: str
    row: tuple[float, ...]
    closed: bool
    event_time_ms: int
    close_price: Decimal

    @property
    def open_time_ms(self) -> int:
        """Open time of the candle (``k.t``)."""
        return int(self.row[0])


@dataclass(frozen=True, slots=True)
class TickerEvent:
    """Rolling 24 h statistics of one symbol (stream ``<symbol>@ticker``, REST ``/api/v3/ticker/24hr``).

    Attributes:
        symbol: upper case.
        values: floats in ``sandbox._segment.TICKER_FIELDS`` order: last_price ``c``,
            open_price ``o``, high_price ``h``, low_price ``l``, volume ``v`` (base asset),
            quote_volume ``q``, price_change ``p``, price_change_percent ``P``,
            event_time ``E`` (REST: ``closeTime``).
        last_price: ``c`` as an exact Decimal.
        event_time_ms: ``E`` (REST: ``closeTime``).
    """

    symbol: str
    values: tuple[float, ...]
    last_price: Decimal
    event_time_ms: int


MarketEvent = KlineEvent | TickerEvent


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """Trading rules of one spot symbol (REST ``/api/v3/exchangeInfo``).

    Attributes:
        symbol, base_asset, quote_asset: e.g. ``BTCUSDT``, ``BTC``, ``USDT``.
        tick_size: price increment (``PRICE_FILTER.tickSize``), quote asset.
        step_size: quantity increment (``LOT_SIZE.stepSize``), base asset.
        min_qty: smallest quantity (``LOT_SIZE.minQty``), base asset.
        min_notional: smallest price x quantity (``NOTIONAL.minNotional``, or the older
            ``MIN_NOTIONAL.minNotional``; 0 when the symbol has neither), quote asset.
        min_price, max_price: ``PRICE_FILTER`` bounds (0: none), quote asset.
        max_qty: ``LOT_SIZE.maxQty`` (0: none), base asset.
        market_min_qty, market_max_qty, market_step_size: ``MARKET_LOT_SIZE`` (0: none).
        max_notional: ``NOTIONAL.maxNotional`` (0: none); ``apply_min_to_market`` /
            ``apply_max_to_market``: whether the bounds apply to MARKET orders (checked
            against the average price over ``avg_price_mins`` minutes).
        percent_price_by_side: ``PERCENT_PRICE_BY_SIDE`` (bidMultiplierUp,
            bidMultiplierDown, askMultiplierUp, askMultiplierDown), or None.
    """

    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    min_price: Decimal = Decimal(0)
    max_price: Decimal = Decimal(0)
    max_qty: Decimal = Decimal(0)
    market_min_qty: Decimal = Decimal(0)
    market_max_qty: Decimal = Decimal(0)
    market_step_size: Decimal = Decimal(0)
    max_notional: Decimal = Decimal(0)
    apply_min_to_market: bool = True
    apply_max_to_market: bool = False
    avg_price_mins: int = 5
    percent_price_by_side: tuple[Decimal, Decimal, Decimal, Decimal] | None = None
