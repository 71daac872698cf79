"""Price-action helpers against TA-Lib called directly (and plain Python
where TA-Lib refuses the period), and the column getters, on real klines."""

from __future__ import annotations

import pytest
import talib
from kline_cases import (
    DATASETS,
    StoreView,
    check_against_python,
    check_against_talib,
    load,
    py_extreme,
)

import indicators as ind

CASES = [
    (ind.get_price_change, (1,), lambda o, h, l, c, v: (talib.MOM(c, 1),)),
    (ind.get_price_change, (60,), lambda o, h, l, c, v: (talib.MOM(c, 60),)),
    (ind.get_price_change_percent, (1,), lambda o, h, l, c, v: (talib.ROC(c, 1),)),
    (ind.get_price_change_percent, (24,), lambda o, h, l, c, v: (talib.ROC(c, 24),)),
    (ind.get_highest_high, (2,), lambda o, h, l, c, v: (talib.MAX(h, 2),)),
    (ind.get_highest_high, (100,), lambda o, h, l, c, v: (talib.MAX(h, 100),)),
    (ind.get_lowest_low, (2,), lambda o, h, l, c, v: (talib.MIN(l, 2),)),
    (ind.get_lowest_low, (100,), lambda o, h, l, c, v: (talib.MIN(l, 100),)),
]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize(
    ("helper", "args", "reference"), CASES, ids=[f"{c[0].__name__}{c[1]}" for c in CASES]
)
def test_matches_talib(dataset, helper, args, reference):
    check_against_talib(load(dataset), helper, None, args, reference)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("periods", [1, 7])
def test_extremes_match_python_loop(dataset, periods):
    data = load(dataset)
    check_against_python(
        data,
        ind.get_highest_high,
        None,
        (periods,),
        lambda o, h, l, c, v: py_extreme(h, periods, max),
    )
    check_against_python(
        data,
        ind.get_lowest_low,
        None,
        (periods,),
        lambda o, h, l, c, v: py_extreme(l, periods, min),
    )


def test_price_change_is_close_minus_earlier_close():
    rows = load("ETHUSDT-5m").rows
    assert ind.get_price_change(rows, 12) == pytest.approx(rows[-1][4] - rows[-13][4], rel=1e-12)
    assert ind.get_price_change_percent(rows, 12) == pytest.approx(
        (rows[-1][4] / rows[-13][4] - 1) * 100, rel=1e-9
    )
    assert ind.get_price_change_percent(rows, 10) == ind.get_latest_roc(rows, 10)


@pytest.mark.parametrize("dataset", DATASETS)
def test_getters_return_the_columns(dataset):
    data = load(dataset)
    for form_name, klines in data.forms().items():
        got = (
            ind.get_opens(klines),
            ind.get_highs(klines),
            ind.get_lows(klines),
            ind.get_closes(klines),
            ind.get_volumes(klines),
        )
        for index, values in enumerate(got, start=1):
            assert type(values) is tuple, form_name
            assert all(type(x) is float for x in values), form_name
            assert values == tuple(float(r[index]) for r in data.text_rows), (form_name, index)


def test_getters_of_no_candles_are_empty():
    for getter in (ind.get_opens, ind.get_highs, ind.get_lows, ind.get_closes, ind.get_volumes):
        assert getter([]) == ()
        assert getter(StoreView(load("BTCUSDT-1m").table[:0])) == ()
