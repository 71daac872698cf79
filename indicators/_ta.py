"""Indicator maths backed by TA-Lib, on float64 arrays.

Every function takes 1-D float64 arrays of equal length (oldest candle
first) and returns arrays of the same length, NaN where the value does not
exist yet (TA-Lib's lookback). Parameters are assumed valid: validate them
first (the ``get_*`` helpers and ``IndicatorSpec.bind`` do). The input
arrays are never modified.

"Lookback" is TA-Lib's ``TA_<FUNC>_Lookback``: the number of leading NaN, so
the first value needs ``lookback + 1`` candles (the *warm-up*).
"""

from __future__ import annotations

import numpy as np
import talib

__all__ = [
    "adx",
    "aroon",
    "atr",
    "bollinger_bands",
    "cci",
    "ema",
    "highest_high",
    "lowest_low",
    "macd",
    "obv",
    "price_change",
    "price_change_percent",
    "roc",
    "rsi",
    "sma",
    "stochastic",
    "volume_ma",
    "williams_r",
    "wma",
]

_SMA = talib.MA_Type.SMA


def sma(close: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average: TA-Lib ``SMA(close, timeperiod=period)``. Lookback ``period - 1``."""
    return talib.SMA(close, period)


def ema(close: np.ndarray, period: int) -> np.ndarray:
    """Exponential moving average: TA-Lib ``EMA(close, timeperiod=period)``,
    k = 2 / (period + 1), seeded with the SMA of the first ``period`` values.
    Lookback ``period - 1``."""
    return talib.EMA(close, period)


def wma(close: np.ndarray, period: int) -> np.ndarray:
    """Linearly weighted moving average: TA-Lib ``WMA(close, timeperiod=period)``
    (weights 1..period, newest heaviest). Lookback ``period - 1``."""
    return talib.WMA(close, period)


def rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's relative strength index, 0..100: TA-Lib ``RSI(close, timeperiod=period)``.
    Lookback ``period``."""
    return talib.RSI(close, period)


def macd(
    close: np.ndarray, fast_period: int, slow_period: int, signal_period: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line, signal line and histogram: TA-Lib ``MACD(close, fastperiod,
    slowperiod, signalperiod)`` (EMA-based). Lookback
    ``slow_period + signal_period - 2`` for all three outputs.
    Requires ``fast_period < slow_period`` (TA-Lib would swap them)."""
    return talib.MACD(close, fast_period, slow_period, signal_period)


def stochastic(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    k_period: int,
    d_period: int,
    smooth_k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic oscillator (%K, %D), 0..100: TA-Lib ``STOCH(high, low, close,
    fastk_period=k_period, slowk_period=smooth_k, slowk_matype=SMA,
    slowd_period=d_period, slowd_matype=SMA)``.

    %K = SMA over ``smooth_k`` of 100 * (close - lowest low) / (highest high -
    lowest low) over ``k_period`` candles (``smooth_k=1``: Lane's raw "fast"
    %K); %D = SMA of %K over ``d_period``. Lookback
    ``k_period + smooth_k + d_period - 3``."""
    return talib.STOCH(high, low, close, k_period, smooth_k, _SMA, d_period, _SMA)


def cci(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Lambert's commodity channel index: TA-Lib ``CCI(high, low, close,
    timeperiod=period)`` (typical price, constant 0.015). Lookback ``period - 1``."""
    return talib.CCI(high, low, close, period)


def williams_r(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Williams %R, -100..0: TA-Lib ``WILLR(high, low, close, timeperiod=period)``.
    Lookback ``period - 1``."""
    return talib.WILLR(high, low, close, period)


def roc(close: np.ndarray, period: int) -> np.ndarray:
    """Rate of change in percent, ``(close / close[period ago] - 1) * 100``:
    TA-Lib ``ROC(close, timeperiod=period)`` (0 where the older close is 0).
    Lookback ``period``."""
    return talib.ROC(close, period)


def bollinger_bands(
    close: np.ndarray, period: int, std_dev: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger Bands (upper, middle, lower): TA-Lib ``BBANDS(close,
    timeperiod=period, nbdevup=std_dev, nbdevdn=std_dev, matype=SMA)``; middle =
    SMA, bands = middle +/- std_dev * population standard deviation.
    Lookback ``period - 1``."""
    return talib.BBANDS(close, period, std_dev, std_dev, _SMA)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's average true range (quote asset): TA-Lib ``ATR(high, low, close,
    timeperiod=period)``. Lookback ``period``."""
    return talib.ATR(high, low, close, period)


def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """On-balance volume (base asset), starting at the first candle's volume:
    TA-Lib ``OBV(close, volume)``. Lookback 0."""
    return talib.OBV(close, volume)


def volume_ma(volume: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average of volume (base asset): TA-Lib ``SMA(volume,
    timeperiod=period)``. Lookback ``period - 1``."""
    return talib.SMA(volume, period)


def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's average directional index, 0..100: TA-Lib ``ADX(high, low, close,
    timeperiod=period)``. Lookback ``2 * period - 1``."""
    return talib.ADX(high, low, close, period)


def aroon(high: np.ndarray, low: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """Aroon (up, down), 0..100: TA-Lib ``AROON(high, low, timeperiod=period)``,
    reordered from TA-Lib's (down, up). Lookback ``period``."""
    down, up = talib.AROON(high, low, period)
    return up, down


def price_change(close: np.ndarray, periods: int) -> np.ndarray:
    """Close minus the close ``periods`` candles earlier (quote asset): TA-Lib
    ``MOM(close, timeperiod=periods)``. Lookback ``periods``."""
    return talib.MOM(close, periods)


def price_change_percent(close: np.ndarray, periods: int) -> np.ndarray:
    """Percent change of close over ``periods`` candles: TA-Lib ``ROC(close,
    timeperiod=periods)`` (0 where the older close is 0). Lookback ``periods``."""
    return talib.ROC(close, periods)


def highest_high(high: np.ndarray, periods: int) -> np.ndarray:
    """Highest high of the last ``periods`` candles, current included: TA-Lib
    ``MAX(high, timeperiod=periods)`` (a copy of ``high`` for ``periods=1``,
    which TA-Lib refuses). Lookback ``periods - 1``."""
    if periods == 1:
        return high.copy()
    return talib.MAX(high, periods)


def lowest_low(low: np.ndarray, periods: int) -> np.ndarray:
    """Lowest low of the last ``periods`` candles, current included: TA-Lib
    ``MIN(low, timeperiod=periods)`` (a copy of ``low`` for ``periods=1``,
    which TA-Lib refuses). Lookback ``periods - 1``."""
    if periods == 1:
        return low.copy()
    return talib.MIN(low, periods)
