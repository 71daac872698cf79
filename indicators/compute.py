"""Indicator maths on numpy arrays, for callers that share work.

The ``get_*`` helpers are wrappers over these functions. A caching layer
(one computation per symbol x interval x indicator x parameters per tick)
calls them directly on a store's column arrays and turns the arrays into
helper results with ``IndicatorSpec.latest`` / ``IndicatorSpec.series``
(see ``indicators.INDICATORS``).

Conventions: inputs are 1-D float64 arrays of equal length, oldest candle
first, never modified; outputs are new float64 arrays of the same length
with NaN where a value does not exist (warm-up) or is undefined; functions
with several outputs return a tuple of arrays in the documented order.
Parameters are NOT validated here: bind them with ``IndicatorSpec.bind``
(or call the helpers) first. Inputs must be finite: check with
:func:`all_finite` first, as TA-Lib turns NaN into plausible numbers (the RSI
of closes ending in NaN is 0.0).
"""

from __future__ import annotations

from ._formulas import (
    donchian_channels,
    keltner_channels,
    rolling_sum,
    volume,
    volume_change,
    vwap,
)
from ._input import all_finite
from ._ta import (
    adx,
    aroon,
    atr,
    bollinger_bands,
    cci,
    ema,
    highest_high,
    lowest_low,
    macd,
    obv,
    price_change,
    price_change_percent,
    roc,
    rsi,
    sma,
    stochastic,
    volume_ma,
    williams_r,
    wma,
)

__all__ = [
    "adx",
    "all_finite",
    "aroon",
    "atr",
    "bollinger_bands",
    "cci",
    "donchian_channels",
    "ema",
    "highest_high",
    "keltner_channels",
    "lowest_low",
    "macd",
    "obv",
    "price_change",
    "price_change_percent",
    "roc",
    "rolling_sum",
    "rsi",
    "sma",
    "stochastic",
    "volume",
    "volume_change",
    "volume_ma",
    "vwap",
    "williams_r",
    "wma",
]
