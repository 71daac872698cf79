"""IndicatorSpec presentation: array -> plain Python, the None rule and plain types."""

from __future__ import annotations

import math

import numpy as np

from indicators._spec import latest, latest_tuple, series, series_tuple

NAN = math.nan


def test_latest_is_a_plain_float_or_none():
    value = latest(np.array([1.0, 2.5]))
    assert value == 2.5 and type(value) is float
    assert latest(np.array([1.0, NAN])) is None
    assert latest(np.array([1.0, np.inf])) is None
    assert latest(np.array([])) is None


def test_latest_tuple_is_all_or_nothing():
    assert latest_tuple((np.array([1.0, 3.0]), np.array([2.0, 4.0]))) == (3.0, 4.0)
    assert latest_tuple((np.array([1.0, 3.0]), np.array([2.0, NAN]))) is None
    assert latest_tuple((np.array([]), np.array([]))) is None
    assert all(type(x) is float for x in latest_tuple((np.array([1.0]), np.array([2.0]))))


def test_series_replaces_non_finite_values_with_none():
    got = series(np.array([NAN, NAN, 1.0, np.inf, 2.0, -np.inf]))
    assert got == (None, None, 1.0, None, 2.0, None)
    assert type(got) is tuple and all(type(x) is float for x in got if x is not None)
    assert series(np.array([])) == ()


def test_series_tuple_aligns_none_across_outputs():
    got = series_tuple((np.array([NAN, 1.0, 2.0, 3.0]), np.array([NAN, NAN, 5.0, NAN])))
    assert got == ((None, None, 2.0, None), (None, None, 5.0, None))
    assert series_tuple((np.array([1.0]), np.array([2.0]))) == ((1.0,), (2.0,))
