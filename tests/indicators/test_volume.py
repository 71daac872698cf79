"""Volume helpers: OBV and volume MA against TA-Lib called directly, volume
over a period and volume change against pure-Python loops, on real klines."""

from __future__ import annotations

import pytest
import talib
from kline_cases import (
    DATASETS,
    check_against_python,
    check_against_talib,
    load,
    py_volume_change,
    py_window_sum,
)

import indicators as ind

CASES = [
    (ind.get_latest_obv, ind.get_obv, (), lambda o, h, l, c, v: (talib.OBV(c, v),)),
    (ind.get_latest_volume_ma, ind.get_volume_ma, (), lambda o, h, l, c, v: (talib.SMA(v, 20),)),
    (ind.get_latest_volume_ma, ind.get_volume_ma, (1,), lambda o, h, l, c, v: (talib.SMA(v, 1),)),
    (ind.get_latest_volume_ma, ind.get_volume_ma, (96,), lambda o, h, l, c, v: (talib.SMA(v, 96),)),
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
@pytest.mark.parametrize("period", [1, 3, 24, 200])
def test_volume_matches_python_loop(dataset, period):
    check_against_python(
        load(dataset),
        ind.get_latest_volume,
        ind.get_volume,
        (period,),
        lambda o, h, l, c, v: py_window_sum(v, period),
    )


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("period", [1, 2, 12, 100])
def test_volume_change_matches_python_loop(dataset, period):
    check_against_python(
        load(dataset),
        ind.get_latest_volume_change,
        ind.get_volume_change,
        (period,),
        lambda o, h, l, c, v: py_volume_change(v, period),
    )


def test_default_volume_is_the_latest_candles_volume():
    rows = load("ETHUSDT-5m").rows
    assert ind.get_latest_volume(rows) == rows[-1][5]
    assert ind.get_volume(rows) == ind.get_volumes(rows)


def test_volume_change_is_none_after_a_zero_volume_window():
    """BTGUSDT has zero-volume minutes: the change against them is undefined,
    and a window of zeros sums to exactly 0 (no running-total drift)."""
    rows = load("BTGUSDT-1m").rows
    volumes = [r[5] for r in rows]
    zero = next(
        i
        for i in range(1, len(volumes) - 1)
        if volumes[i - 1] > 0.0 and volumes[i] == 0.0 and volumes[i + 1] > 0.0
    )
    assert ind.get_volume(rows, 1)[zero] == 0.0
    assert ind.get_volume_change(rows, 1)[zero + 1] is None
    assert ind.get_latest_volume_change(rows[: zero + 2], 1) is None
    assert ind.get_latest_volume_change(rows[: zero + 1], 1) == -100.0


def test_volume_change_compares_consecutive_windows():
    rows = [[i, 1.0, 1.0, 1.0, 1.0, float(v)] for i, v in enumerate([1, 2, 3, 4, 5, 10])]
    assert ind.get_latest_volume_change(rows, 1) == pytest.approx(100.0)  # 10 vs 5
    assert ind.get_latest_volume_change(rows, 2) == pytest.approx((15 / 7 - 1) * 100)  # 5+10 vs 3+4
    assert ind.get_latest_volume_change(rows, 3) == pytest.approx((19 / 6 - 1) * 100)
    assert ind.get_latest_volume_change(rows, 4) is None  # needs 8 candles
