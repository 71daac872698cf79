"""Momentum helpers: RSI, MACD, Stochastic, CCI, Williams %R, ROC.

Every helper takes ``klines`` (candle rows in Binance column order, at least
6 columns, oldest first, or a store view with ``column()``), returns plain
floats/tuples/``None`` (``None`` = too few candles or undefined) and raises
``IndicatorError`` for bad arguments, never for too few candles.
"""

from __future__ import annotations

from . import _ta
from ._errors import InvalidParameterError
from ._input import CLOSE, HIGH, LOW, Klines, check_period
from ._spec import IndicatorSpec, latest_of, series_of

__all__ = [
    "CCI",
    "MACD",
    "ROC",
    "RSI",
    "STOCHASTIC",
    "WILLIAMS_R",
    "get_cci",
    "get_latest_cci",
    "get_latest_macd",
    "get_latest_roc",
    "get_latest_rsi",
    "get_latest_stochastic",
    "get_latest_williams_r",
    "get_macd",
    "get_roc",
    "get_rsi",
    "get_stochastic",
    "get_williams_r",
]

Series = tuple[float | None, ...]


def _bind_rsi(period: int = 14) -> tuple[int]:
    return (check_period(period, "rsi", "period", 2),)


def _bind_macd(
    fast_period: int = 12, slow_period: int = 26, signal_period: int = 9
) -> tuple[int, int, int]:
    fast = check_period(fast_period, "macd", "fast_period", 2)
    slow = check_period(slow_period, "macd", "slow_period", 2)
    signal = check_period(signal_period, "macd", "signal_period", 1)
    if fast >= slow:
        raise InvalidParameterError(
            f"macd: fast_period must be less than slow_period, got {fast} and {slow}"
        )
    return (fast, slow, signal)


def _bind_stochastic(
    k_period: int = 14, d_period: int = 3, smooth_k: int = 1
) -> tuple[int, int, int]:
    return (
        check_period(k_period, "stochastic", "k_period", 1),
        check_period(d_period, "stochastic", "d_period", 1),
        check_period(smooth_k, "stochastic", "smooth_k", 1),
    )


def _bind_cci(period: int = 20) -> tuple[int]:
    return (check_period(period, "cci", "period", 2),)


def _bind_williams_r(period: int = 14) -> tuple[int]:
    return (check_period(period, "williams_r", "period", 2),)


def _bind_roc(period: int = 10) -> tuple[int]:
    return (check_period(period, "roc", "period", 1),)


def _same(period: int) -> int:
    return period


def _next(period: int) -> int:
    return period + 1


RSI = IndicatorSpec(
    name="rsi",
    columns=(CLOSE,),
    compute=_ta.rsi,
    bind=_bind_rsi,
    warmup=_next,
    outputs=("rsi",),
    source="TA-Lib RSI",
    latest_helper="get_latest_rsi",
    series_helper="get_rsi",
)
MACD = IndicatorSpec(
    name="macd",
    columns=(CLOSE,),
    compute=_ta.macd,
    bind=_bind_macd,
    warmup=lambda fast, slow, signal: slow + signal - 1,
    outputs=("macd", "signal", "histogram"),
    source="TA-Lib MACD",
    latest_helper="get_latest_macd",
    series_helper="get_macd",
)
STOCHASTIC = IndicatorSpec(
    name="stochastic",
    columns=(HIGH, LOW, CLOSE),
    compute=_ta.stochastic,
    bind=_bind_stochastic,
    warmup=lambda k, d, smooth: k + smooth + d - 2,
    outputs=("k", "d"),
    source="TA-Lib STOCH (slowk/slowd matype SMA)",
    latest_helper="get_latest_stochastic",
    series_helper="get_stochastic",
)
CCI = IndicatorSpec(
    name="cci",
    columns=(HIGH, LOW, CLOSE),
    compute=_ta.cci,
    bind=_bind_cci,
    warmup=_same,
    outputs=("cci",),
    source="TA-Lib CCI",
    latest_helper="get_latest_cci",
    series_helper="get_cci",
)
WILLIAMS_R = IndicatorSpec(
    name="williams_r",
    columns=(HIGH, LOW, CLOSE),
    compute=_ta.williams_r,
    bind=_bind_williams_r,
    warmup=_same,
    outputs=("williams_r",),
    source="TA-Lib WILLR",
    latest_helper="get_latest_williams_r",
    series_helper="get_williams_r",
)
ROC = IndicatorSpec(
    name="roc",
    columns=(CLOSE,),
    compute=_ta.roc,
    bind=_bind_roc,
    warmup=_next,
    outputs=("roc",),
    source="TA-Lib ROC",
    latest_helper="get_latest_roc",
    series_helper="get_roc",
)


def get_latest_rsi(klines: Klines, period: int = 14) -> float | None:
    """Latest Wilder relative strength index of the closes, 0..100. TA-Lib RSI
    (Wilder smoothing: depends on every candle given, not only the last
    ``period + 1``).

    Args: ``klines``; ``period``: length in candles, int 2..100000.
    Returns: float, or ``None`` with fewer than ``period + 1`` candles (warm-up
    ``period + 1``).
    """
    return latest_of(RSI, klines, _bind_rsi(period))


def get_rsi(klines: Klines, period: int = 14) -> Series:
    """Wilder RSI of the closes, 0..100, at every candle. TA-Lib RSI.

    Args: ``klines``; ``period``: length in candles, int 2..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``period`` (warm-up ``period + 1``).
    """
    return series_of(RSI, klines, _bind_rsi(period))


def get_latest_macd(
    klines: Klines, fast_period: int = 12, slow_period: int = 26, signal_period: int = 9
) -> tuple[float, float, float] | None:
    """Latest MACD (line, signal, histogram) of the closes, quote asset. TA-Lib
    MACD (EMA(fast) - EMA(slow); signal = EMA(signal_period) of the line;
    histogram = line - signal).

    Args: ``klines``; ``fast_period``, ``slow_period``: EMA lengths in candles,
    ints 2..100000 with fast < slow; ``signal_period``: int 1..100000.
    Returns: ``(macd, signal, histogram)`` floats, or ``None`` with fewer than
    ``slow_period + signal_period - 1`` candles (warm-up 34 with defaults).
    """
    return latest_of(MACD, klines, _bind_macd(fast_period, slow_period, signal_period))


def get_macd(
    klines: Klines, fast_period: int = 12, slow_period: int = 26, signal_period: int = 9
) -> tuple[Series, Series, Series]:
    """MACD line, signal and histogram series of the closes, quote asset.
    TA-Lib MACD.

    Args: ``klines``; ``fast_period``, ``slow_period``: EMA lengths in candles,
    ints 2..100000 with fast < slow; ``signal_period``: int 1..100000.
    Returns: ``(macd_series, signal_series, histogram_series)``, each a tuple
    of ``float | None`` per candle, ``None`` for the first
    ``slow_period + signal_period - 2`` (warm-up ``slow_period + signal_period - 1``).
    """
    return series_of(MACD, klines, _bind_macd(fast_period, slow_period, signal_period))


def get_latest_stochastic(
    klines: Klines, k_period: int = 14, d_period: int = 3, smooth_k: int = 1
) -> tuple[float, float] | None:
    """Latest stochastic oscillator (%K, %D), each 0..100. TA-Lib STOCH with
    fastk_period=k_period, slowk_period=smooth_k, slowd_period=d_period, both
    matypes SMA. Raw %K = 100 * (close - lowest low) / (highest high - lowest
    low) over ``k_period`` candles (0 when the range is 0); %K is its SMA over
    ``smooth_k`` (default 1: Lane's fast %K, TradingView's default); %D is the
    SMA of %K over ``d_period``.

    Args: ``klines``; ``k_period``, ``d_period``, ``smooth_k``: lengths in
    candles, ints 1..100000.
    Returns: ``(k, d)`` floats, or ``None`` with fewer than
    ``k_period + smooth_k + d_period - 2`` candles (warm-up 16 with defaults).
    """
    return latest_of(STOCHASTIC, klines, _bind_stochastic(k_period, d_period, smooth_k))


def get_stochastic(
    klines: Klines, k_period: int = 14, d_period: int = 3, smooth_k: int = 1
) -> tuple[Series, Series]:
    """Stochastic %K and %D series, each 0..100. TA-Lib STOCH with
    slowk_period=smooth_k, SMA smoothing (see :func:`get_latest_stochastic`).

    Args: ``klines``; ``k_period``, ``d_period``, ``smooth_k``: lengths in
    candles, ints 1..100000.
    Returns: ``(k_series, d_series)``, each a tuple of ``float | None`` per
    candle, ``None`` for the first ``k_period + smooth_k + d_period - 3``
    (warm-up ``k_period + smooth_k + d_period - 2``).
    """
    return series_of(STOCHASTIC, klines, _bind_stochastic(k_period, d_period, smooth_k))


def get_latest_cci(klines: Klines, period: int = 20) -> float | None:
    """Latest commodity channel index (unbounded, typically -200..200). TA-Lib
    CCI (typical price, 0.015 constant).

    Args: ``klines``; ``period``: length in candles, int 2..100000.
    Returns: float, or ``None`` with fewer than ``period`` candles (warm-up
    ``period``).
    """
    return latest_of(CCI, klines, _bind_cci(period))


def get_cci(klines: Klines, period: int = 20) -> Series:
    """Commodity channel index at every candle. TA-Lib CCI.

    Args: ``klines``; ``period``: length in candles, int 2..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``period - 1`` (warm-up ``period``).
    """
    return series_of(CCI, klines, _bind_cci(period))


def get_latest_williams_r(klines: Klines, period: int = 14) -> float | None:
    """Latest Williams %R, -100..0. TA-Lib WILLR.

    Args: ``klines``; ``period``: length in candles, int 2..100000.
    Returns: float, or ``None`` with fewer than ``period`` candles (warm-up
    ``period``).
    """
    return latest_of(WILLIAMS_R, klines, _bind_williams_r(period))


def get_williams_r(klines: Klines, period: int = 14) -> Series:
    """Williams %R, -100..0, at every candle. TA-Lib WILLR.

    Args: ``klines``; ``period``: length in candles, int 2..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``period - 1`` (warm-up ``period``).
    """
    return series_of(WILLIAMS_R, klines, _bind_williams_r(period))


def get_latest_roc(klines: Klines, period: int = 10) -> float | None:
    """Latest rate of change of the close in percent, (close / close ``period``
    candles earlier - 1) * 100. TA-Lib ROC (0 if the older close is 0).

    Args: ``klines``; ``period``: distance in candles, int 1..100000.
    Returns: float (percent), or ``None`` with fewer than ``period + 1``
    candles (warm-up ``period + 1``).
    """
    return latest_of(ROC, klines, _bind_roc(period))


def get_roc(klines: Klines, period: int = 10) -> Series:
    """Rate of change of the close in percent at every candle. TA-Lib ROC.

    Args: ``klines``; ``period``: distance in candles, int 1..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``period`` (warm-up ``period + 1``).
    """
    return series_of(ROC, klines, _bind_roc(period))
