"""Momentum helpers against TA-Lib called directly, on real klines."""

from __future__ import annotations

import math

import pytest
import talib
from kline_cases import DATASETS, check_against_talib, load

import indicators as ind
from indicators import InvalidParameterError

SMA = talib.MA_Type.SMA

CASES = [
    (ind.get_latest_rsi, ind.get_rsi, (), lambda o, h, l, c, v: (talib.RSI(c, 14),)),
    (ind.get_latest_rsi, ind.get_rsi, (2,), lambda o, h, l, c, v: (talib.RSI(c, 2),)),
    (ind.get_latest_rsi, ind.get_rsi, (50,), lambda o, h, l, c, v: (talib.RSI(c, 50),)),
    (ind.get_latest_macd, ind.get_macd, (), lambda o, h, l, c, v: talib.MACD(c, 12, 26, 9)),
    (ind.get_latest_macd, ind.get_macd, (5, 35, 5), lambda o, h, l, c, v: talib.MACD(c, 5, 35, 5)),
    (ind.get_latest_macd, ind.get_macd, (2, 3, 1), lambda o, h, l, c, v: talib.MACD(c, 2, 3, 1)),
    (
        ind.get_latest_stochastic,
        ind.get_stochastic,
        (),
        lambda o, h, l, c, v: talib.STOCH(h, l, c, 14, 1, SMA, 3, SMA),
    ),
    (
        ind.get_latest_stochastic,
        ind.get_stochastic,
        (14, 3, 3),
        lambda o, h, l, c, v: talib.STOCH(h, l, c, 14, 3, SMA, 3, SMA),
    ),
    (
        ind.get_latest_stochastic,
        ind.get_stochastic,
        (5, 1, 1),
        lambda o, h, l, c, v: talib.STOCH(h, l, c, 5, 1, SMA, 1, SMA),
    ),
    (ind.get_latest_cci, ind.get_cci, (), lambda o, h, l, c, v: (talib.CCI(h, l, c, 20),)),
    (ind.get_latest_cci, ind.get_cci, (2,), lambda o, h, l, c, v: (talib.CCI(h, l, c, 2),)),
    (
        ind.get_latest_williams_r,
        ind.get_williams_r,
        (),
        lambda o, h, l, c, v: (talib.WILLR(h, l, c, 14),),
    ),
    (
        ind.get_latest_williams_r,
        ind.get_williams_r,
        (30,),
        lambda o, h, l, c, v: (talib.WILLR(h, l, c, 30),),
    ),
    (ind.get_latest_roc, ind.get_roc, (), lambda o, h, l, c, v: (talib.ROC(c, 10),)),
    (ind.get_latest_roc, ind.get_roc, (1,), lambda o, h, l, c, v: (talib.ROC(c, 1),)),
]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize(
    ("latest_fn", "series_fn", "args", "reference"),
    CASES,
    ids=[f"{case[0].__name__}{case[2]}" for case in CASES],
)
def test_matches_talib(dataset, latest_fn, series_fn, args, reference):
    check_against_talib(load(dataset), latest_fn, series_fn, args, reference)


def test_stochastic_default_is_fast_stochastic():
    """smooth_k=1 is Lane's fast stochastic: TA-Lib STOCHF gives the same %K/%D."""
    _o, h, l, c, _v = load("ETHUSDT-5m").arrays()
    fast_k, fast_d = talib.STOCHF(h, l, c, 14, 3, SMA)
    k, d = ind.get_stochastic(load("ETHUSDT-5m").rows)
    for got, want in ((k, fast_k), (d, fast_d)):
        for a, b in zip(got, want.tolist(), strict=True):
            assert (a is None and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def test_macd_histogram_is_line_minus_signal():
    line, signal, histogram = ind.get_latest_macd(load("BTCUSDT-1m").rows)
    assert math.isclose(histogram, line - signal, rel_tol=1e-9, abs_tol=1e-12)


def test_macd_refuses_fast_not_below_slow():
    with pytest.raises(InvalidParameterError, match="fast_period must be less than slow_period"):
        ind.get_latest_macd(load("BTCUSDT-1m").rows, 26, 12)
    with pytest.raises(InvalidParameterError):
        ind.get_macd([], 20, 20)


@pytest.mark.parametrize(
    ("helper", "args"),
    [
        (ind.get_latest_rsi, (1,)),
        (ind.get_latest_cci, (1,)),
        (ind.get_latest_williams_r, (1,)),
        (ind.get_latest_macd, (1, 26, 9)),
        (ind.get_latest_macd, (12, 26, 0)),
        (ind.get_latest_stochastic, (14, 0)),
        (ind.get_latest_roc, (0,)),
    ],
)
def test_periods_below_talib_range_are_refused(helper, args):
    with pytest.raises(InvalidParameterError, match=r"\.\.100000"):
        helper(load("BTCUSDT-1m").rows, *args)


def test_rsi_depends_on_the_whole_window():
    """Wilder smoothing: dropping old candles changes the latest RSI slightly,
    which is why a window change means a full recompute."""
    rows = load("BTCUSDT-1m").rows
    assert ind.get_latest_rsi(rows) != ind.get_latest_rsi(rows[100:])
