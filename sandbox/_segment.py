"""Shared-memory layout of the market data that sandbox workers read.

The machine's store writes klines and tickers into POSIX shared memory in the
layout below; sandbox workers attach to the same segments (before dropping
privileges) and read them without any per-tick serialisation.

Kline segment (one per interval)::

    meta : int64[slots, 4]            (seq, start, end, flags) per symbol slot
    data : float64[slots, 11, cap]    cap = limit + SLACK; column-major per slot

Each slot is a ring of ``cap`` candles per column. ``start`` and ``end`` are
absolute candle counters (they only grow): the window is the candles
``start .. end - 1``, oldest first, and candle ``a`` lives at position
``a % cap``, so ``data[slot, c, a % cap]`` is column ``c`` of candle ``a``.
Columns are Binance's kline columns in order (``KLINE_COLUMNS``): open_time,
open, high, low, close, volume, close_time, quote_volume, trades,
taker_buy_base_volume, taker_buy_quote_volume. Times are ms since the Unix
epoch (UTC, exact in float64 below 2**53), prices in the quote asset, volumes
in the base asset.

The ring keeps at most ``limit`` candles. Appending writes candle ``end`` and
moves ``start`` on past ``limit`` (O(1), nothing is ever moved); updating the
forming candle writes its column values in place (O(1)). A candle's values stay
at their position until ``SLACK`` more candles have been appended after it left
the window, which is what lets readers copy a window's columns one at a time
(see below). ``load`` (a backfill replacing a slot's candles) starts the slot
at a fresh multiple of ``cap`` at least ``cap`` past the old ``end``, so every
window read before it is recognisably gone. The segment costs
``slots * 11 * (limit + SLACK) * 8`` bytes (+ 32 bytes per slot of metadata).

``flags`` bit 0 is set when the newest candle is closed (Binance ``x=true``).

Concurrency: one writer (the machine's event loop), many readers (workers). Each
slot has a sequence lock: the writer makes ``seq`` odd before it writes and even
after; a reader copies and retries when ``seq`` was odd or changed.

* :meth:`KlineSegment.read` copies a whole window at once (the store's reads).
* :meth:`KlineSegment.window` pins a window without copying it: its bounds and
  the values of its newest candle (the only candle of the window the writer may
  still change). :meth:`KlineSegment.copy` later copies any columns of any part
  of that window; the pinned newest candle is patched in, so every column read
  from one pinned window agrees with the others, however the market moved in
  between. If more than ``SLACK`` candles were appended since the window was
  pinned, or the slot was reloaded, the copy raises :class:`WindowGone`.

Ticker segment (one)::

    meta : int64[slots, 1]            seq
    data : float64[slots, len(TICKER_FIELDS)]
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import _posixshmem

import numpy as np

from ._errors import WindowGone

if TYPE_CHECKING:
    from multiprocessing.shared_memory import SharedMemory

__all__ = [
    "KLINE_COLUMNS",
    "TICKER_FIELDS",
    "FLAG_CLOSED",
    "SLACK",
    "KlineSegment",
    "TickerSegment",
    "SegmentSpec",
]

KLINE_COLUMNS: Final = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
)
N_COLUMNS: Final = len(KLINE_COLUMNS)
TICKER_FIELDS: Final = (
    "last_price",
    "open_price",
    "high_price",
    "low_price",
    "volume",
    "quote_volume",
    "price_change",
    "price_change_percent",
    "event_time",
)
FLAG_CLOSED: Final = 1
_SEQ, _START, _END, _FLAGS = 0, 1, 2, 3
SLACK: Final = 32
"""Ring positions beyond ``limit``: a pinned window stays readable for this many appends."""
_SPINS_BEFORE_YIELD: Final = 64
_READ_DEADLINE_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """Plain description of a segment, sent to workers so they can attach.

    Attributes:
        name: the shared-memory block name.
        slots: number of symbol slots.
        limit: candles kept per slot (0 for the ticker segment).
    """

    name: str
    slots: int
    limit: int = 0


class _ReadOnlyBlock:
    """A reader's mapping of an existing block: read-only, and without ``multiprocessing``.

    ``shm_open`` + ``mmap(PROT_READ)``: a worker can never write into the
    machine's market data through it, and does not pay for importing
    ``multiprocessing`` (and its resource tracker, which must not unlink the
    writer's blocks) in every worker.
    """

    def __init__(self, name: str) -> None:
        self.name = name.lstrip("/")
        fd = _posixshmem.shm_open("/" + self.name, os.O_RDONLY, mode=0o600)
        try:
            self.buf: Any = mmap.mmap(fd, os.fstat(fd).st_size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.buf.close()


def _attach(name: str) -> _ReadOnlyBlock:
    """Open an existing block as a reader.

    Raises:
        FileNotFoundError: no block of that name (never created, or unlinked).
    """
    return _ReadOnlyBlock(name)


def _bounds(meta: np.ndarray, closed_only: bool) -> tuple[int, int]:
    """``(start, end)`` counters of a slot's window; ``closed_only`` drops a forming newest candle."""
    start, end, flags = int(meta[_START]), int(meta[_END]), int(meta[_FLAGS])
    if closed_only and end > start and not flags & FLAG_CLOSED:
        end -= 1
    return start, end


def _retries(slot: int) -> Iterator[int]:
    """Retry budget of a seqlock read: spin, then yield the CPU, until a deadline.

    The writer may be descheduled in the middle of a write; yielding lets it
    finish instead of failing the read.

    Raises:
        RuntimeError: the slot stayed busy for ``_READ_DEADLINE_S`` seconds.
    """
    for i in range(_SPINS_BEFORE_YIELD):
        yield i
    deadline = time.monotonic() + _READ_DEADLINE_S
    i = _SPINS_BEFORE_YIELD
    while time.monotonic() < deadline:
        os.sched_yield()
        yield i
        i += 1
    raise RuntimeError(f"slot {slot} kept busy by the writer for {_READ_DEADLINE_S}s")


def _create(size: int) -> SharedMemory:
    from multiprocessing import shared_memory  # the writer only: readers never import multiprocessing

    return shared_memory.SharedMemory(create=True, size=size)


class KlineSegment:
    """Rings of one interval's klines for ``slots`` symbols (layout: module doc).

    Create with :meth:`create` (the writer, owns and unlinks the block) or
    :meth:`attach` (a reader).
    """

    def __init__(self, shm: SharedMemory | _ReadOnlyBlock, slots: int, limit: int, owner: bool) -> None:
        if slots < 1 or limit < 2:
            raise ValueError(f"slots must be >= 1 and limit >= 2, got {slots}, {limit}")
        self._shm = shm
        self.slots = slots
        self.limit = limit
        self.cap = limit + SLACK
        self._owner = owner
        meta_bytes = slots * 4 * 8
        self.meta = np.ndarray((slots, 4), dtype=np.int64, buffer=shm.buf, offset=0)
        self.data = np.ndarray((slots, N_COLUMNS, self.cap), dtype=np.float64, buffer=shm.buf, offset=meta_bytes)

    @staticmethod
    def nbytes(slots: int, limit: int) -> int:
        """Size in bytes of a segment for ``slots`` symbols keeping ``limit`` candles."""
        return slots * 4 * 8 + slots * N_COLUMNS * (limit + SLACK) * 8

    @classmethod
    def create(cls, slots: int, limit: int) -> "KlineSegment":
        shm = _create(cls.nbytes(slots, limit))
        seg = cls(shm, slots, limit, owner=True)
        seg.meta[:] = 0
        return seg

    @classmethod
    def attach(cls, spec: SegmentSpec) -> "KlineSegment":
        return cls(_attach(spec.name), spec.slots, spec.limit, owner=False)

    @property
    def spec(self) -> SegmentSpec:
        return SegmentSpec(self._shm.name, self.slots, self.limit)

    # ---------------------------------------------------------------- writer
    def load(self, slot: int, rows: np.ndarray, last_closed: bool) -> None:
        """Replace a slot's candles with ``rows`` (shape ``(n, 11)``, oldest first).

        Only the newest ``limit`` rows are kept. Windows pinned before are gone.
        """
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != N_COLUMNS:
            raise ValueError(f"rows must have shape (n, {N_COLUMNS}), got {rows.shape}")
        rows = rows[-self.limit :]
        m = self.meta[slot]
        end = int(m[_END])
        # A fresh ring start at least ``cap`` past the old end (see module doc); 0 for a slot never written.
        start = 0 if end == 0 else (end + 2 * self.cap - 1) // self.cap * self.cap
        m[_SEQ] += 1
        n = rows.shape[0]
        self.data[slot, :, :n] = rows.T
        m[_START], m[_END] = start, start + n
        m[_FLAGS] = FLAG_CLOSED if last_closed else 0
        m[_SEQ] += 1

    def upsert(self, slot: int, row: np.ndarray | tuple[float, ...], closed: bool) -> bool:
        """Apply one kline update: update the forming candle in place or append a new one.

        Args:
            slot: the symbol's slot.
            row: 11 values in ``KLINE_COLUMNS`` order.
            closed: whether this update closes the candle (Binance ``k.x``).

        Returns:
            False when the update is older than the newest candle (dropped), else True.
        """
        m = self.meta[slot]
        start, end = int(m[_START]), int(m[_END])
        open_time = row[0]
        d = self.data[slot]
        cap = self.cap
        if end > start:
            newest = d[0, (end - 1) % cap]
            if open_time < newest:
                return False
            if open_time == newest:
                m[_SEQ] += 1
                d[:, (end - 1) % cap] = row
                m[_FLAGS] = FLAG_CLOSED if closed else 0
                m[_SEQ] += 1
                return True
        m[_SEQ] += 1
        d[:, end % cap] = row
        end += 1
        if end - start > self.limit:
            start = end - self.limit
        m[_START], m[_END] = start, end
        m[_FLAGS] = FLAG_CLOSED if closed else 0
        m[_SEQ] += 1
        return True

    # ---------------------------------------------------------------- reader
    def read(self, slot: int, closed_only: bool = False) -> np.ndarray:
        """Consistent private copy of a slot's window, shape ``(11, n)``, oldest first.

        With ``closed_only`` a forming newest candle is left out, so the last column
        is the newest closed candle.

        Raises:
            RuntimeError: when the writer kept the slot busy for a second.
        """
        m = self.meta[slot]
        for _ in _retries(slot):
            s1 = int(m[_SEQ])
            if s1 & 1:
                continue
            start, end = _bounds(m, closed_only)
            out = self._gather(slot, start, end, None)
            if int(m[_SEQ]) == s1:
                return out
        raise AssertionError("unreachable")

    def window(self, slot: int, closed_only: bool = False) -> tuple[int, int, tuple[float, ...] | None]:
        """Pin a slot's window without copying it: ``(start, stop, newest)``.

        ``start``/``stop`` are absolute candle counters (``stop - start`` candles;
        with ``closed_only`` a forming newest candle is left out); ``newest`` is the
        11 values of candle ``stop - 1`` (None for an empty window). Read the
        columns later with :meth:`copy`.

        Raises:
            RuntimeError: when the writer kept the slot busy for a second.
        """
        m = self.meta[slot]
        d = self.data[slot]
        for _ in _retries(slot):
            s1 = int(m[_SEQ])
            if s1 & 1:
                continue
            start, end = _bounds(m, closed_only)
            newest = tuple(d[:, (end - 1) % self.cap].tolist()) if end > start else None
            if int(m[_SEQ]) == s1:
                return start, end, newest
        raise AssertionError("unreachable")

    def copy(self, slot: int, start: int, stop: int, column: int | None = None) -> np.ndarray:
        """Private copy of candles ``start .. stop - 1`` of a slot (absolute counters).

        ``column``: one column (1-D result) or None for all (``(11, stop - start)``).
        Meant for candles of a window pinned with :meth:`window` other than its
        newest one: those never change while they are kept.

        Raises:
            WindowGone: some of these candles were overwritten (more than ``SLACK``
                appends since, or the slot was reloaded).
            RuntimeError: when the writer kept the slot busy for a second.
        """
        m = self.meta[slot]
        limit = start + self.cap
        s1 = int(m[_SEQ])
        if not s1 & 1 and int(m[_END]) <= limit:  # fast path: no write in progress
            out = self._gather(slot, start, stop, column)
            if int(m[_SEQ]) == s1:
                return out
        for _ in _retries(slot):
            s1 = int(m[_SEQ])
            if s1 & 1:
                continue
            if int(m[_END]) > limit:
                raise WindowGone(
                    f"candles of slot {slot} were overwritten since the window was pinned (more than {SLACK} "
                    "new candles or a reload during the tick); the next tick reads them afresh"
                )
            out = self._gather(slot, start, stop, column)
            if int(m[_SEQ]) == s1:
                return out
        raise AssertionError("unreachable")

    def _gather(self, slot: int, start: int, stop: int, column: int | None) -> np.ndarray:
        cap = self.cap
        p0 = start % cap
        p1 = p0 + stop - start
        d = self.data[slot] if column is None else self.data[slot, column]
        if p1 <= cap:
            return d[..., p0:p1].copy()
        return np.concatenate((d[..., p0:], d[..., : p1 - cap]), axis=-1)

    def newest(self, slot: int) -> tuple[float, bool] | None:
        """``(open_time, closed)`` of the slot's newest candle, or None when empty."""
        m = self.meta[slot]
        start, end = int(m[_START]), int(m[_END])
        if end <= start:
            return None
        return float(self.data[slot, 0, (end - 1) % self.cap]), bool(m[_FLAGS] & FLAG_CLOSED)

    def count(self, slot: int) -> int:
        m = self.meta[slot]
        return int(m[_END] - m[_START])

    def close(self) -> None:
        """Detach; the owner also unlinks the block."""
        del self.meta, self.data
        self._shm.close()
        if self._owner:
            self._shm.unlink()  # type: ignore[union-attr]


class TickerSegment:
    """Latest 24 h ticker values per symbol slot (``TICKER_FIELDS`` order, floats)."""

    def __init__(self, shm: SharedMemory | _ReadOnlyBlock, slots: int, owner: bool) -> None:
        self._shm = shm
        self.slots = slots
        self._owner = owner
        self.meta = np.ndarray((slots, 1), dtype=np.int64, buffer=shm.buf, offset=0)
        self.data = np.ndarray((slots, len(TICKER_FIELDS)), dtype=np.float64, buffer=shm.buf, offset=slots * 8)

    @staticmethod
    def nbytes(slots: int) -> int:
        return slots * 8 + slots * len(TICKER_FIELDS) * 8

    @classmethod
    def create(cls, slots: int) -> "TickerSegment":
        seg = cls(_create(cls.nbytes(slots)), slots, owner=True)
        seg.meta[:] = 0
        seg.data[:] = np.nan
        return seg

    @classmethod
    def attach(cls, spec: SegmentSpec) -> "TickerSegment":
        return cls(_attach(spec.name), spec.slots, owner=False)

    @property
    def spec(self) -> SegmentSpec:
        return SegmentSpec(self._shm.name, self.slots, 0)

    def write(self, slot: int, values: tuple[float, ...]) -> None:
        """Store one ticker (values in ``TICKER_FIELDS`` order)."""
        m = self.meta[slot]
        m[0] += 1
        self.data[slot] = values
        m[0] += 1

    def read(self, slot: int) -> tuple[float, ...] | None:
        """The slot's ticker values, or None before the first ticker arrived."""
        m = self.meta[slot]
        for _ in _retries(slot):
            s1 = int(m[0])
            if s1 & 1:
                continue
            vals = tuple(float(x) for x in self.data[slot])
            if int(m[0]) == s1:
                return None if vals[0] != vals[0] else vals
        raise AssertionError("unreachable")

    def close(self) -> None:
        del self.meta, self.data
        self._shm.close()
        if self._owner:
            self._shm.unlink()  # type: ignore[union-attr]
