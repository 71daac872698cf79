"""Helper adapter: per-tick shared cache, plain immutable results, fresh errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib

import indicators
from sandbox._helpers import MEMO_MAX_ENTRIES, IndicatorError, sanitize, wrap_helpers
from sandbox._views import Candles, ColumnView, Snapshot


def window(n: int = 200, seed: int = 3) -> Candles:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    t = np.arange(n, dtype=np.float64) * 60_000
    return Candles(Snapshot(np.vstack([t, close, close * 1.01, close * 0.99, close, np.full(n, 2.0), t + 59_999,
                                       close * 2, np.zeros(n), np.zeros(n), np.zeros(n)])))  # fmt: skip


def test_same_window_and_arguments_compute_once():
    calls = []

    def last_close(view, offset=0):
        assert isinstance(view, ColumnView)
        calls.append(offset)
        return float(view.column(4)[-1 - int(offset)])

    helper = wrap_helpers({"last_close": last_close})["last_close"]
    k = window()
    assert helper(k) == helper(k) == k[-1].close
    assert helper(k, 1) == helper(k, 1) == k[-2].close
    assert helper(k, offset=1) == helper(k, offset=1)
    assert calls == [0, 1, 1]
    helper(k[:-1])  # another window of the same snapshot
    helper(k, 1.0)  # equal value, other type: cached separately
    assert calls == [0, 1, 1, 0, 1.0]
    helper(k, np.int64(1))
    assert len(calls) == 6


def test_unhashable_arguments_are_computed_without_the_cache():
    calls = []

    def fn(view, extra):
        calls.append(extra)
        return 1.0

    helper = wrap_helpers({"fn": fn})["fn"]
    k = window()
    helper(k, [1])
    helper(k, [1])
    assert calls == [[1], [1]]


def test_spellings_share_one_computation_and_latest_comes_from_the_series(monkeypatch):
    calls = []
    real = talib.RSI

    def counting(close, period):
        calls.append(period)
        return real(close, period)

    monkeypatch.setattr(talib, "RSI", counting)
    helpers = wrap_helpers()
    k = window()
    series = helpers["get_rsi"](k, 14)
    assert helpers["get_rsi"](k) is series and helpers["get_rsi"](k, period=14) is series
    latest = helpers["get_latest_rsi"](k)
    assert latest == series[-1] and helpers["get_latest_rsi"](k, 14) == latest
    assert calls == [14]
    closes = np.array([c.close for c in k])
    assert math.isclose(latest, real(closes, 14)[-1])
    assert isinstance(series, tuple) and series[0] is None and type(series[-1]) is float
    assert helpers["get_latest_rsi"](k[:-1]) != latest and calls == [14, 14]  # another window: computed


def test_multi_output_latest_from_its_series_is_what_the_helper_gives():
    helpers = wrap_helpers()
    fresh = wrap_helpers()
    k = window()
    for series, latest, args in (("get_macd", "get_latest_macd", (12, 26, 9)),
                                 ("get_bollinger_bands", "get_latest_bollinger_bands", (20, 2.0)),
                                 ("get_macd", "get_latest_macd", (100, 195, 9))):  # fmt: skip
        helpers[series](k, *args)
        expected = fresh[latest](window(), *args)
        assert helpers[latest](k, *args) == expected
    assert helpers["get_latest_macd"](k, 100, 195, 9) is None  # 200 candles: not warm


def test_every_helper_returns_plain_immutable_values():
    helpers = wrap_helpers()
    assert set(helpers) == set(indicators.HELPERS)
    k = window()

    def plain(v):
        return v is None or type(v) in (float, int, bool, str) or (type(v) is tuple and all(map(plain, v)))

    for name, helper in helpers.items():
        try:
            value = helper(k)
        except IndicatorError:
            value = helper(k, 5)
        assert plain(value), name


def test_sanitize_converts_numpy_lists_and_nan():
    assert sanitize(np.float64(1.5)) == 1.5 and type(sanitize(np.float64(1.5))) is float
    assert sanitize([1.0, None, 2.0]) == (1.0, None, 2.0)
    assert sanitize(np.array([1.0, np.nan])) == (1.0, None)
    assert sanitize((1.0, float("inf"))) == (1.0, None)
    assert sanitize(((1.0,), [np.float64(2.0)])) == ((1.0,), (2.0,))
    assert type(sanitize((np.float64(1.0), 2.0))[0]) is float
    with pytest.raises(Exception, match="unsupported"):
        sanitize({"a": 1})


def test_errors_reach_filters_as_fresh_plain_errors():
    helpers = wrap_helpers()
    k = window()
    with pytest.raises(IndicatorError) as info:
        helpers["get_latest_rsi"](k, 0)
    assert isinstance(info.value, ValueError)  # the InvalidParameterError class is kept
    assert info.value.__context__ is None and info.value.__cause__ is None

    def broken(view):
        raise KeyError("internal")

    with pytest.raises(IndicatorError, match="broken: KeyError") as info:
        wrap_helpers({"broken": broken})["broken"](k)
    assert info.value.__context__ is None


def test_memory_errors_are_not_swallowed():
    def hungry(view):
        raise MemoryError

    with pytest.raises(MemoryError):
        wrap_helpers({"hungry": hungry})["hungry"](window())


def test_one_filter_cannot_fill_the_shared_cache():
    helper = wrap_helpers()["get_latest_sma"]
    k = window(n=50)
    for period in range(2, 2 + 3 * MEMO_MAX_ENTRIES):
        helper(k, period % 40 + 2 if period > 40 else period)
        helper(k[: 50 - period % 45], 2)
    assert len(k._snap.memo) <= MEMO_MAX_ENTRIES
    assert math.isclose(helper(k, 5), sum(c.close for c in k[-5:]) / 5)
