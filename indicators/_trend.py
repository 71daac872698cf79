"""Trend and trend-strength helpers: SMA, EMA, WMA, VWAP, ADX, Aroon.

Every helper takes ``klines`` (candle rows in Binance column order, at least
6 columns, oldest first, or a store view with ``column()``), returns plain
floats/tuples/``None`` (``None`` = too few candles or undefined) and raises
``IndicatorError`` for bad arguments, never for too few candles.
"""

from __future__ import annotations

from . import _formulas, _ta
from ._input import CLOSE, HIGH, LOW, VOLUME, Klines, check_period
from ._spec import IndicatorSpec, latest_of, series_of

__all__ = [
    "ADX",
    "AROON",
    "EMA",
    "SMA",
    "VWAP",
    "WMA",
    "get_adx",
    "get_aroon",
    "get_ema",
    "get_latest_adx",
    "get_latest_aroon",
    "get_latest_ema",
    "get_latest_sma",
    "get_latest_vwap",
    "get_latest_wma",
    "get_sma",
    "get_vwap",
    "get_wma",
]

Series = tuple[float | None, ...]


def _bind_sma(period: int) -> tuple[int]:
    return (check_period(period, "sma", "period", 1),)


def _bind_ema(period: int) -> tuple[int]:
    return (check_period(period, "ema", "period", 1),)


def _bind_wma(period: int) -> tuple[int]:
    return (check_period(period, "wma", "period", 1),)


def _bind_vwap() -> tuple[()]:
    return ()


def _bind_adx(period: int = 14) -> tuple[int]:
    return (check_period(period, "adx", "period", 2),)


def _bind_aroon(period: int = 14) -> tuple[int]:
    return (check_period(period, "aroon", "period", 2),)


def _same(period: int) -> int:
    return period


SMA = IndicatorSpec(
    name="sma",
    columns=(CLOSE,),
    compute=_ta.sma,
    bind=_bind_sma,
    warmup=_same,
    outputs=("sma",),
    source="TA-Lib SMA",
    latest_helper="get_latest_sma",
    series_helper="get_sma",
)
EMA = IndicatorSpec(
    name="ema",
    columns=(CLOSE,),
    compute=_ta.ema,
    bind=_bind_ema,
    warmup=_same,
    outputs=("ema",),
    source="TA-Lib EMA",
    latest_helper="get_latest_ema",
    series_helper="get_ema",
)
WMA = IndicatorSpec(
    name="wma",
    columns=(CLOSE,),
    compute=_ta.wma,
    bind=_bind_wma,
    warmup=_same,
    outputs=("wma",),
    source="TA-Lib WMA",
    latest_helper="get_latest_wma",
    series_helper="get_wma",
)
VWAP = IndicatorSpec(
    name="vwap",
    columns=(HIGH, LOW, CLOSE, VOLUME),
    compute=_formulas.vwap,
    bind=_bind_vwap,
    warmup=lambda: 1,
    outputs=("vwap",),
    source="numpy: cumulative typical-price VWAP (StockCharts ChartSchool, VWAP)",
    latest_helper="get_latest_vwap",
    series_helper="get_vwap",
)
ADX = IndicatorSpec(
    name="adx",
    columns=(HIGH, LOW, CLOSE),
    compute=_ta.adx,
    bind=_bind_adx,
    warmup=lambda period: 2 * period,
    outputs=("adx",),
    source="TA-Lib ADX",
    latest_helper="get_latest_adx",
    series_helper="get_adx",
)
AROON = IndicatorSpec(
    name="aroon",
    columns=(HIGH, LOW),
    compute=_ta.aroon,
    bind=_bind_aroon,
    warmup=lambda period: period + 1,
    outputs=("up", "down"),
    source="TA-Lib AROON",
    latest_helper="get_latest_aroon",
    series_helper="get_aroon",
)


def get_latest_sma(klines: Klines, period: int) -> float | None:
    """Latest simple moving average of the closes (quote asset). TA-Lib SMA.

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: float, or ``None`` with fewer than ``period`` candles (warm-up
    ``period``).
    """
    return latest_of(SMA, klines, _bind_sma(period))


def get_sma(klines: Klines, period: int) -> Series:
    """Simple moving average of the closes (quote asset) at every candle. TA-Lib SMA.

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``period - 1`` (warm-up ``period``).
    """
    return series_of(SMA, klines, _bind_sma(period))


def get_latest_ema(klines: Klines, period: int) -> float | None:
    """Latest exponential moving average of the closes (quote asset). TA-Lib EMA
    (k = 2 / (period + 1), seeded with the SMA of the first ``period`` closes;
    it depends on every candle given, not only the last ``period``).

    Args: ``klines``; ``period``: length in candles, int 1..100000.
    Returns: float, or ``None`` with fewer than ``period`` candles (warm-up
    ``period``).
    """
    return latest_of(EMA, klines, _bind_ema(period))


def get_ema(klines: Klines, period: int) -> Series:
    """Exponential moving average of the closes (quote asset) at every candle. TA-Lib EMA.

    Args: ``klines``; ``period``: length in candles, int 1..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``period - 1`` (warm-up ``period``).
    """
    return series_of(EMA, klines, _bind_ema(period))


def get_latest_wma(klines: Klines, period: int) -> float | None:
    """Latest linearly weighted moving average of the closes (quote asset),
    weights 1..period with the newest heaviest. TA-Lib WMA.

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: float, or ``None`` with fewer than ``period`` candles (warm-up
    ``period``).
    """
    return latest_of(WMA, klines, _bind_wma(period))


def get_wma(klines: Klines, period: int) -> Series:
    """Linearly weighted moving average of the closes (quote asset) at every
    candle. TA-Lib WMA.

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``period - 1`` (warm-up ``period``).
    """
    return series_of(WMA, klines, _bind_wma(period))


def get_latest_vwap(klines: Klines) -> float | None:
    """Latest volume-weighted average price (quote asset), anchored at the
    oldest candle given: sum(typical * volume) / sum(volume) with typical =
    (high + low + close) / 3. numpy; formula from StockCharts ChartSchool,
    "Volume-Weighted Average Price (VWAP)". Not session-anchored: the value
    depends on how many candles are given.

    Args: ``klines``.
    Returns: float, or ``None`` with no candles or zero total volume (warm-up
    1 candle).
    """
    return latest_of(VWAP, klines, ())


def get_vwap(klines: Klines) -> Series:
    """Cumulative VWAP (quote asset) at every candle, anchored at the oldest
    candle given (see :func:`get_latest_vwap`). numpy, StockCharts formula.

    Args: ``klines``.
    Returns: tuple of ``float | None``, one per candle, ``None`` while the
    cumulative volume is 0 (warm-up 1 candle).
    """
    return series_of(VWAP, klines, ())


def get_latest_adx(klines: Klines, period: int = 14) -> float | None:
    """Latest Wilder average directional index, 0..100. TA-Lib ADX.

    Args: ``klines``; ``period``: length in candles, int 2..100000.
    Returns: float, or ``None`` with fewer than ``2 * period`` candles (warm-up
    ``2 * period``).
    """
    return latest_of(ADX, klines, _bind_adx(period))


def get_adx(klines: Klines, period: int = 14) -> Series:
    """Wilder average directional index, 0..100, at every candle. TA-Lib ADX.

    Args: ``klines``; ``period``: length in candles, int 2..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``2 * period - 1`` (warm-up ``2 * period``).
    """
    return series_of(ADX, klines, _bind_adx(period))


def get_latest_aroon(klines: Klines, period: int = 14) -> tuple[float, float] | None:
    """Latest Aroon (up, down), each 0..100. TA-Lib AROON (returned as up, down;
    TA-Lib's own order is down, up).

    Args: ``klines``; ``period``: lookback in candles, int 2..100000.
    Returns: ``(up, down)`` floats, or ``None`` with fewer than ``period + 1``
    candles (warm-up ``period + 1``).
    """
    return latest_of(AROON, klines, _bind_aroon(period))


def get_aroon(klines: Klines, period: int = 14) -> tuple[Series, Series]:
    """Aroon up and down series, each 0..100. TA-Lib AROON.

    Args: ``klines``; ``period``: lookback in candles, int 2..100000.
    Returns: ``(up_series, down_series)``, each a tuple of ``float | None``
    per candle, ``None`` for the first ``period`` (warm-up ``period + 1``).
    """
    return series_of(AROON, klines, _bind_aroon(period))
