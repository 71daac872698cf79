"""Volatility helpers: Bollinger Bands, ATR, Keltner Channels, Donchian Channels.

Every helper takes ``klines`` (candle rows in Binance column order, at least
6 columns, oldest first, or a store view with ``column()``), returns plain
floats/tuples/``None`` (``None`` = too few candles or undefined) and raises
``IndicatorError`` for bad arguments, never for too few candles. Band
helpers return ``(upper, middle, lower)`` with upper >= middle >= lower.
"""

from __future__ import annotations

from . import _formulas, _ta
from ._input import CLOSE, HIGH, LOW, Klines, check_multiplier, check_period
from ._spec import IndicatorSpec, latest_of, series_of

__all__ = [
    "ATR",
    "BOLLINGER_BANDS",
    "DONCHIAN_CHANNELS",
    "KELTNER_CHANNELS",
    "get_atr",
    "get_bollinger_bands",
    "get_donchian_channels",
    "get_keltner_channels",
    "get_latest_atr",
    "get_latest_bollinger_bands",
    "get_latest_donchian_channels",
    "get_latest_keltner_channels",
]

Series = tuple[float | None, ...]
Bands = tuple[float, float, float]
BandSeries = tuple[Series, Series, Series]


def _bind_bollinger_bands(period: int = 20, std_dev: float = 2.0) -> tuple[int, float]:
    return (
        check_period(period, "bollinger_bands", "period", 2),
        check_multiplier(std_dev, "bollinger_bands", "std_dev"),
    )


def _bind_atr(period: int = 14) -> tuple[int]:
    return (check_period(period, "atr", "period", 1),)


def _bind_keltner_channels(
    period: int = 20, atr_period: int = 10, multiplier: float = 2.0
) -> tuple[int, int, float]:
    return (
        check_period(period, "keltner_channels", "period", 1),
        check_period(atr_period, "keltner_channels", "atr_period", 1),
        check_multiplier(multiplier, "keltner_channels", "multiplier"),
    )


def _bind_donchian_channels(period: int = 20) -> tuple[int]:
    return (check_period(period, "donchian_channels", "period", 1),)


BOLLINGER_BANDS = IndicatorSpec(
    name="bollinger_bands",
    columns=(CLOSE,),
    compute=_ta.bollinger_bands,
    bind=_bind_bollinger_bands,
    warmup=lambda period, std_dev: period,
    outputs=("upper", "middle", "lower"),
    source="TA-Lib BBANDS (matype SMA)",
    latest_helper="get_latest_bollinger_bands",
    series_helper="get_bollinger_bands",
)
ATR = IndicatorSpec(
    name="atr",
    columns=(HIGH, LOW, CLOSE),
    compute=_ta.atr,
    bind=_bind_atr,
    warmup=lambda period: period + 1,
    outputs=("atr",),
    source="TA-Lib ATR",
    latest_helper="get_latest_atr",
    series_helper="get_atr",
)
KELTNER_CHANNELS = IndicatorSpec(
    name="keltner_channels",
    columns=(HIGH, LOW, CLOSE),
    compute=_formulas.keltner_channels,
    bind=_bind_keltner_channels,
    warmup=lambda period, atr_period, multiplier: max(period, atr_period + 1),
    outputs=("upper", "middle", "lower"),
    source="EMA +/- multiplier * ATR (TA-Lib EMA, ATR; StockCharts ChartSchool, Keltner Channels)",
    latest_helper="get_latest_keltner_channels",
    series_helper="get_keltner_channels",
)
DONCHIAN_CHANNELS = IndicatorSpec(
    name="donchian_channels",
    columns=(HIGH, LOW),
    compute=_formulas.donchian_channels,
    bind=_bind_donchian_channels,
    warmup=lambda period: period,
    outputs=("upper", "middle", "lower"),
    source="highest high / lowest low / midpoint (TA-Lib MAX, MIN; StockCharts ChartSchool, "
    "Donchian Channels)",
    latest_helper="get_latest_donchian_channels",
    series_helper="get_donchian_channels",
)


def get_latest_bollinger_bands(
    klines: Klines, period: int = 20, std_dev: float = 2.0
) -> Bands | None:
    """Latest Bollinger Bands of the closes, quote asset. TA-Lib BBANDS with
    matype SMA: middle = SMA(period), bands = middle +/- std_dev * population
    standard deviation of the last ``period`` closes.

    Args: ``klines``; ``period``: window in candles, int 2..100000;
    ``std_dev``: band width in standard deviations, number >= 0.
    Returns: ``(upper, middle, lower)`` floats, or ``None`` with fewer than
    ``period`` candles (warm-up ``period``).
    """
    return latest_of(BOLLINGER_BANDS, klines, _bind_bollinger_bands(period, std_dev))


def get_bollinger_bands(klines: Klines, period: int = 20, std_dev: float = 2.0) -> BandSeries:
    """Bollinger Bands series, quote asset. TA-Lib BBANDS (matype SMA; see
    :func:`get_latest_bollinger_bands`).

    Args: ``klines``; ``period``: window in candles, int 2..100000;
    ``std_dev``: band width in standard deviations, number >= 0.
    Returns: ``(upper_series, middle_series, lower_series)``, each a tuple of
    ``float | None`` per candle, ``None`` for the first ``period - 1``
    (warm-up ``period``).
    """
    return series_of(BOLLINGER_BANDS, klines, _bind_bollinger_bands(period, std_dev))


def get_latest_atr(klines: Klines, period: int = 14) -> float | None:
    """Latest Wilder average true range, quote asset. TA-Lib ATR (Wilder
    smoothing: depends on every candle given).

    Args: ``klines``; ``period``: length in candles, int 1..100000.
    Returns: float, or ``None`` with fewer than ``period + 1`` candles (warm-up
    ``period + 1``).
    """
    return latest_of(ATR, klines, _bind_atr(period))


def get_atr(klines: Klines, period: int = 14) -> Series:
    """Wilder average true range, quote asset, at every candle. TA-Lib ATR.

    Args: ``klines``; ``period``: length in candles, int 1..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``period`` (warm-up ``period + 1``).
    """
    return series_of(ATR, klines, _bind_atr(period))


def get_latest_keltner_channels(
    klines: Klines, period: int = 20, atr_period: int = 10, multiplier: float = 2.0
) -> Bands | None:
    """Latest Keltner Channels, quote asset: middle = EMA(close, period),
    bands = middle +/- multiplier * ATR(atr_period). numpy over TA-Lib EMA and
    ATR; formula from StockCharts ChartSchool, "Keltner Channels".

    Args: ``klines``; ``period``: EMA length in candles, int 1..100000;
    ``atr_period``: ATR length in candles, int 1..100000; ``multiplier``: band
    width in ATRs, number >= 0.
    Returns: ``(upper, middle, lower)`` floats, or ``None`` with fewer than
    ``max(period, atr_period + 1)`` candles (warm-up 20 with defaults).
    """
    params = _bind_keltner_channels(period, atr_period, multiplier)
    return latest_of(KELTNER_CHANNELS, klines, params)


def get_keltner_channels(
    klines: Klines, period: int = 20, atr_period: int = 10, multiplier: float = 2.0
) -> BandSeries:
    """Keltner Channels series, quote asset: EMA +/- multiplier * ATR. numpy
    over TA-Lib EMA and ATR (StockCharts formula, see
    :func:`get_latest_keltner_channels`).

    Args: ``klines``; ``period``: EMA length in candles, int 1..100000;
    ``atr_period``: ATR length in candles, int 1..100000; ``multiplier``: band
    width in ATRs, number >= 0.
    Returns: ``(upper_series, middle_series, lower_series)``, each a tuple of
    ``float | None`` per candle, ``None`` for the first
    ``max(period, atr_period + 1) - 1`` (warm-up ``max(period, atr_period + 1)``).
    """
    params = _bind_keltner_channels(period, atr_period, multiplier)
    return series_of(KELTNER_CHANNELS, klines, params)


def get_latest_donchian_channels(klines: Klines, period: int = 20) -> Bands | None:
    """Latest Donchian Channels, quote asset: upper = highest high and lower =
    lowest low of the last ``period`` candles (current included), middle =
    their midpoint. numpy over TA-Lib MAX/MIN; formula from StockCharts
    ChartSchool, "Donchian Channels".

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: ``(upper, middle, lower)`` floats, or ``None`` with fewer than
    ``period`` candles (warm-up ``period``).
    """
    return latest_of(DONCHIAN_CHANNELS, klines, _bind_donchian_channels(period))


def get_donchian_channels(klines: Klines, period: int = 20) -> BandSeries:
    """Donchian Channels series, quote asset: highest high, midpoint, lowest
    low of the last ``period`` candles. numpy over TA-Lib MAX/MIN (StockCharts
    formula, see :func:`get_latest_donchian_channels`).

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: ``(upper_series, middle_series, lower_series)``, each a tuple of
    ``float | None`` per candle, ``None`` for the first ``period - 1``
    (warm-up ``period``).
    """
    return series_of(DONCHIAN_CHANNELS, klines, _bind_donchian_channels(period))
