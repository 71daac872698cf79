"""Worker-side market data: attached segments and the per-tick cache.

A worker attaches every segment of its :class:`~sandbox.MarketSpec` once, at
start (before it drops privileges). For each screening tick (``tick_id``) it
keeps a :class:`TickData`:

* one :class:`~sandbox._views.Snapshot` per (interval, slot, closed_only),
  pinned on first use (``KlineSegment.window``: the window's bounds and its
  newest candle, under the segment's sequence lock; columns are copied from
  shared memory only when a helper reads them), with the results cached for it;
* one read-only ticker mapping and one :class:`~sandbox._views.Klines` per
  (symbol, slot, intervals, closed_only);
* a :class:`~sandbox._cache.TickCache`: the byte budget of the tick's cached
  results and the demand that decides which large results are worth keeping.

All traders and filters evaluated with the same ``tick_id`` in this worker
share these objects, so a window is pinned and an indicator computed once per
tick whatever the number of traders asking for it. The window is fixed at its
first read in the tick: every trader of the tick sees the same candles.

Memory: only the :data:`TICKS_KEPT` most recent ticks are kept. When a new tick
starts, the cached results of the older ones are dropped (their snapshots, a
few hundred bytes each, stay so that a late batch of that tick still sees the
same candles) and the freed memory goes back to the kernel (``malloc_trim``);
a tick that is revisited after a newer one started (interleaved timers) keeps
its results until it falls out of :data:`TICKS_KEPT`.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from types import MappingProxyType
from typing import Any, Final

from ._cache import TickCache
from ._segment import TICKER_FIELDS, KlineSegment, TickerSegment
from ._types import MarketSpec
from ._views import Klines, Snapshot

__all__ = ["CACHE_LIMIT_MB", "MarketReader", "TickData", "TICKS_KEPT"]

TICKS_KEPT: Final = 2
CACHE_LIMIT_MB: Final = 64
"""Default budget of one tick's cached results, in MiB (see ``_cache.py``)."""
_TICKER_NAMES: Final = ("last_price", "open_price", "high_price", "low_price", "volume",
                        "quote_volume", "price_change", "price_change_percent")  # fmt: skip
_TICKER_INDEX: Final = tuple(TICKER_FIELDS.index(name) for name in _TICKER_NAMES)
_EVENT_TIME: Final = TICKER_FIELDS.index("event_time")


try:
    _malloc_trim = ctypes.CDLL(None).malloc_trim
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _malloc_trim = None


def release_free_memory() -> None:
    """Give freed heap memory back to the kernel (glibc ``malloc_trim``)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


class MarketReader:
    """The attached segments of one market and the recent ticks' caches.

    Args:
        spec: the segments to attach.
        cache_limit_mb: budget of one tick's cached results, in MiB.
    """

    def __init__(self, spec: MarketSpec, cache_limit_mb: int = CACHE_LIMIT_MB) -> None:
        self.spec = spec
        self.cache_limit = cache_limit_mb << 20
        self.klines: dict[str, KlineSegment] = {}
        try:
            for interval, seg in spec.klines.items():
                self.klines[interval] = KlineSegment.attach(seg)
            self.tickers = TickerSegment.attach(spec.tickers)
        except BaseException:
            self.close()
            raise
        self._ticks: OrderedDict[int, TickData] = OrderedDict()
        self._demand: dict[Any, int] = {}
        self.ticks_started = 0
        """How many ticks this reader has started (a new ``tick_id`` dropped older results)."""

    def tick(self, tick_id: int) -> TickData:
        """The cache of ``tick_id`` (created on first use; older ticks' results are dropped)."""
        data = self._ticks.get(tick_id)
        if data is not None:
            if data is not next(reversed(self._ticks.values())):
                data.revisited = True
                self._ticks.move_to_end(tick_id)
            return data
        for old in self._ticks.values():
            old.cache.finish()
            if not old.revisited:
                old.drop_results()
        data = self._ticks[tick_id] = TickData(self, TickCache(self.cache_limit, self._demand))
        self.ticks_started += 1
        while len(self._ticks) > TICKS_KEPT:
            self._ticks.popitem(last=False)[1].clear()
        release_free_memory()
        return data

    def forget_ticks(self) -> None:
        for data in self._ticks.values():
            data.clear()
        self._ticks.clear()

    def close(self) -> None:
        self._ticks = OrderedDict()
        for seg in self.klines.values():
            seg.close()
        self.klines = {}
        tickers = getattr(self, "tickers", None)
        if tickers is not None:
            tickers.close()


class TickData:
    """Everything read or computed for one tick in this worker."""

    __slots__ = ("cache", "revisited", "_inputs", "_reader", "_snapshots")

    def __init__(self, reader: MarketReader, cache: TickCache) -> None:
        self._reader = reader
        self.cache = cache
        self.revisited = False
        self._snapshots: dict[tuple[str, int, bool], Snapshot] = {}
        self._inputs: dict[tuple[str, int, tuple[str, ...], bool], tuple[Any, Klines]] = {}

    def clear(self) -> None:
        """Drop everything (breaks the Klines -> loader -> TickData cycles at once)."""
        self._inputs.clear()
        self._snapshots.clear()
        self.cache.drop()

    def drop_results(self) -> None:
        """Drop the cached results, keep the pinned windows (and so the tick's candles)."""
        for snap in self._snapshots.values():
            snap.memo = {}
        self.cache.drop()

    def snapshot(self, interval: str, slot: int, closed_only: bool) -> Snapshot:
        key = (interval, slot, closed_only)
        snap = self._snapshots.get(key)
        if snap is None:
            snap = self._snapshots[key] = Snapshot.pin(
                self._reader.klines[interval], slot, closed_only, self.cache, (interval, closed_only)
            )
        return snap

    def _ticker(self, symbol: str, slot: int) -> MappingProxyType[str, Any]:
        values = self._reader.tickers.read(slot)
        ticker: dict[str, Any] = {"symbol": symbol}
        if values is None:
            ticker.update(dict.fromkeys(_TICKER_NAMES))
            ticker["event_time"] = None
        else:
            for name, index in zip(_TICKER_NAMES, _TICKER_INDEX):
                value = values[index]
                ticker[name] = value if value == value else None
            event_time = values[_EVENT_TIME]
            ticker["event_time"] = int(event_time) if event_time == event_time else None
        return MappingProxyType(ticker)

    def inputs(
        self, symbol: str, slot: int, intervals: tuple[str, ...], closed_only: bool
    ) -> tuple[MappingProxyType[str, Any], Klines]:
        """``(ticker, klines)`` for one symbol, shared by every filter of this tick.

        Raises:
            IndexError: ``slot`` outside the segments.
        """
        key = (symbol, slot, intervals, closed_only)
        found = self._inputs.get(key)
        if found is not None:
            return found
        if not 0 <= slot < self._reader.tickers.slots or any(slot >= self._reader.klines[i].slots for i in intervals):
            raise IndexError(f"slot {slot} of {symbol} is outside the market segments")

        def load(interval: str) -> Snapshot:
            return self.snapshot(interval, slot, closed_only)

        found = self._inputs[key] = (self._ticker(symbol, slot), Klines(intervals, load))
        return found
