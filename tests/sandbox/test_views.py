"""Read-only views: candles as filter code sees them, and the private column handle."""

from __future__ import annotations

import numpy as np
import pytest

from sandbox._segment import KLINE_COLUMNS
from sandbox._views import Candle, Candles, Klines, Snapshot, column_view


def make_array(n: int = 10) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) * 60_000 + 1_600_000_000_000
    close = np.arange(n, dtype=np.float64) + 100.5
    return np.vstack([t, close - 1, close + 1, close - 2, close, close * 0 + 3, t + 59_999, close * 3,
                      np.full(n, 7.0), np.ones(n), np.ones(n) * 2])  # fmt: skip


@pytest.fixture
def candles() -> Candles:
    return Candles(Snapshot(make_array()))


def test_index_access_in_binance_column_order(candles):
    last = candles[-1]
    assert isinstance(last, Candle) and len(last) == 11
    assert last[4] == last.close == 109.5
    assert last.open_time == 1_600_000_000_000 + 9 * 60_000 and type(last.open_time) is int
    assert type(last.close_time) is int and type(last.trades) is int and type(last.volume) is float
    assert last._fields == KLINE_COLUMNS
    assert candles[0].close == 100.5 and candles[-10] == candles[0]


def test_len_iteration_slicing(candles):
    assert len(candles) == 10 and bool(candles)
    assert [c.close for c in candles] == [100.5 + i for i in range(10)]
    tail = candles[-3:]
    assert isinstance(tail, Candles) and len(tail) == 3 and tail[0].close == 107.5
    assert [c.close for c in tail] == [107.5, 108.5, 109.5]
    assert len(candles[5:2]) == 0 and not candles[5:2]
    stepped = candles[::3]
    assert isinstance(stepped, tuple) and [c.close for c in stepped] == [100.5, 103.5, 106.5, 109.5]
    assert [c.close for c in reversed(candles)][0] == 109.5
    assert candles[2] in candles and candles.index(candles[2]) == 2 and candles.count(candles[2]) == 1
    with pytest.raises(IndexError):
        candles[10]
    with pytest.raises(TypeError):
        candles["close"]


def test_candles_expose_no_array_and_are_immutable(candles):
    assert not hasattr(candles, "column")
    with pytest.raises(AttributeError):
        candles.x = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        candles[0][4] = 1.0  # type: ignore[index]
    assert not candles._snap.column(4).flags.writeable


def test_a_snapshot_keeps_its_own_read_only_copy_of_an_array():
    array = make_array()
    candles = Candles(Snapshot(array))
    array[4, -1] = array[4, 0] = -1.0
    assert candles[-1].close == 109.5 and candles[0].close == 100.5
    assert column_view(candles).column(4)[[0, -1]].tolist() == [100.5, 109.5]


def test_column_view_gives_contiguous_read_only_float64(candles):
    view = column_view(candles[-4:])
    closes = view.column(4)
    assert closes.dtype == np.float64 and closes.flags.c_contiguous and not closes.flags.writeable
    assert closes.tolist() == [106.5, 107.5, 108.5, 109.5] and len(view) == 4
    with pytest.raises(ValueError):
        closes[0] = 1.0


def test_klines_mapping_is_lazy_and_limited_to_the_trader_intervals():
    loads = []
    snap = Snapshot(make_array())

    def load(interval):
        loads.append(interval)
        return snap

    klines = Klines(("1m", "1h"), load)
    assert list(klines) == ["1m", "1h"] and len(klines) == 2 and "1h" in klines and "4h" not in klines
    assert loads == []
    assert klines["1m"] is klines["1m"] and loads == ["1m"]
    with pytest.raises(KeyError, match="not one of this trader's timeframes"):
        klines["4h"]
    assert klines.get("4h") is None
    with pytest.raises(TypeError):
        klines["1m"] = None  # type: ignore[index]
