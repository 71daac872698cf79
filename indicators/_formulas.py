"""Indicator maths TA-Lib does not have, in numpy, on float64 arrays.

Same conventions as ``_ta``: 1-D float64 arrays of equal length in, arrays
of the same length out, NaN where a value does not exist (warm-up) or is
undefined (division by a zero volume); parameters already validated; inputs
never modified.
"""

from __future__ import annotations

import numpy as np
import talib
from numpy.lib.stride_tricks import as_strided

__all__ = [
    "donchian_channels",
    "keltner_channels",
    "rolling_sum",
    "volume",
    "volume_change",
    "vwap",
]


def rolling_sum(values: np.ndarray, period: int) -> np.ndarray:
    """Sum of the last ``period`` values at each position, NaN for the first
    ``period - 1``.

    Each window is summed on its own (no running total), so a window of zeros
    sums to exactly 0 and the result never drifts; O(n * period) in C.
    """
    size = values.shape[0]
    result = np.full(size, np.nan)
    if size < period:
        return result
    if period == 1:
        result[:] = values
        return result
    windows = as_strided(
        values,
        shape=(size - period + 1, period),
        strides=(values.strides[0], values.strides[0]),
        writeable=False,
    )
    result[period - 1 :] = windows.sum(axis=1)
    return result


def volume(volume: np.ndarray, period: int) -> np.ndarray:
    """Traded volume (base asset) over the last ``period`` candles, current
    included: ``sum(volume[t - period + 1 .. t])``. Warm-up ``period`` candles."""
    return rolling_sum(volume, period)


def volume_change(volume: np.ndarray, period: int) -> np.ndarray:
    """Percent change of the volume of the last ``period`` candles against the
    ``period`` candles before them::

        V(t) = sum(volume[t - period + 1 .. t])
        change(t) = (V(t) / V(t - period) - 1) * 100

    ``period=1`` compares each candle's volume with the previous candle's.
    NaN where ``V(t - period)`` is 0 (undefined). Warm-up ``2 * period``
    candles. Source: the percent-change formula applied to windowed volume
    (StockCharts ChartSchool, "Rate of Change (ROC)", with volume sums in place
    of closes).
    """
    sums = rolling_sum(volume, period)
    result = np.full(sums.shape[0], np.nan)
    if sums.shape[0] < 2 * period:
        return result
    current = sums[period:]
    earlier = sums[:-period]
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (current / earlier - 1.0) * 100.0
    change[~(earlier > 0.0)] = np.nan
    result[period:] = change
    return result


def vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """Volume-weighted average price (quote asset), anchored at the first
    candle of the input::

        typical(i) = (high(i) + low(i) + close(i)) / 3
        vwap(t) = sum(typical(i) * volume(i), i <= t) / sum(volume(i), i <= t)

    Source: StockCharts ChartSchool, "Volume-Weighted Average Price (VWAP)".
    The anchor is the oldest candle given (not a session start), so the value
    depends on the window length. NaN while the cumulative volume is 0.
    Warm-up 1 candle (with volume > 0).
    """
    typical = (high + low + close) / 3.0
    cumulative_volume = np.cumsum(volume)
    cumulative_value = np.cumsum(typical * volume)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = cumulative_value / cumulative_volume
    result[~(cumulative_volume > 0.0)] = np.nan
    return result


def keltner_channels(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    period: int,
    atr_period: int,
    multiplier: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keltner Channels (upper, middle, lower), quote asset::

        middle = EMA(close, period)            (TA-Lib EMA)
        upper  = middle + multiplier * ATR(atr_period)   (TA-Lib ATR)
        lower  = middle - multiplier * ATR(atr_period)

    Source: StockCharts ChartSchool, "Keltner Channels" (Linda Raschke's
    EMA/ATR version; defaults 20, 10, 2). All three are NaN until both the
    EMA and the ATR exist. Warm-up ``max(period, atr_period + 1)`` candles.
    """
    middle = talib.EMA(close, period)
    width = talib.ATR(high, low, close, atr_period) * multiplier
    upper = middle + width
    lower = middle - width
    middle[np.isnan(width)] = np.nan
    return upper, middle, lower


def donchian_channels(
    high: np.ndarray, low: np.ndarray, period: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Donchian Channels (upper, middle, lower), quote asset::

        upper  = highest high of the last `period` candles (current included)
        lower  = lowest low of the last `period` candles (current included)
        middle = (upper + lower) / 2

    Source: StockCharts ChartSchool, "Donchian Channels" (Richard Donchian).
    The rolling extremes use TA-Lib MAX/MIN (a copy for ``period=1``).
    Warm-up ``period`` candles.
    """
    if period == 1:
        upper = high.copy()
        lower = low.copy()
    else:
        upper = talib.MAX(high, period)
        lower = talib.MIN(low, period)
    middle = (upper + lower) / 2.0
    return upper, middle, lower
