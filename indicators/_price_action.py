"""Price-action helpers and raw column getters.

Price change, price change percent, highest high and lowest low over a
number of candles, plus ``get_closes`` / ``get_opens`` / ``get_highs`` /
``get_lows`` / ``get_volumes``. Every helper takes ``klines`` (candle rows in
Binance column order, at least 6 columns, oldest first, or a store view with
``column()``), returns plain floats/tuples/``None`` (``None`` = too few
candles) and raises ``IndicatorError`` for bad arguments, never for too few
candles.
"""

from __future__ import annotations

from . import _ta
from ._input import CLOSE, HIGH, LOW, OPEN, VOLUME, Klines, check_period, column
from ._spec import IndicatorSpec, latest_of, series

__all__ = [
    "HIGHEST_HIGH",
    "LOWEST_LOW",
    "PRICE_CHANGE",
    "PRICE_CHANGE_PERCENT",
    "get_closes",
    "get_highest_high",
    "get_highs",
    "get_lowest_low",
    "get_lows",
    "get_opens",
    "get_price_change",
    "get_price_change_percent",
    "get_volumes",
]


def _bind_price_change(periods: int) -> tuple[int]:
    return (check_period(periods, "price_change", "periods", 1),)


def _bind_price_change_percent(periods: int) -> tuple[int]:
    return (check_period(periods, "price_change_percent", "periods", 1),)


def _bind_highest_high(periods: int) -> tuple[int]:
    return (check_period(periods, "highest_high", "periods", 1),)


def _bind_lowest_low(periods: int) -> tuple[int]:
    return (check_period(periods, "lowest_low", "periods", 1),)


PRICE_CHANGE = IndicatorSpec(
    name="price_change",
    columns=(CLOSE,),
    compute=_ta.price_change,
    bind=_bind_price_change,
    warmup=lambda periods: periods + 1,
    outputs=("price_change",),
    source="TA-Lib MOM",
    latest_helper="get_price_change",
    series_helper=None,
)
PRICE_CHANGE_PERCENT = IndicatorSpec(
    name="price_change_percent",
    columns=(CLOSE,),
    compute=_ta.price_change_percent,
    bind=_bind_price_change_percent,
    warmup=lambda periods: periods + 1,
    outputs=("price_change_percent",),
    source="TA-Lib ROC",
    latest_helper="get_price_change_percent",
    series_helper=None,
)
HIGHEST_HIGH = IndicatorSpec(
    name="highest_high",
    columns=(HIGH,),
    compute=_ta.highest_high,
    bind=_bind_highest_high,
    warmup=lambda periods: periods,
    outputs=("highest_high",),
    source="TA-Lib MAX",
    latest_helper="get_highest_high",
    series_helper=None,
)
LOWEST_LOW = IndicatorSpec(
    name="lowest_low",
    columns=(LOW,),
    compute=_ta.lowest_low,
    bind=_bind_lowest_low,
    warmup=lambda periods: periods,
    outputs=("lowest_low",),
    source="TA-Lib MIN",
    latest_helper="get_lowest_low",
    series_helper=None,
)


def get_price_change(klines: Klines, periods: int) -> float | None:
    """Latest close minus the close ``periods`` candles earlier, quote asset.
    TA-Lib MOM.

    Args: ``klines``; ``periods``: distance in candles, int 1..100000.
    Returns: float, or ``None`` with fewer than ``periods + 1`` candles
    (warm-up ``periods + 1``).
    """
    return latest_of(PRICE_CHANGE, klines, _bind_price_change(periods))


def get_price_change_percent(klines: Klines, periods: int) -> float | None:
    """Percent change of the close over ``periods`` candles,
    (close / close ``periods`` candles earlier - 1) * 100. TA-Lib ROC (0 if
    the older close is 0); same value as :func:`get_latest_roc`.

    Args: ``klines``; ``periods``: distance in candles, int 1..100000.
    Returns: float (percent), or ``None`` with fewer than ``periods + 1``
    candles (warm-up ``periods + 1``).
    """
    return latest_of(PRICE_CHANGE_PERCENT, klines, _bind_price_change_percent(periods))


def get_highest_high(klines: Klines, periods: int) -> float | None:
    """Highest high of the last ``periods`` candles (current included), quote
    asset. TA-Lib MAX (the latest high for ``periods=1``).

    Args: ``klines``; ``periods``: window in candles, int 1..100000.
    Returns: float, or ``None`` with fewer than ``periods`` candles (warm-up
    ``periods``).
    """
    return latest_of(HIGHEST_HIGH, klines, _bind_highest_high(periods))


def get_lowest_low(klines: Klines, periods: int) -> float | None:
    """Lowest low of the last ``periods`` candles (current included), quote
    asset. TA-Lib MIN (the latest low for ``periods=1``).

    Args: ``klines``; ``periods``: window in candles, int 1..100000.
    Returns: float, or ``None`` with fewer than ``periods`` candles (warm-up
    ``periods``).
    """
    return latest_of(LOWEST_LOW, klines, _bind_lowest_low(periods))


def get_closes(klines: Klines) -> tuple[float | None, ...]:
    """Close prices (quote asset), Binance kline column 4, oldest first.

    Args: ``klines``.
    Returns: tuple of floats, one per candle (empty for no candles); ``None``
    only where a store view holds a non-finite value.
    """
    return series(column(klines, CLOSE))


def get_opens(klines: Klines) -> tuple[float | None, ...]:
    """Open prices (quote asset), Binance kline column 1, oldest first.

    Args: ``klines``.
    Returns: tuple of floats, one per candle (empty for no candles); ``None``
    only where a store view holds a non-finite value.
    """
    return series(column(klines, OPEN))


def get_highs(klines: Klines) -> tuple[float | None, ...]:
    """High prices (quote asset), Binance kline column 2, oldest first.

    Args: ``klines``.
    Returns: tuple of floats, one per candle (empty for no candles); ``None``
    only where a store view holds a non-finite value.
    """
    return series(column(klines, HIGH))


def get_lows(klines: Klines) -> tuple[float | None, ...]:
    """Low prices (quote asset), Binance kline column 3, oldest first.

    Args: ``klines``.
    Returns: tuple of floats, one per candle (empty for no candles); ``None``
    only where a store view holds a non-finite value.
    """
    return series(column(klines, LOW))


def get_volumes(klines: Klines) -> tuple[float | None, ...]:
    """Volumes (base asset), Binance kline column 5, oldest first.

    Args: ``klines``.
    Returns: tuple of floats, one per candle (empty for no candles); ``None``
    only where a store view holds a non-finite value.
    """
    return series(column(klines, VOLUME))
