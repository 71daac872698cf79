"""The array API every helper and a caching layer share."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import talib
from kline_cases import load

from indicators import INDICATORS, compute


@pytest.mark.parametrize("spec", INDICATORS.values(), ids=list(INDICATORS))
def test_compute_leaves_inputs_alone_and_returns_aligned_float64(spec):
    table = load("ETHUSDT-5m").table.copy()
    columns = [np.ascontiguousarray(table[:, i]) for i in spec.columns]
    for values in columns:
        values.flags.writeable = False  # would raise if written to
    required = [p for p in inspect.signature(spec.bind).parameters.values() if p.default is p.empty]
    params = spec.bind(*([5] * len(required)))
    result = spec.compute_arrays(columns, params)
    assert len(result) == len(spec.outputs)
    for values in result:
        assert values.dtype == np.float64 and values.shape == (table.shape[0],)
        assert not any(values is c for c in columns)
    assert np.array_equal(table, load("ETHUSDT-5m").table)


def test_compute_exports_one_function_per_indicator():
    for name, spec in INDICATORS.items():
        assert getattr(compute, name) is spec.compute


def test_multi_output_order():
    _o, h, l, c, _v = load("BTCUSDT-1m").arrays()
    upper, middle, lower = compute.bollinger_bands(c, 20, 2.0)
    assert upper[-1] > middle[-1] > lower[-1]
    up, down = compute.aroon(h, l, 14)
    talib_down, talib_up = talib.AROON(h, l, 14)
    assert np.array_equal(up[14:], talib_up[14:]) and np.array_equal(down[14:], talib_down[14:])
    k, d = compute.stochastic(h, l, c, 14, 3, 1)
    assert np.allclose(d[20:], talib.SMA(k, 3)[20:])
    line, signal, histogram = compute.macd(c, 12, 26, 9)
    assert np.allclose(histogram[40:], line[40:] - signal[40:])
    assert np.array_equal(compute.highest_high(h, 1), h)
    assert np.array_equal(compute.lowest_low(l, 1), l)
