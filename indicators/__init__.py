"""Technical indicators for trader filters and the analysis payload.

Pure functions over candles, TA-Lib where it has the indicator (the
function is named in each docstring), numpy with a cited formula otherwise.
The helper set is seed 002's ``screenerHelpers`` list in snake_case; every
``get_latest_*`` helper has a series twin without ``latest_`` (``get_rsi``,
``get_macd``, ...). :data:`HELPERS` maps every helper name to its function
(what the sandbox exposes to filters as globals).

Input (``klines``), oldest candle first:
    * a sequence of candle rows in Binance column order ``open_time, open,
      high, low, close, volume, ...`` (at least 6 columns; numbers may be
      ``str`` as the Binance REST API returns them); or
    * a store view: any object with ``column(index) -> numpy.ndarray``
      returning a 1-D float64 array of that column (fast path, no per-row
      conversion; see :class:`KlineView`); or a 2-D numpy array.
    The last row is "the latest candle" whatever it is: with a view that
    includes the forming candle, latest values include it.

Output, one rule for every helper:
    * plain ``float``, ``tuple`` or ``None`` only, never numpy types, never
      NaN or infinity;
    * ``None`` when a value does not exist: fewer candles than the helper's
      warm-up (documented on each helper as the fewest candles giving a
      latest value) or an undefined value (e.g. VWAP over zero volume);
    * helpers returning several values (MACD, stochastic, bands, Aroon)
      return one tuple of floats, or ``None`` (never a tuple of ``None``);
    * series twins return a tuple aligned with the candles (same length),
      ``None`` at warm-up positions; multi-output twins return a tuple of
      such tuples, ``None`` at the same positions in each.
    Too few candles is never an error.

Errors: bad arguments (a period that is not an int or out of its range,
``bool`` periods, negative/NaN multipliers, ``fast_period >= slow_period``,
``klines`` that is not candles, short or non-numeric rows) raise a subclass
of :class:`IndicatorError` (also ``ValueError`` or ``TypeError``) with a
message naming the indicator and the argument.

Sharing work: :data:`INDICATORS` describes each indicator (columns read,
parameter binding, warm-up, array function, presentation), and
:mod:`indicators.compute` holds the array maths, so a caller can compute an
indicator once per (symbol, interval, parameters, candles) and serve every
filter and the analysis payload from it. Recursive indicators (EMA, RSI,
ATR, ADX, MACD, OBV, VWAP) depend on every candle of the window, so when the
window changes (a new forming candle, or the forming candle's values) the
whole window is recomputed; TA-Lib over 500 candles costs a few
microseconds, and recomputing keeps results identical to a fresh call.
"""

from __future__ import annotations

from . import compute
from ._catalog import HELPERS, INDICATORS
from ._errors import IndicatorError, InvalidKlinesError, InvalidParameterError, ParameterTypeError
from ._input import CLOSE, HIGH, LOW, OPEN, OPEN_TIME, VOLUME, Klines, KlineView
from ._momentum import (
    get_cci,
    get_latest_cci,
    get_latest_macd,
    get_latest_roc,
    get_latest_rsi,
    get_latest_stochastic,
    get_latest_williams_r,
    get_macd,
    get_roc,
    get_rsi,
    get_stochastic,
    get_williams_r,
)
from ._price_action import (
    get_closes,
    get_highest_high,
    get_highs,
    get_lowest_low,
    get_lows,
    get_opens,
    get_price_change,
    get_price_change_percent,
    get_volumes,
)
from ._spec import IndicatorSpec
from ._trend import (
    get_adx,
    get_aroon,
    get_ema,
    get_latest_adx,
    get_latest_aroon,
    get_latest_ema,
    get_latest_sma,
    get_latest_vwap,
    get_latest_wma,
    get_sma,
    get_vwap,
    get_wma,
)
from ._volatility import (
    get_atr,
    get_bollinger_bands,
    get_donchian_channels,
    get_keltner_channels,
    get_latest_atr,
    get_latest_bollinger_bands,
    get_latest_donchian_channels,
    get_latest_keltner_channels,
)
from ._volume import (
    get_latest_obv,
    get_latest_volume,
    get_latest_volume_change,
    get_latest_volume_ma,
    get_obv,
    get_volume,
    get_volume_change,
    get_volume_ma,
)

__all__ = [
    "CLOSE",
    "HELPERS",
    "HIGH",
    "INDICATORS",
    "LOW",
    "OPEN",
    "OPEN_TIME",
    "VOLUME",
    "IndicatorError",
    "IndicatorSpec",
    "InvalidKlinesError",
    "InvalidParameterError",
    "KlineView",
    "Klines",
    "ParameterTypeError",
    "compute",
    "get_adx",
    "get_aroon",
    "get_atr",
    "get_bollinger_bands",
    "get_cci",
    "get_closes",
    "get_donchian_channels",
    "get_ema",
    "get_highest_high",
    "get_highs",
    "get_keltner_channels",
    "get_latest_adx",
    "get_latest_aroon",
    "get_latest_atr",
    "get_latest_bollinger_bands",
    "get_latest_cci",
    "get_latest_donchian_channels",
    "get_latest_ema",
    "get_latest_keltner_channels",
    "get_latest_macd",
    "get_latest_obv",
    "get_latest_roc",
    "get_latest_rsi",
    "get_latest_sma",
    "get_latest_stochastic",
    "get_latest_volume",
    "get_latest_volume_change",
    "get_latest_volume_ma",
    "get_latest_vwap",
    "get_latest_williams_r",
    "get_latest_wma",
    "get_lowest_low",
    "get_lows",
    "get_macd",
    "get_obv",
    "get_opens",
    "get_price_change",
    "get_price_change_percent",
    "get_roc",
    "get_rsi",
    "get_sma",
    "get_stochastic",
    "get_volume",
    "get_volume_change",
    "get_volume_ma",
    "get_volumes",
    "get_vwap",
    "get_williams_r",
    "get_wma",
]
