"""Input checking: klines (rows, Binance REST strings, views, arrays) and
parameters (periods, multipliers), through the public helpers."""

from __future__ import annotations

import inspect
from collections import deque
from decimal import Decimal

import numpy as np
import pytest
from kline_cases import StoreView, load

import indicators as ind
from indicators import (
    CLOSE,
    HIGH,
    LOW,
    VOLUME,
    IndicatorError,
    InvalidKlinesError,
    InvalidParameterError,
    ParameterTypeError,
)
from indicators._input import MAX_PERIOD, check_multiplier, check_period, column, columns


def test_view_columns_are_used_as_they_are():
    view = StoreView(load("BTCUSDT-1m").table)
    assert column(view, CLOSE) is view.column(CLOSE)
    high, low, close = columns(view, (HIGH, LOW, CLOSE))
    assert high is view.column(HIGH) and low is view.column(LOW) and close is view.column(CLOSE)


def test_helpers_only_call_column_on_views():
    """StoreView has no len() or iteration: a helper that tried to convert it
    row by row would fail. It asks once per column it needs."""
    view = StoreView(load("BTCUSDT-1m").table)
    assert ind.get_latest_rsi(view) is not None
    assert view.calls == 1
    assert ind.get_latest_stochastic(view) is not None
    assert view.calls == 4


def test_read_only_view_arrays_are_left_untouched():
    """Every helper runs on read-only view columns (a write would raise) and
    leaves them unchanged."""
    view = StoreView(load("ETHUSDT-5m").table)
    before = [view.column(i).copy() for i in range(6)]
    for helper in ind.HELPERS.values():
        helper(view, *(5,) * len(_required(helper)))
    for i in range(6):
        assert np.array_equal(view.column(i), before[i])


def _required(helper):
    return [
        p
        for p in list(inspect.signature(helper).parameters.values())[1:]
        if p.default is inspect.Parameter.empty
    ]


def test_rows_as_lists_tuples_strings_decimals_and_arrays_agree():
    data = load("DOGEUSDT-1h")
    want = ind.get_rsi(data.rows)
    assert ind.get_rsi(data.forms()["rest"]) == want
    assert ind.get_rsi(data.forms()["tuples"]) == want
    assert ind.get_rsi(data.table) == want
    assert ind.get_rsi(deque(data.rows)) == want
    assert ind.get_rsi([[int(r[0]), *map(Decimal, r[1:])] for r in data.text_rows]) == want
    assert ind.get_rsi([np.array(r) for r in data.rows]) == want


def test_extra_binance_columns_are_ignored():
    data = load("BTCUSDT-1m")
    assert ind.get_latest_obv(data.forms()["rest"]) == ind.get_latest_obv(data.rows)


def test_empty_inputs_give_none_and_empty_series():
    for empty in ([], (), np.empty((0, 6)), np.empty(0), StoreView(np.empty((0, 6)))):
        assert ind.get_latest_rsi(empty) is None
        assert ind.get_rsi(empty) == ()
        assert ind.get_latest_macd(empty) is None
        assert ind.get_macd(empty) == ((), (), ())


@pytest.mark.parametrize(
    ("klines", "message"),
    [
        (5, "must be a sequence of candle rows"),
        (None, "must be a sequence of candle rows"),
        ("58000,58100,57900,58050", "must be a sequence of candle rows"),
        ({"close": [1.0]}, "must be a sequence of candle rows"),
        ([58000.0, 58100.0], r"kline row 0 must be a list or tuple"),
        (["1620000000000,1,2,0.5,1.5,10"], r"kline row 0 must be a list or tuple"),
        (
            [[0, 1, 2, 0.5, 1.5, 10], [0, 1, 2, 0.5, 1.5]],
            r"kline row 1 has 5 columns; need at least 6",
        ),
        ([[0, 1, 2, 0.5, "abc", 10]], r"kline row 0 close must be a finite number, got 'abc'"),
        (
            [[0, 1, 2, 0.5, 1.5, 10], [0, 1, 2, 0.5, None, 10]],
            r"kline row 1 close must be a finite number",
        ),
        (
            [[0, 1, 2, 0.5, 1.5, 10], [0, 1, 2, 0.5, "nan", 10]],
            r"kline row 1 close must be a finite number",
        ),
        ([[0, 1, 2, 0.5, float("inf"), 10]], r"kline row 0 close must be a finite number"),
        ([[0, 1, 2, 0.5, [1.5], 10]], r"kline row 0 close must be a finite number"),
        (np.ones((3, 4)), r"shape \(n, >= 6\)"),
        (np.array([[0, 1, 2, 0.5, np.nan, 10.0]]), r"kline row 0 close must be a finite number"),
    ],
)
def test_malformed_klines_are_refused(klines, message):
    with pytest.raises(InvalidKlinesError, match=message):
        ind.get_latest_rsi(klines)
    with pytest.raises(IndicatorError):
        ind.get_closes(klines)


class _BadView:
    def __init__(self, result):
        self.result = result

    def column(self, index):
        return self.result(index)


@pytest.mark.parametrize(
    ("column_result", "message"),
    [
        (lambda i: [1.0, 2.0], "must return a 1-D float64 numpy array, got list"),
        (lambda i: np.ones(3, dtype=np.float32), "float32"),
        (lambda i: np.ones((3, 2)), r"shape=\(3, 2\)"),
        (lambda i: np.ones(3 + i), r"has \d values, other columns have \d"),
    ],
)
def test_views_returning_bad_arrays_are_refused(column_result, message):
    with pytest.raises(InvalidKlinesError, match=message):
        ind.get_latest_atr(_BadView(column_result))


def test_view_with_non_callable_column_is_refused():
    class NotAView:
        column = 3

    with pytest.raises(InvalidKlinesError):
        ind.get_latest_rsi(NotAView())
    with pytest.raises(InvalidKlinesError):
        ind.get_latest_atr(NotAView())


def test_non_finite_view_values_surface_as_none_never_nan():
    table = load("BTCUSDT-1m").table.copy()
    table[-1, CLOSE] = np.nan
    view = StoreView(table)
    assert ind.get_latest_rsi(view) is None
    assert ind.get_latest_macd(view) is None
    assert ind.get_rsi(view)[-1] is None
    assert ind.get_closes(view)[-1] is None
    table[:, VOLUME] = np.inf
    assert ind.get_latest_vwap(StoreView(table)) is None


# ------------------------------------------------------------ parameters

PERIOD_NAMES = (
    "period",
    "periods",
    "fast_period",
    "slow_period",
    "signal_period",
    "k_period",
    "d_period",
    "smooth_k",
    "atr_period",
)


def _period_parameters():
    """(helper name, parameter name) for every integer parameter of every helper."""
    for name, helper in sorted(ind.HELPERS.items()):
        for parameter in list(inspect.signature(helper).parameters.values())[1:]:
            if parameter.name in PERIOD_NAMES:
                yield name, parameter.name


def _call(name, parameter, value, klines):
    helper = ind.HELPERS[name]
    kwargs = {
        p.name: 5
        for p in list(inspect.signature(helper).parameters.values())[1:]
        if p.default is inspect.Parameter.empty
    }
    if name.endswith("macd"):
        kwargs.update(fast_period=3, slow_period=10)
    kwargs[parameter] = value
    return helper(klines, **kwargs)


PERIOD_PARAMETERS = list(_period_parameters())


def test_every_helper_with_a_period_is_covered():
    without = {
        "get_latest_vwap",
        "get_vwap",
        "get_latest_obv",
        "get_obv",
        "get_closes",
        "get_opens",
        "get_highs",
        "get_lows",
        "get_volumes",
    }
    assert {name for name, _ in PERIOD_PARAMETERS} == set(ind.HELPERS) - without


@pytest.mark.parametrize(("name", "parameter"), PERIOD_PARAMETERS)
@pytest.mark.parametrize("value", [14.0, True, False, "14", None, [14], 1e3])
def test_non_int_periods_are_type_errors(name, parameter, value):
    with pytest.raises(ParameterTypeError, match=f"{parameter} must be an int") as info:
        _call(name, parameter, value, [])
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(("name", "parameter"), PERIOD_PARAMETERS)
@pytest.mark.parametrize("value", [0, -1, MAX_PERIOD + 1])
def test_out_of_range_periods_are_value_errors(name, parameter, value):
    """Refused even with too few candles (validation comes first)."""
    with pytest.raises(InvalidParameterError, match=f"{parameter} must be an int in") as info:
        _call(name, parameter, value, [])
    assert isinstance(info.value, ValueError)
    assert str(value) in str(info.value)


def test_message_names_the_indicator():
    with pytest.raises(
        InvalidParameterError, match=r"^rsi: period must be an int in 2\.\.100000 candles, got 1$"
    ):
        ind.get_latest_rsi(load("BTCUSDT-1m").rows, 1)


def test_numpy_integers_are_accepted_as_periods():
    rows = load("BTCUSDT-1m").rows
    assert ind.get_latest_rsi(rows, np.int64(14)) == ind.get_latest_rsi(rows, 14)
    assert check_period(np.int32(7), "x", "period", 1) == 7
    assert type(check_period(np.int32(7), "x", "period", 1)) is int


def test_the_largest_period_is_accepted():
    assert ind.get_latest_sma(load("BTCUSDT-1m").rows, MAX_PERIOD) is None


def test_multiplier_accepts_ints_floats_and_numpy_floats():
    assert check_multiplier(2, "x", "m") == 2.0
    assert type(check_multiplier(np.float32(1.5), "x", "m")) is float
    assert check_multiplier(0, "x", "m") == 0.0


@pytest.mark.parametrize("value", [True, "2", b"2", None, 2j, object()])
def test_multiplier_refuses_non_numbers(value):
    with pytest.raises(ParameterTypeError):
        check_multiplier(value, "keltner_channels", "multiplier")


def test_error_hierarchy_has_one_root():
    assert issubclass(InvalidParameterError, IndicatorError) and issubclass(
        InvalidParameterError, ValueError
    )
    assert issubclass(ParameterTypeError, IndicatorError) and issubclass(
        ParameterTypeError, TypeError
    )
    assert issubclass(ind.InvalidKlinesError, IndicatorError) and issubclass(
        ind.InvalidKlinesError, ValueError
    )
    assert IndicatorError.__bases__ == (Exception,)
