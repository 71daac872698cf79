"""Trend and trend-strength helpers: TA-Lib ones against TA-Lib called
directly, VWAP against a pure-Python loop, on real klines."""

from __future__ import annotations

import pytest
import talib
from kline_cases import DATASETS, check_against_python, check_against_talib, load, py_vwap

import indicators as ind

CASES = [
    (ind.get_latest_sma, ind.get_sma, (20,), lambda o, h, l, c, v: (talib.SMA(c, 20),)),
    (ind.get_latest_sma, ind.get_sma, (1,), lambda o, h, l, c, v: (talib.SMA(c, 1),)),
    (ind.get_latest_sma, ind.get_sma, (200,), lambda o, h, l, c, v: (talib.SMA(c, 200),)),
    (ind.get_latest_ema, ind.get_ema, (9,), lambda o, h, l, c, v: (talib.EMA(c, 9),)),
    (ind.get_latest_ema, ind.get_ema, (1,), lambda o, h, l, c, v: (talib.EMA(c, 1),)),
    (ind.get_latest_ema, ind.get_ema, (100,), lambda o, h, l, c, v: (talib.EMA(c, 100),)),
    (ind.get_latest_wma, ind.get_wma, (10,), lambda o, h, l, c, v: (talib.WMA(c, 10),)),
    (ind.get_latest_wma, ind.get_wma, (1,), lambda o, h, l, c, v: (talib.WMA(c, 1),)),
    (ind.get_latest_adx, ind.get_adx, (), lambda o, h, l, c, v: (talib.ADX(h, l, c, 14),)),
    (ind.get_latest_adx, ind.get_adx, (2,), lambda o, h, l, c, v: (talib.ADX(h, l, c, 2),)),
    (ind.get_latest_aroon, ind.get_aroon, (), lambda o, h, l, c, v: talib.AROON(h, l, 14)[::-1]),
    (ind.get_latest_aroon, ind.get_aroon, (25,), lambda o, h, l, c, v: talib.AROON(h, l, 25)[::-1]),
]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize(
    ("latest_fn", "series_fn", "args", "reference"),
    CASES,
    ids=[f"{case[0].__name__}{case[2]}" for case in CASES],
)
def test_matches_talib(dataset, latest_fn, series_fn, args, reference):
    check_against_talib(load(dataset), latest_fn, series_fn, args, reference)


@pytest.mark.parametrize("dataset", DATASETS)
def test_vwap_matches_python_loop(dataset):
    check_against_python(
        load(dataset),
        ind.get_latest_vwap,
        ind.get_vwap,
        (),
        lambda o, h, l, c, v: py_vwap(h, l, c, v),
    )


def test_vwap_is_none_until_some_volume_trades():
    rows = load("BTGUSDT-1m").rows  # its first minute has zero volume
    assert rows[0][5] == 0.0 and rows[1][5] > 0.0
    series = ind.get_vwap(rows)
    assert series[0] is None and series[1] is not None
    assert ind.get_latest_vwap(rows[:1]) is None
    assert ind.get_latest_vwap(rows[:2]) == pytest.approx(
        (rows[1][2] + rows[1][3] + rows[1][4]) / 3
    )


def test_vwap_of_zero_volume_is_none():
    rows = [[i, 10.0, 11.0, 9.0, 10.5, 0.0] for i in range(30)]
    assert ind.get_latest_vwap(rows) is None
    assert ind.get_vwap(rows) == (None,) * 30


def test_vwap_stays_within_the_price_range():
    rows = load("DOGEUSDT-1h").rows
    value = ind.get_latest_vwap(rows)
    assert min(r[3] for r in rows) <= value <= max(r[2] for r in rows)


def test_aroon_is_returned_up_then_down():
    rows = load("ETHUSDT-5m").rows
    _o, h, l, _c, _v = load("ETHUSDT-5m").arrays()
    down, up = talib.AROON(h, l, 14)
    assert ind.get_latest_aroon(rows) == (float(up[-1]), float(down[-1]))
    assert up[-1] != down[-1]
