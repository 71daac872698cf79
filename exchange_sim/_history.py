"""Kline history of the replayed symbols, read lazily per (symbol, UTC day).

Nothing is loaded at start: a day file is parsed (numpy) the first time a request
or the stream needs it and kept in a byte-bounded LRU cache; aggregated candles of
complete days are cached the same way, so 1000 hourly candles (~42 days of 1m
rows) cost ~42 small cached arrays once warm.

"Now" is always passed in (the replay clock): rows with open time >= the current
minute are never used as closed rows, and the current minute contributes its
synthetic partial values (:func:`exchange_sim._candles.partial_row`).

Symbol aliases (:mod:`exchange_sim._aliases`) resolve to their source symbol at every
entry point, and the caches are keyed by the source: an alias reads the very same
arrays, it never adds a copy.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping

import numpy as np

from ._candles import NCOLS, OPEN_TIME, Accumulator, aggregate, partial_row
from ._files import ReplayIndex, load_file
from ._intervals import (
    DAY_MS,
    INTERVAL_MS,
    INTRADAY,
    MINUTE_MS,
    bucket_end,
    bucket_start,
    day_start,
)

_EMPTY = np.empty((0, NCOLS))
_EMPTY.flags.writeable = False


class _LRU:
    """A dict of numpy arrays that drops the least recently used beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self.max_bytes = max_bytes

    def get(self, key: Hashable) -> np.ndarray | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: np.ndarray) -> None:
        value.flags.writeable = False
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._items[key] = value
        self._bytes += value.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes


class MarketHistory:
    """1m rows and aggregated klines of the replayed symbols.

    Args:
        index: the files found in the replay folder.
        day_cache_bytes: budget of the parsed-day cache (one full day = 127 KB).
        agg_cache_bytes: budget of the aggregated-candle cache.
        aliases: ``{alias: source symbol}``; an alias reads its source's data.
    """

    def __init__(
        self,
        index: ReplayIndex,
        *,
        day_cache_bytes: int = 96 << 20,
        agg_cache_bytes: int = 48 << 20,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.index = index
        self._aliases: dict[str, str] = dict(aliases or {})
        self._days = _LRU(day_cache_bytes)
        self._aggs = _LRU(agg_cache_bytes)
        self._bounds: dict[str, tuple[int, int] | None] = {}

    def source(self, symbol: str) -> str:
        """The symbol whose data ``symbol`` replays: its source for an alias, else itself."""
        return self._aliases.get(symbol, symbol)

    # ----- raw 1m rows -------------------------------------------------------------

    def day_rows(self, symbol: str, day: int) -> np.ndarray:
        """The 1m rows of ``symbol`` on the UTC day starting at ``day`` (may be empty)."""
        symbol = self._aliases.get(symbol, symbol)
        key = (symbol, day)
        rows = self._days.get(key)
        if rows is not None:
            return rows
        data_file = self.index.days.get(symbol, {}).get(day)
        if data_file is None:
            return _EMPTY
        loaded = load_file(data_file)
        if data_file.monthly:
            for other_day, other_rows in loaded.items():
                if other_day != day:
                    self._days.put((symbol, other_day), other_rows)
        rows = loaded.get(day, np.empty((0, NCOLS)))
        self._days.put(key, rows)
        return rows

    def minute_row(self, symbol: str, minute: int) -> np.ndarray | None:
        """The 1m row opening at ``minute`` (ms), or None (gap or outside the data)."""
        day = day_start(minute)
        rows = self.day_rows(symbol, day)
        i = (minute - day) // MINUTE_MS
        if not (i < rows.shape[0] and rows[i, OPEN_TIME] == minute):
            i = int(np.searchsorted(rows[:, OPEN_TIME], minute))
            if not (i < rows.shape[0] and rows[i, OPEN_TIME] == minute):
                return None
        row: np.ndarray = rows[i]
        return row

    def closed_rows(self, symbol: str, start: int, end: int) -> np.ndarray:
        """1m rows with ``start <= open_time < end``, across days."""
        parts = []
        day = day_start(start)
        while day < end:
            rows = self.day_rows(symbol, day)
            if rows.shape[0]:
                times = rows[:, OPEN_TIME]
                lo = 0 if start <= day else int(np.searchsorted(times, start))
                hi = rows.shape[0] if end >= day + DAY_MS else int(np.searchsorted(times, end))
                if hi > lo:
                    parts.append(rows[lo:hi])
            day += DAY_MS
        if not parts:
            return _EMPTY
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def last_row_before(self, symbol: str, t: int) -> np.ndarray | None:
        """The last 1m row opening before ``t`` (searching back to the first file)."""
        symbol = self._aliases.get(symbol, symbol)
        first = self.index.first_day(symbol)
        day = day_start(t - 1)
        while day >= first:
            rows = self.day_rows(symbol, day)
            j = int(np.searchsorted(rows[:, OPEN_TIME], t))
            if j > 0:
                row: np.ndarray = rows[j - 1]
                return row
            day -= DAY_MS
        return None

    def bounds(self, symbol: str) -> tuple[int, int] | None:
        """(first open time, last open time) of the symbol's 1m rows, None if no rows."""
        symbol = self._aliases.get(symbol, symbol)
        if symbol not in self._bounds:
            days = sorted(self.index.days[symbol])
            loaded = (self.day_rows(symbol, d) for d in days)
            first = next((rows for rows in loaded if rows.shape[0]), None)
            loaded = (self.day_rows(symbol, d) for d in reversed(days))
            last = next((rows for rows in loaded if rows.shape[0]), None)
            self._bounds[symbol] = None if first is None or last is None else (int(first[0, 0]), int(last[-1, 0]))
        return self._bounds[symbol]

    # ----- the forming minute --------------------------------------------------------

    def current(self, symbol: str, now: int) -> tuple[int, list[float] | None]:
        """(start of the minute containing ``now``, its partial row or None).

        None when the minute has no row (gap) or ``now`` is exactly its start (no
        trade can have happened yet).
        """
        minute = now - now % MINUTE_MS
        elapsed = now - minute
        if elapsed == 0:
            return minute, None
        row = self.minute_row(symbol, minute)
        return minute, None if row is None else partial_row(row, elapsed)

    # ----- aggregated candles --------------------------------------------------------

    def _full_day(self, symbol: str, interval: str, day: int) -> np.ndarray:
        """Candles of ``interval`` (intraday or 1d) for a day that is entirely past."""
        if interval == "1m":
            return self.day_rows(symbol, day)
        symbol = self._aliases.get(symbol, symbol)
        key = (symbol, interval, day)
        cached = self._aggs.get(key)
        if cached is None:
            # Always from the 1m rows, added in time order: the stream folds minutes
            # the same way, so REST and stream values are bit-identical.
            rows = self.day_rows(symbol, day)
            cached = aggregate(rows, _bucket_keys(rows, interval), interval)
            self._aggs.put(key, cached)
        return cached

    def _day_candles(
        self, symbol: str, interval: str, day: int, minute: int, partial: list[float] | None
    ) -> np.ndarray:
        """Candles of an intraday interval (or 1d) on ``day`` as of the given minute."""
        if day + DAY_MS <= minute:
            return self._full_day(symbol, interval, day)
        if day > minute:
            return _EMPTY
        rows = self.closed_rows(symbol, day, minute)
        if partial is not None:
            rows = np.vstack([rows, np.asarray(partial)[None, :]])
        if interval == "1m" or rows.shape[0] == 0:
            return rows
        return aggregate(rows, _bucket_keys(rows, interval), interval)

    def _long_candle(
        self, symbol: str, interval: str, start: int, minute: int, partial: list[float] | None
    ) -> np.ndarray:
        """The 3d/1w/1M candle opening at ``start`` (built from daily candles)."""
        days = []
        day = start
        end = min(bucket_end(start, interval), minute + DAY_MS)
        while day < end:
            days.append(self._day_candles(symbol, "1d", day, minute, partial))
            day += DAY_MS
        rows = np.concatenate(days) if days else _EMPTY
        if rows.shape[0] == 0:
            return _EMPTY
        return aggregate(rows, np.full(rows.shape[0], float(start)), interval)

    def klines(
        self,
        symbol: str,
        interval: str,
        now: int,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = 500,
    ) -> np.ndarray:
        """Klines as ``GET /api/v3/klines`` returns them at replay time ``now``.

        Candles with ``start <= open_time <= min(end, now)``; with ``start`` the first
        ``limit`` of them, otherwise the last ``limit``. The candle containing ``now``
        is the forming one (closed minutes of its bucket plus the partial minute).
        Buckets without any 1m row (outages) are absent.
        """
        symbol = self._aliases.get(symbol, symbol)
        minute, partial = self.current(symbol, now)
        hi = now if end is None else min(end, now)
        if symbol not in self.index.days or (start is not None and start > hi):
            return _EMPTY
        first_day = self.index.first_day(symbol)
        last_day = min(self.index.last_day(symbol), day_start(hi))
        if interval in INTRADAY:
            first_unit, last_unit = first_day, last_day

            def build(unit: int) -> np.ndarray:
                return self._day_candles(symbol, interval, unit, minute, partial)

            def step(unit: int, forward: bool) -> int:
                return unit + DAY_MS if forward else unit - DAY_MS
        else:
            first_unit = bucket_start(first_day, interval)
            last_unit = bucket_start(last_day, interval)

            def build(unit: int) -> np.ndarray:
                return self._long_candle(symbol, interval, unit, minute, partial)

            def step(unit: int, forward: bool) -> int:
                return bucket_end(unit, interval) if forward else bucket_start(unit - 1, interval)

        return _collect(build, step, first_unit, last_unit, start, hi, limit, interval)

    def aggregate_range(self, symbol: str, start: int, end: int) -> Accumulator:
        """Aggregate of the 1m rows with ``start <= open_time < end`` (whole past days
        come from the daily-candle cache). The accumulator's interval is "1m" for times;
        callers only use its values."""
        acc = Accumulator(start, "1m")
        day = day_start(start)
        while day < end:
            if start <= day and day + DAY_MS <= end:
                for row in self._full_day(symbol, "1d", day):
                    acc.add(row)
            else:
                rows = self.closed_rows(symbol, max(start, day), min(end, day + DAY_MS))
                if rows.shape[0]:
                    acc.add(aggregate(rows, np.full(rows.shape[0], float(start)), "1m")[0])
            day += DAY_MS
        return acc


def _bucket_keys(rows: np.ndarray, interval: str) -> np.ndarray:
    times: np.ndarray = rows[:, OPEN_TIME]
    keys: np.ndarray = times - times % INTERVAL_MS[interval]
    return keys


def _collect(
    build: Callable[[int], np.ndarray],
    step: Callable[[int, bool], int],
    first_unit: int,
    last_unit: int,
    start: int | None,
    hi: int,
    limit: int,
    interval: str,
) -> np.ndarray:
    forward = start is not None
    unit = last_unit
    if start is not None:
        unit = max(first_unit, day_start(start) if interval in INTRADAY else bucket_start(start, interval))
    parts: list[np.ndarray] = []
    count = 0
    while first_unit <= unit <= last_unit and count < limit:
        candles = build(unit)
        if candles.shape[0]:
            times = candles[:, OPEN_TIME]
            keep = times <= hi
            if start is not None:
                keep &= times >= start
            candles = candles[keep]
            if candles.shape[0]:
                parts.append(candles)
                count += candles.shape[0]
        unit = step(unit, forward)
    if not parts:
        return _EMPTY
    if not forward:
        parts.reverse()
    rows = np.concatenate(parts)
    return rows[:limit] if forward else rows[-limit:]
