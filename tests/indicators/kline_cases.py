"""Shared test material for the indicator tests.

Real Binance klines from ../shared/data/binance (read in place, never
copied), the input forms a helper accepts (float rows, Binance REST string
rows, tuples, a store-like view, a 2-D array), and independent pure-Python
reference implementations of the numpy-based indicators.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import math
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance"

# name -> (file under DATA_DIR, first row, row count)
SOURCES: dict[str, tuple[str, int, int]] = {
    "BTCUSDT-1m": ("spot/1m/BTCUSDT/BTCUSDT-1m-2021-05-03.csv.gz", 900, 500),
    # starts with a zero-volume minute and has runs of up to 3 of them
    "BTGUSDT-1m": ("spot/1m/BTGUSDT/BTGUSDT-1m-2021-05-03.csv.gz", 0, 500),
    "ETHUSDT-5m": ("spot/5m/ETHUSDT-5m-2021-01-01_2021-04-01.csv.gz", 10_000, 500),
    # sub-cent prices, volumes around 1e9
    "DOGEUSDT-1h": ("spot/1h/DOGEUSDT-1h-2019-07-05_2021-07-03.csv.gz", 13_000, 500),
    "ADAUSDT-1h": ("spot/1h/ADAUSDT-1h-2018-04-17_2021-07-03.csv.gz", 20_000, 400),
}
DATASETS = tuple(SOURCES)


class StoreView:
    """A store-like view: only ``column(index)``, no ``len`` or iteration, so a
    helper can only use the fast path. Columns are read-only float64 arrays."""

    def __init__(self, table: np.ndarray) -> None:
        self._columns = []
        for index in range(table.shape[1]):
            values = np.ascontiguousarray(table[:, index], dtype=np.float64)
            values.flags.writeable = False
            self._columns.append(values)
        self.calls = 0

    def column(self, index: int) -> np.ndarray:
        self.calls += 1
        return self._columns[index]


@dataclass(frozen=True)
class Dataset:
    name: str
    text_rows: tuple[tuple[str, ...], ...]  # the file's text, 6 columns

    @cached_property
    def rows(self) -> list[list[float]]:
        return [[int(r[0]), *(float(x) for x in r[1:])] for r in self.text_rows]

    @cached_property
    def table(self) -> np.ndarray:
        return np.array(self.rows, dtype=np.float64)

    def arrays(self, count: int | None = None) -> tuple[np.ndarray, ...]:
        """(open, high, low, close, volume) float64 arrays of the first ``count`` rows."""
        table = self.table[:count]
        return tuple(np.ascontiguousarray(table[:, i]) for i in range(1, 6))

    def forms(self, count: int | None = None) -> dict[str, Any]:
        """Every accepted input form of the first ``count`` candles."""
        text = self.text_rows[:count]
        rows = self.rows[:count]
        rest = []
        for r in text:  # Binance REST: 12 columns, numbers as strings
            open_time = int(r[0])
            rest.append(
                [
                    open_time,
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    open_time + 59_999,
                    "1.0",
                    7,
                    "0.5",
                    "0.5",
                    "0",
                ]
            )
        return {
            "rows": rows,
            "tuples": tuple(tuple(r) for r in rows),
            "rest": rest,
            "view": StoreView(self.table[:count].reshape(-1, 6)),
            "array": self.table[:count].reshape(-1, 6),
        }


@cache
def load(name: str) -> Dataset:
    path, start, count = SOURCES[name]
    with gzip.open(DATA_DIR / path, "rt", newline="") as handle:
        rows = tuple(
            tuple(row) for row in itertools.islice(csv.reader(handle), start, start + count)
        )
    assert len(rows) == count, f"{path} has fewer than {start + count} rows"
    return Dataset(name, rows)


# ---------------------------------------------------------------- comparison


def nan_to_none(values: np.ndarray) -> tuple[float | None, ...]:
    return tuple(None if not math.isfinite(x) else float(x) for x in values.tolist())


def expected_latest(arrays: tuple[np.ndarray, ...]) -> Any:
    if len(arrays[0]) == 0:
        return None
    last = [float(a[-1]) for a in arrays]
    if not all(math.isfinite(x) for x in last):
        return None
    return last[0] if len(arrays) == 1 else tuple(last)


def expected_series(arrays: tuple[np.ndarray, ...]) -> Any:
    if len(arrays) == 1:
        return nan_to_none(arrays[0])
    bad = np.zeros(len(arrays[0]), dtype=bool)
    for a in arrays:
        bad |= ~np.isfinite(a)
    return tuple(nan_to_none(np.where(bad, np.nan, a)) for a in arrays)


def close_enough(actual: Any, expected: Any, rel: float = 1e-9) -> bool:
    """Structural comparison: same None positions, floats within ``rel`` of
    the larger magnitude in the compared sequence."""
    if expected is None or actual is None:
        return actual is None and expected is None
    if isinstance(expected, (tuple, list)):
        if not isinstance(actual, tuple) or len(actual) != len(expected):
            return False
        if expected and isinstance(expected[0], (tuple, list)):
            return all(close_enough(a, e, rel) for a, e in zip(actual, expected, strict=True))
        scale = max((abs(e) for e in expected if e is not None), default=1.0)
        return all(
            (a is None and e is None)
            or (
                a is not None
                and e is not None
                and math.isclose(a, e, rel_tol=rel, abs_tol=rel * scale)
            )
            for a, e in zip(actual, expected, strict=True)
        )
    return type(actual) is float and math.isclose(
        actual, expected, rel_tol=rel, abs_tol=rel * abs(expected)
    )


def assert_plain(result: Any) -> None:
    """Only built-in float, tuple and None, never NaN or infinity."""
    if result is None:
        return
    if isinstance(result, tuple):
        assert type(result) is tuple
        for item in result:
            assert_plain(item)
        return
    assert type(result) is float, f"{type(result)!r} is not float"
    assert math.isfinite(result)


# ------------------------------------------------ pure-Python references


def py_ema(values: list[float], period: int) -> list[float | None]:
    """EMA seeded with the SMA of the first ``period`` values (TA-Lib's classic mode)."""
    out: list[float | None] = [None] * len(values)
    if len(values) < period:
        return out
    previous = sum(values[:period]) / period
    out[period - 1] = previous
    k = 2.0 / (period + 1)
    for i in range(period, len(values)):
        previous = (values[i] - previous) * k + previous
        out[i] = previous
    return out


def py_atr(
    high: list[float], low: list[float], close: list[float], period: int
) -> list[float | None]:
    """Wilder's ATR: first value the mean of the first ``period`` true ranges."""
    n = len(close)
    out: list[float | None] = [None] * n
    if n < period + 1:
        return out
    true_range = [0.0] + [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        for i in range(1, n)
    ]
    if period == 1:
        return [None, *true_range[1:]]
    value = sum(true_range[1 : period + 1]) / period
    out[period] = value
    for i in range(period + 1, n):
        value = (value * (period - 1) + true_range[i]) / period
        out[i] = value
    return out


def py_vwap(high, low, close, volume) -> list[float | None]:
    out: list[float | None] = []
    value_total = volume_total = 0.0
    for h, l, c, v in zip(high, low, close, volume, strict=True):
        value_total += (h + l + c) / 3.0 * v
        volume_total += v
        out.append(value_total / volume_total if volume_total > 0 else None)
    return out


def py_window_sum(values: list[float], period: int) -> list[float | None]:
    out: list[float | None] = []
    for i in range(len(values)):
        if i + 1 < period:
            out.append(None)
        else:
            total = 0.0
            for j in range(i - period + 1, i + 1):
                total += values[j]
            out.append(total)
    return out


def py_volume_change(volume: list[float], period: int) -> list[float | None]:
    sums = py_window_sum(volume, period)
    out: list[float | None] = []
    for i in range(len(volume)):
        current = sums[i]
        earlier = sums[i - period] if i - period >= 0 else None
        if earlier is None or current is None or earlier <= 0:
            out.append(None)
        else:
            out.append((current / earlier - 1.0) * 100.0)
    return out


def py_extreme(values: list[float], period: int, pick) -> list[float | None]:
    return [
        None if i + 1 < period else pick(values[i - period + 1 : i + 1]) for i in range(len(values))
    ]


def py_donchian(high, low, period):
    upper = py_extreme(high, period, max)
    lower = py_extreme(low, period, min)
    middle = [None if u is None else (u + l) / 2.0 for u, l in zip(upper, lower, strict=True)]
    return upper, middle, lower


def py_keltner(high, low, close, period, atr_period, multiplier):
    middle = py_ema(close, period)
    atr = py_atr(high, low, close, atr_period)
    upper, mid, lower = [], [], []
    for m, a in zip(middle, atr, strict=True):
        if m is None or a is None:
            upper.append(None), mid.append(None), lower.append(None)
        else:
            upper.append(m + multiplier * a), mid.append(m), lower.append(m - multiplier * a)
    return upper, mid, lower


# ------------------------------------------------------------- checkers


def check_against_talib(dataset: Dataset, latest_fn, series_fn, args: tuple, reference) -> None:
    """``reference(open, high, low, close, volume)`` calls TA-Lib directly and
    returns a tuple of arrays in the helper's output order; every input form
    must give exactly the same values (None where TA-Lib gives NaN)."""
    expected = reference(*dataset.arrays())
    want_series = expected_series(expected)
    want_latest = expected_latest(expected)
    assert want_latest is not None
    for form_name, klines in dataset.forms().items():
        got_series = series_fn(klines, *args) if series_fn else None
        got_latest = latest_fn(klines, *args)
        if series_fn:
            assert got_series == want_series, (form_name, series_fn.__name__, args)
        assert got_latest == want_latest, (form_name, latest_fn.__name__, args)
        assert_plain(got_latest)


def check_against_python(dataset: Dataset, latest_fn, series_fn, args: tuple, reference) -> None:
    """``reference(open, high, low, close, volume)`` is a pure-Python loop over
    lists returning a list (or tuple of lists) of ``float | None``."""
    lists = [a.tolist() for a in dataset.arrays()]
    expected = reference(*lists)
    if isinstance(expected, tuple):
        want_series = tuple(tuple(e) for e in expected)
        last = [e[-1] for e in expected]
        want_latest = None if None in last else tuple(last)
    else:
        want_series = tuple(expected)
        want_latest = expected[-1]
    assert want_latest is not None
    for form_name, klines in dataset.forms().items():
        got_latest = latest_fn(klines, *args)
        assert close_enough(got_latest, want_latest), (form_name, latest_fn.__name__, args)
        if series_fn:
            got_series = series_fn(klines, *args)
            assert close_enough(got_series, want_series), (form_name, series_fn.__name__, args)
            assert_plain(got_series)
