"""Volatility helpers: Bollinger Bands and ATR against TA-Lib called
directly, Keltner and Donchian against pure-Python loops, on real klines."""

from __future__ import annotations

import pytest
import talib
from kline_cases import (
    DATASETS,
    check_against_python,
    check_against_talib,
    load,
    py_atr,
    py_donchian,
    py_ema,
    py_keltner,
)

import indicators as ind
from indicators import InvalidParameterError, ParameterTypeError

SMA = talib.MA_Type.SMA

CASES = [
    (
        ind.get_latest_bollinger_bands,
        ind.get_bollinger_bands,
        (),
        lambda o, h, l, c, v: talib.BBANDS(c, 20, 2.0, 2.0, SMA),
    ),
    (
        ind.get_latest_bollinger_bands,
        ind.get_bollinger_bands,
        (10, 1.5),
        lambda o, h, l, c, v: talib.BBANDS(c, 10, 1.5, 1.5, SMA),
    ),
    (
        ind.get_latest_bollinger_bands,
        ind.get_bollinger_bands,
        (2, 3),
        lambda o, h, l, c, v: talib.BBANDS(c, 2, 3.0, 3.0, SMA),
    ),
    (ind.get_latest_atr, ind.get_atr, (), lambda o, h, l, c, v: (talib.ATR(h, l, c, 14),)),
    (ind.get_latest_atr, ind.get_atr, (1,), lambda o, h, l, c, v: (talib.ATR(h, l, c, 1),)),
    (ind.get_latest_atr, ind.get_atr, (50,), lambda o, h, l, c, v: (talib.ATR(h, l, c, 50),)),
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
@pytest.mark.parametrize("args", [(), (10, 14, 1.5), (1, 1, 0.0), (5, 30, 3)])
def test_keltner_matches_python_loop(dataset, args):
    period, atr_period, multiplier = args + (20, 10, 2.0)[len(args) :]
    check_against_python(
        load(dataset),
        ind.get_latest_keltner_channels,
        ind.get_keltner_channels,
        args,
        lambda o, h, l, c, v: py_keltner(h, l, c, period, atr_period, multiplier),
    )


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("period", [20, 1, 55])
def test_donchian_matches_python_loop(dataset, period):
    check_against_python(
        load(dataset),
        ind.get_latest_donchian_channels,
        ind.get_donchian_channels,
        (period,),
        lambda o, h, l, c, v: py_donchian(h, l, period),
    )


def test_python_references_agree_with_talib():
    """The pure-Python EMA/ATR used for Keltner are themselves TA-Lib's
    definitions (guards the reference, not the code under test)."""
    _o, h, l, c, _v = load("ETHUSDT-5m").arrays()
    for got, want in (
        (py_ema(c.tolist(), 20), talib.EMA(c, 20)),
        (py_atr(h.tolist(), l.tolist(), c.tolist(), 10), talib.ATR(h, l, c, 10)),
    ):
        for a, b in zip(got, want.tolist(), strict=True):
            assert (a is None) == (b != b)
            assert a is None or a == pytest.approx(b, rel=1e-9)


def test_keltner_is_none_until_both_ema_and_atr_exist():
    rows = load("BTCUSDT-1m").rows
    # EMA(5) exists from candle 5, ATR(30) from candle 31
    assert ind.get_latest_keltner_channels(rows[:30], 5, 30) is None
    upper, middle, lower = ind.get_latest_keltner_channels(rows[:31], 5, 30)
    assert upper > middle > lower
    series = ind.get_keltner_channels(rows[:40], 5, 30)
    assert all(s[:30] == (None,) * 30 for s in series)
    assert all(value is not None for s in series for value in s[30:])


def test_bands_are_ordered():
    rows = load("DOGEUSDT-1h").rows
    for helper in (
        ind.get_latest_bollinger_bands,
        ind.get_latest_keltner_channels,
        ind.get_latest_donchian_channels,
    ):
        upper, middle, lower = helper(rows)
        assert upper > middle > lower


def test_zero_width_bands_collapse_on_the_middle():
    rows = load("BTCUSDT-1m").rows
    upper, middle, lower = ind.get_latest_bollinger_bands(rows, 20, 0)
    assert upper == middle == lower
    upper, middle, lower = ind.get_latest_keltner_channels(rows, 20, 10, 0.0)
    assert upper == middle == lower


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_band_widths_are_refused(bad):
    with pytest.raises(InvalidParameterError, match="std_dev"):
        ind.get_latest_bollinger_bands([], 20, bad)
    with pytest.raises(InvalidParameterError, match="multiplier"):
        ind.get_keltner_channels([], 20, 10, bad)


@pytest.mark.parametrize("bad", ["2", True, None, [2.0]])
def test_non_numeric_band_widths_are_refused(bad):
    with pytest.raises(ParameterTypeError, match="std_dev must be a number"):
        ind.get_latest_bollinger_bands(load("BTCUSDT-1m").rows, 20, bad)
