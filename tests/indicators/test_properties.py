"""Property-based tests (hypothesis) of every indicator on random valid
candles: low <= open, close <= high and volume >= 0."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from kline_cases import StoreView, assert_plain

from indicators import HELPERS, INDICATORS, InvalidParameterError

PRICES = st.floats(1e-4, 1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False)
VOLUMES = st.one_of(
    st.just(0.0), st.floats(0.0, 1e9, allow_nan=False, allow_infinity=False, allow_subnormal=False)
)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def candle_tables(draw, max_candles: int = 90) -> np.ndarray:
    """An (n, 6) table in Binance column order with valid candles."""
    count = draw(st.integers(0, max_candles))
    prices = draw(hnp.arrays(np.float64, (count, 4), elements=PRICES))
    prices.sort(axis=1)
    flip = draw(hnp.arrays(np.bool_, count))
    volume = draw(hnp.arrays(np.float64, count, elements=VOLUMES))
    open_ = np.where(flip, prices[:, 1], prices[:, 2])
    close = np.where(flip, prices[:, 2], prices[:, 1])
    open_time = np.arange(count, dtype=np.float64) * 60_000 + 1.6e12
    return np.column_stack([open_time, open_, prices[:, 3], prices[:, 0], close, volume]).reshape(
        -1, 6
    )


def _param_strategy(spec):
    parts = []
    for parameter in inspect.signature(spec.bind).parameters.values():
        if parameter.name in ("std_dev", "multiplier"):
            parts.append(st.floats(0.0, 4.0, allow_nan=False))
        else:
            parts.append(st.integers(1, 30))
    return st.tuples(*parts)


def _flat(result, outputs):
    """Latest result as a tuple of components (or None)."""
    if result is None:
        return None
    return (result,) if outputs == 1 else result


def _near_ge(a, b, scale):
    return a >= b - 1e-9 * max(1.0, abs(scale))


RANGES = {
    "rsi": (0.0, 100.0),
    "stochastic": (0.0, 100.0),
    "williams_r": (-100.0, 0.0),
    "adx": (0.0, 100.0),
    "aroon": (0.0, 100.0),
}


def _check_properties(name, params, table, values):
    """Indicator-specific facts about a non-None latest value."""
    _opens, highs, lows, closes, volumes = (table[:, i] for i in range(1, 6))
    if name in RANGES:
        low, high = RANGES[name]
        for value in values:
            assert _near_ge(value, low, 100) and _near_ge(high, value, 100), (name, value)
    if name in ("bollinger_bands", "keltner_channels", "donchian_channels"):
        upper, middle, lower = values
        assert upper >= middle >= lower
    if name in ("atr", "volume", "volume_ma"):
        assert _near_ge(values[0], 0.0, volumes.max() if name != "atr" else highs.max())
    if name in ("volume_change", "roc", "price_change_percent"):
        assert values[0] >= -100.0 - 1e-9
    if name == "vwap":
        assert _near_ge(values[0], lows.min(), lows.min()) and _near_ge(
            highs.max(), values[0], highs.max()
        )
    if name in ("sma", "wma", "donchian_channels"):
        window = params[0]
        assert _near_ge(
            values[0] if name != "donchian_channels" else values[2], lows[-window:].min(), 1e6
        )
    if name == "highest_high":
        assert values[0] == highs[-params[0] :].max()
    if name == "lowest_low":
        assert values[0] == lows[-params[0] :].min()
    if name == "price_change":
        assert values[0] == closes[-1] - closes[-1 - params[0]]
    if name == "macd":
        line, signal, histogram = values
        assert math.isclose(
            histogram, line - signal, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, abs(line))
        )


@pytest.mark.parametrize("name", list(INDICATORS))
def test_every_indicator_on_random_candles(name):
    spec = INDICATORS[name]
    latest_fn = HELPERS[spec.latest_helper]
    series_fn = HELPERS[spec.series_helper] if spec.series_helper else None
    outputs = len(spec.outputs)

    @SETTINGS
    @given(table=candle_tables(), params=_param_strategy(spec))
    def run(table, params):
        try:
            bound = spec.bind(*params)
        except InvalidParameterError:
            assume(False)
        rows = table.tolist()
        view = StoreView(table)
        latest = latest_fn(rows, *params)
        assert_plain(latest)
        assert latest_fn(view, *params) == latest
        count = table.shape[0]
        if count < spec.warmup(*bound):
            assert latest is None
        if series_fn is not None:
            series = series_fn(view, *params)
            assert_plain(series)
            assert series_fn(rows, *params) == series
            parts = (series,) if outputs == 1 else series
            assert all(len(part) == count for part in parts)
            last = None if count == 0 else tuple(part[-1] for part in parts)
            assert _flat(latest, outputs) == (None if last is None or None in last else last)
        values = _flat(latest, outputs)
        if values is not None:
            assert all(math.isfinite(v) for v in values)
            _check_properties(name, bound, table, values)

    run()


@SETTINGS
@given(table=candle_tables(max_candles=60))
def test_getters_return_the_columns_as_floats(table):
    rows = table.tolist()
    for index, name in enumerate(
        ("get_opens", "get_highs", "get_lows", "get_closes", "get_volumes"), start=1
    ):
        values = HELPERS[name](rows)
        assert values == tuple(table[:, index].tolist())
        assert all(type(v) is float for v in values)
        assert HELPERS[name](StoreView(table)) == values


@SETTINGS
@given(table=candle_tables(max_candles=60), period=st.integers(1, 20))
def test_bands_hold_the_closes_between_them_on_average(table, period):
    """Bollinger middle is the SMA: the mean of the window's closes lies
    between the bands, and the series never has partial rows."""
    upper, middle, lower = HELPERS["get_bollinger_bands"](table.tolist(), max(period, 2))
    for u, m, l in zip(upper, middle, lower, strict=True):
        assert (u is None) == (m is None) == (l is None)
        if u is not None:
            assert u >= m >= l
