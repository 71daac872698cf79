"""Read-only views of market data as filter code sees them.

A :class:`Snapshot` holds one tick's private copy of one (symbol, interval)
window, shape ``(11, n)`` float64 (``KLINE_COLUMNS`` order, oldest first), made
read-only. Views never create per-candle Python objects until filter code asks
for candles:

* :class:`Candles` (``klines[interval]``): a read-only sequence with ``len()``,
  int and negative indexing, slicing (a ``Candles`` for step 1, a tuple of
  candles otherwise) and iteration. It exposes no array: indicator helpers
  unwrap its private handle (:func:`column_view`), which filter code cannot
  reach because the policy refuses every name starting with ``_``.
* :data:`Candle`: a named tuple in Binance column order; index access or the
  column names as attributes. Times (``open_time``, ``close_time``) and
  ``trades`` are ints, prices and volumes floats.
* :class:`Klines`: the read-only ``klines`` mapping, interval -> ``Candles``,
  limited to the trader's intervals.

Snapshots and views are shared by every filter evaluated in the same tick in one
worker; they are immutable from filter code (no writable attribute, no
mutating method, and the ``_write_`` guard refuses them), so one filter cannot
change what another sees.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, Final

import numpy as np

from ._segment import KLINE_COLUMNS

__all__ = ["Candle", "Candles", "ColumnView", "Klines", "Snapshot", "column_view"]

Candle = namedtuple("Candle", KLINE_COLUMNS)  # type: ignore[misc]
Candle.__doc__ = "One kline in Binance column order; times in ms since the Unix epoch (UTC)."
_INT_COLUMNS: Final = (0, 6, 8)  # open_time, close_time, trades
_make_candle = partial(tuple.__new__, Candle)  # C-level construction, no Python frame per candle


def _candle(values: list[float]) -> Candle:
    for i in _INT_COLUMNS:
        values[i] = int(values[i])
    return _make_candle(values)


class Snapshot:
    """One tick's copy of one (symbol, interval) window plus the indicator memo for it.

    Attributes:
        array: ``(11, n)`` read-only C-contiguous float64 array.
        memo: helper results for this window, keyed by the helper adapter.
    """

    __slots__ = ("_rows", "array", "memo", "n")

    def __init__(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, dtype=np.float64)
        array.flags.writeable = False
        self.array = array
        self.n = int(array.shape[1])
        self.memo: dict[Any, Any] = {}
        self._rows: tuple[Candle, ...] | None = None

    def rows(self) -> tuple[Candle, ...]:
        """All candles as named tuples (built once per snapshot)."""
        if self._rows is None:
            cols = self.array.tolist()
            for i in _INT_COLUMNS:
                cols[i] = self.array[i].astype(np.int64).tolist()
            self._rows = tuple(map(_make_candle, zip(*cols)))
        return self._rows

    def row(self, i: int) -> Candle:
        if self._rows is not None:
            return self._rows[i]
        return _candle(self.array[:, i].tolist())


class ColumnView:
    """What indicator helpers receive: ``column(i)`` -> 1-D contiguous read-only float64 array.

    Never handed to filter code.
    """

    __slots__ = ("_snap", "_start", "_stop")

    def __init__(self, snap: Snapshot, start: int, stop: int) -> None:
        self._snap, self._start, self._stop = snap, start, stop

    def column(self, index: int) -> np.ndarray:
        return self._snap.array[index, self._start : self._stop]

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, key: int | slice) -> Any:
        return self._snap.rows()[self._start : self._stop][key]

    def __iter__(self) -> Iterator[Candle]:
        return iter(self._snap.rows()[self._start : self._stop])


class Candles:
    """Read-only sequence of candles, oldest first (``klines[interval]`` in a filter)."""

    __slots__ = ("_snap", "_start", "_stop")

    def __init__(self, snap: Snapshot, start: int = 0, stop: int | None = None) -> None:
        self._snap = snap
        self._start = start
        self._stop = snap.n if stop is None else stop

    def __len__(self) -> int:
        return self._stop - self._start

    def __bool__(self) -> bool:
        return self._stop > self._start

    def __getitem__(self, key: Any) -> Any:
        n = self._stop - self._start
        if type(key) is int:
            if key < 0:
                key += n
            if not 0 <= key < n:
                raise IndexError(f"candle index out of range (this sequence has {n} candles)")
            return self._snap.row(self._start + key)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                return Candles(self._snap, self._start + start, self._start + max(start, stop))
            return self._snap.rows()[self._start : self._stop][key]
        if isinstance(key, bool) or not hasattr(type(key), "__index__"):
            raise TypeError(f"candle sequences are indexed by int or slice, not {type(key).__name__}")
        return self[int(key)]

    def __iter__(self) -> Iterator[Candle]:
        rows = self._snap.rows()
        if self._start == 0 and self._stop == self._snap.n:
            return iter(rows)
        return iter(rows[self._start : self._stop])

    def __reversed__(self) -> Iterator[Candle]:
        return reversed(self._snap.rows()[self._start : self._stop])

    def __contains__(self, item: object) -> bool:
        return item in self._snap.rows()[self._start : self._stop]

    def index(self, item: object) -> int:
        return self._snap.rows()[self._start : self._stop].index(item)

    def count(self, item: object) -> int:
        return self._snap.rows()[self._start : self._stop].count(item)

    def __repr__(self) -> str:
        return f"<{self._stop - self._start} candles>"


def column_view(candles: Candles) -> ColumnView:
    """The private handle of ``candles`` for indicator helpers (sandbox code only)."""
    return ColumnView(candles._snap, candles._start, candles._stop)


class Klines(Mapping[str, Candles]):
    """Read-only mapping interval -> :class:`Candles` for one symbol (the ``klines`` argument).

    Windows are read lazily through ``load(interval)`` on first access and kept.
    """

    __slots__ = ("_cache", "_intervals", "_load")

    def __init__(self, intervals: tuple[str, ...], load: Callable[[str], Snapshot]) -> None:
        self._intervals = intervals
        self._load = load
        self._cache: dict[str, Candles] = {}

    def __getitem__(self, interval: str) -> Candles:
        try:
            return self._cache[interval]
        except (KeyError, TypeError):
            pass
        if type(interval) is not str or interval not in self._intervals:
            raise KeyError(f"interval {interval!r} is not one of this trader's timeframes {list(self._intervals)}")
        candles = self._cache[interval] = Candles(self._load(interval))
        return candles

    def __iter__(self) -> Iterator[str]:
        return iter(self._intervals)

    def __len__(self) -> int:
        return len(self._intervals)

    def __contains__(self, interval: object) -> bool:
        return interval in self._intervals

    def __repr__(self) -> str:
        return f"<klines {list(self._intervals)}>"
