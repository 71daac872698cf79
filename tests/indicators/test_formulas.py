"""The numpy formulas on arrays: exactness, undefined values, short inputs."""

from __future__ import annotations

import numpy as np
import pytest
from kline_cases import load, py_volume_change, py_vwap, py_window_sum

from indicators import compute


def test_rolling_sum_of_a_zero_window_is_exactly_zero():
    """A running total (TA-Lib SUM) leaves rounding residue after large
    values leave the window; summing each window does not."""
    values = np.array([0.1, 0.2, 1e8, 0.3, 0.0, 0.0, 0.0])
    sums = compute.rolling_sum(values, 3)
    assert sums[-1] == 0.0
    assert sums.tolist()[2:] == [x for x in py_window_sum(values.tolist(), 3)[2:]]


@pytest.mark.parametrize("period", [1, 2, 5, 499, 500, 501])
def test_rolling_sum_matches_python_at_every_size(period):
    volumes = load("DOGEUSDT-1h").arrays()[4]
    got = compute.rolling_sum(volumes, period)
    want = py_window_sum(volumes.tolist(), period)
    assert got.shape == volumes.shape
    for a, b in zip(got.tolist(), want, strict=True):
        assert (b is None and np.isnan(a)) or a == pytest.approx(b, rel=1e-12)


def test_volume_change_on_real_volumes_with_zero_windows():
    volumes = load("BTGUSDT-1m").arrays()[4]
    got = compute.volume_change(volumes, 2)
    want = py_volume_change(volumes.tolist(), 2)
    assert sum(1 for w in want[3:] if w is None) > 0  # BTG has undefined spots after warm-up
    for a, b in zip(got.tolist(), want, strict=True):
        assert (b is None and np.isnan(a)) or a == pytest.approx(b, rel=1e-9)


def test_vwap_on_real_data_matches_python():
    _o, h, l, c, v = load("ETHUSDT-5m").arrays()
    got = compute.vwap(h, l, c, v)
    want = py_vwap(h.tolist(), l.tolist(), c.tolist(), v.tolist())
    assert np.allclose(got, np.array(want, dtype=float), rtol=1e-10)


@pytest.mark.parametrize("size", [0, 1, 3])
def test_short_arrays_give_nan_arrays_of_the_same_length(size):
    values = np.linspace(1.0, 2.0, size)
    for result in (
        compute.rolling_sum(values, 4),
        compute.volume(values, 4),
        compute.volume_change(values, 2),
        *compute.keltner_channels(values + 1, values - 0.5, values, 5, 5, 2.0),
        *compute.donchian_channels(values + 1, values, 5),
    ):
        assert result.shape == (size,)
        assert np.isnan(result).all()


def test_all_finite_detects_nan_and_infinities_at_any_size():
    for size in (1, 500, 4096, 5000):
        values = np.linspace(1.0, 2.0, size)
        assert compute.all_finite(values)
        for bad in (np.nan, np.inf, -np.inf):
            broken = values.copy()
            broken[-1] = bad
            assert not compute.all_finite(broken)
    assert compute.all_finite(np.empty(0))
