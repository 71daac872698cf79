"""Read-only views of market data as filter code sees them.

A :class:`Snapshot` is one tick's pinned (symbol, interval) window: its bounds
and the values of its newest candle, taken once under the segment's sequence
lock (``KlineSegment.window``). Nothing else is copied up front: each column a
helper needs is copied from shared memory when it is needed (``column``), with
the pinned newest candle patched in, so all columns of a snapshot agree
whatever the writer did meanwhile, and a tick holds no private copy of the
market. Views never create per-candle Python objects until filter code asks
for candles, and then only for the candles asked for:

* :class:`Candles` (``klines[interval]``): a read-only sequence with ``len()``,
  int and negative indexing (one candle built), slicing (a ``Candles`` for
  step 1, no copy; a tuple of candles otherwise) and iteration (the candles of
  that range). It exposes no array: indicator helpers unwrap its private handle
  (:func:`column_view`), which filter code cannot reach because the policy
  refuses every name starting with ``_``.
* :data:`Candle`: a named tuple in Binance column order; index access or the
  column names as attributes. Times (``open_time``, ``close_time``) and
  ``trades`` are ints, prices and volumes floats.
* :class:`Klines`: the read-only ``klines`` mapping, interval -> ``Candles``,
  limited to the trader's intervals.

Snapshots and views are shared by every filter evaluated in the same tick in one
worker; they are immutable from filter code (no writable attribute, no
mutating method, and the ``_write_`` guard refuses them), so one filter cannot
change what another sees. What is cached on a snapshot (helper results, rows)
is decided by its :class:`~sandbox._cache.TickCache`.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, Final, Protocol

import numpy as np

from ._cache import Big, TickCache
from ._segment import KLINE_COLUMNS

__all__ = ["Candle", "Candles", "ColumnView", "Klines", "Snapshot", "column_view"]

Candle = namedtuple("Candle", KLINE_COLUMNS)  # type: ignore[misc]
Candle.__doc__ = "One kline in Binance column order; times in ms since the Unix epoch (UTC)."
_INT_COLUMNS: Final = (0, 6, 8)  # open_time, close_time, trades
_make_candle = partial(tuple.__new__, Candle)  # C-level construction, no Python frame per candle
_UNLIMITED: Final = 1 << 62


class _Source(Protocol):
    def copy(self, slot: int, start: int, stop: int, column: int | None = None) -> np.ndarray: ...


class _ArraySource:
    """A private ``(11, n)`` array as a one-slot source (tests, warm-up, the check CLI)."""

    __slots__ = ("_array",)

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def copy(self, slot: int, start: int, stop: int, column: int | None = None) -> np.ndarray:
        data = self._array if column is None else self._array[column]
        return data[..., start:stop].copy()


def _candle(values: list[float]) -> Candle:
    for i in _INT_COLUMNS:
        values[i] = int(values[i])
    return _make_candle(values)


def _candles(block: np.ndarray) -> tuple[Candle, ...]:
    cols = block.tolist()
    for i in _INT_COLUMNS:
        cols[i] = list(map(int, cols[i]))
    return tuple(map(_make_candle, zip(*cols)))


class Snapshot:
    """One tick's pinned (symbol, interval) window plus the results cached for it.

    Build with :meth:`pin` (a segment slot) or ``Snapshot(array)`` (a private
    ``(11, n)`` array, which is kept read-only).

    Attributes:
        n: number of candles.
        memo: cached results (helper adapter key -> value, or a
            :class:`~sandbox._cache.Big` wrapping a large one).
        cache: the tick's :class:`~sandbox._cache.TickCache`.
        kind: what demand is counted per, e.g. ``("1m", True)``.
    """

    __slots__ = ("cache", "kind", "memo", "n", "_last", "_newest", "_slot", "_source", "_start")

    def __init__(self, array: np.ndarray | None = None, *, cache: TickCache | None = None, kind: Any = None) -> None:
        self.memo: dict[Any, Any] = {}
        self.cache = TickCache(_UNLIMITED) if cache is None else cache
        self.kind = kind
        self._last: Candle | None = None
        if array is None:  # filled in by pin()
            return
        array = np.array(array, dtype=np.float64, order="C")
        array.flags.writeable = False
        self._source: _Source = _ArraySource(array)
        self._slot = 0
        self._start = 0
        self.n = int(array.shape[1])
        self._newest = tuple(array[:, -1].tolist()) if self.n else None

    @classmethod
    def pin(cls, source: Any, slot: int, closed_only: bool, cache: TickCache, kind: Any) -> Snapshot:
        """Pin ``slot`` of a ``KlineSegment`` (see ``KlineSegment.window``)."""
        snap = cls(cache=cache, kind=kind)
        start, stop, newest = source.window(slot, closed_only)
        snap._source, snap._slot, snap._start = source, slot, start
        snap.n = stop - start
        snap._newest = newest
        return snap

    def column(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Read-only float64 copy of column ``index`` for candles ``start .. stop - 1``.

        Raises:
            WindowGone: the window was overwritten since it was pinned.
        """
        n = self.n
        if stop is None:
            stop = n
        out = self._source.copy(self._slot, self._start + start, self._start + stop, index)
        if stop == n and stop > start:
            out[-1] = self._newest[index]  # type: ignore[index]
        out.flags.writeable = False
        return out

    def block(self, start: int, stop: int) -> np.ndarray:
        """``(11, stop - start)`` float64 copy of candles ``start .. stop - 1`` (see :meth:`column`)."""
        out = self._source.copy(self._slot, self._start + start, self._start + stop)
        if stop == self.n and stop > start:
            out[:, -1] = self._newest
        return out

    def row(self, i: int) -> Candle:
        """Candle ``i`` (0 <= i < n)."""
        if i == self.n - 1:
            last = self._last
            if last is None:
                last = self._last = _candle(list(self._newest))  # type: ignore[arg-type]
            return last
        key = ("row", i)
        found = self.memo.get(key)
        if found is None:
            found = _candle(self.block(i, i + 1)[:, 0].tolist())
            self.cache.keep(self.memo, key, found, 496)
        return found

    def rows(self, start: int = 0, stop: int | None = None) -> tuple[Candle, ...]:
        """Candles ``start .. stop - 1`` as named tuples (kept when in demand)."""
        if stop is None:
            stop = self.n
        if stop <= start:
            return ()
        key = ("rows", start, stop)
        found = self.memo.get(key)
        if found is not None:
            if type(found) is Big:
                self.cache.hit(found.rec)
                return found.value  # type: ignore[no-any-return]
            return found  # type: ignore[no-any-return]
        rows = self.cache.recall(self, key)
        if rows is None:
            rows = _candles(self.block(start, stop))
            self.cache.offer(self.memo, self.kind, key, rows, None, self)
        return rows


class ColumnView:
    """What indicator helpers receive: ``column(i)`` -> 1-D contiguous read-only float64 array.

    Never handed to filter code.
    """

    __slots__ = ("_snap", "_start", "_stop")

    def __init__(self, snap: Snapshot, start: int, stop: int) -> None:
        self._snap, self._start, self._stop = snap, start, stop

    def column(self, index: int) -> np.ndarray:
        return self._snap.column(index, self._start, self._stop)

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, key: int | slice) -> Any:
        return self._snap.rows(self._start, self._stop)[key]

    def __iter__(self) -> Iterator[Candle]:
        return iter(self._snap.rows(self._start, self._stop))


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
            return self._rows()[key]
        if isinstance(key, bool) or not hasattr(type(key), "__index__"):
            raise TypeError(f"candle sequences are indexed by int or slice, not {type(key).__name__}")
        return self[int(key)]

    def _rows(self) -> tuple[Candle, ...]:
        return self._snap.rows(self._start, self._stop)

    def __iter__(self) -> Iterator[Candle]:
        return iter(self._rows())

    def __reversed__(self) -> Iterator[Candle]:
        return reversed(self._rows())

    def __contains__(self, item: object) -> bool:
        return item in self._rows()

    def index(self, item: object) -> int:
        return self._rows().index(item)

    def count(self, item: object) -> int:
        return self._rows().count(item)

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
