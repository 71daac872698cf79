"""What a worker keeps of one tick's results: a byte budget and demand-based admission.

Helper results and candle rows are cached per window (``Snapshot.memo``) so that
traders after the first one get them for free ("Shared work across traders",
issue 4). Caching costs memory, so a :class:`TickCache` (one per tick, shared by
all the tick's windows) decides what is kept:

* **small** results (a float, ``None``, a tuple of at most :data:`SMALL_ITEMS`
  values, one candle) are kept while the budget lasts: a few dozen bytes each,
  and recomputing them would mean TA-Lib again;
* **large** results (series tuples such as ``get_macd`` or ``get_closes``: about
  20 KiB per 500 values as Python floats; rows of many candles) are kept only
  when their *demand* is at least :data:`ADMIT_BATCHES`: the number of batches
  (traders) that asked for that (interval, closed_only, helper, arguments) in
  the current tick so far, or in the latest tick that asked for it. Below that,
  building the tuple again for the one or two other traders costs a few
  microseconds per symbol, less than keeping ~8 MB per 400 symbols alive. The
  last few large results not kept (:data:`RECENT_MAX`) are remembered per window
  so that a filter asking twice for the same series of one symbol gets it once;
* nothing is kept past ``limit_bytes`` for the tick (estimated sizes: CPython
  objects, pymalloc's 16-byte granularity) or past :data:`MEMO_MAX_ENTRIES` per
  window, so no filter can fill the worker's memory for the traders after it.

Results are immutable values, so whether a value came from the cache or was
computed for this call cannot change what a filter sees.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "ADMIT_BATCHES",
    "MEMO_MAX_ENTRIES",
    "RECENT_MAX",
    "SMALL_ITEMS",
    "Big",
    "TickCache",
    "estimate",
    "is_small",
]

ADMIT_BATCHES: Final = 4
"""A large result is kept when at least this many batches of a tick ask for it (3+ reuses)."""
SMALL_ITEMS: Final = 16
"""Tuples up to this length (of plain values) count as small."""
MEMO_MAX_ENTRIES: Final = 512
"""Cached results per window and tick; past this a filter's calls are computed but not kept."""
RECENT_MAX: Final = 8
"""Large results not admitted but remembered for a repeated call on the same window."""
_ENTRY_BYTES: Final = 64  # dict slot and key share of one memo entry
_DEMAND_MAX_KEYS: Final = 4096


def estimate(value: Any) -> int:
    """Approximate bytes a result keeps alive (tuples of floats: 56 + 40 per item)."""
    kind = type(value)
    if kind is float:
        return 32
    if isinstance(value, tuple):
        n = len(value)
        if n and isinstance(value[0], tuple):
            return 56 + 8 * n + sum(map(estimate, value))
        return 56 + 40 * n
    return 16


def is_small(value: Any) -> bool:
    """True for a value that is cheap to keep (see module doc)."""
    if not isinstance(value, tuple):
        return True
    return len(value) <= SMALL_ITEMS and not (value and isinstance(value[0], tuple))


class Big:
    """A kept large result in a window's memo, with its class's demand record.

    ``rec`` is ``[last batch counted, batches]``, shared by every window's entry of
    the same (kind, key), so a cache hit counts demand without hashing anything.
    """

    __slots__ = ("rec", "value")

    def __init__(self, value: Any, rec: list[int]) -> None:
        self.value = value
        self.rec = rec


class TickCache:
    """Budget, admission and demand counts of one tick (see module doc).

    Args:
        limit_bytes: most bytes of results kept for the tick.
        demand: the worker's demand per class from earlier ticks (updated by
            :meth:`finish`); None for a standalone cache that keeps every result.

    Attributes:
        batch: number of the current batch (:meth:`begin_batch`).
        used: estimated bytes kept.
    """

    __slots__ = ("batch", "demand", "keys", "limit", "used", "_classes", "_recent")

    def __init__(self, limit_bytes: int, demand: dict[Any, int] | None = None) -> None:
        self.limit = limit_bytes
        self.used = 0
        self.batch = 0
        self.demand = demand
        self.keys: dict[Any, Any] = {}
        self._classes: dict[Any, list[int]] = {}
        self._recent: dict[Any, Any] = {}

    def begin_batch(self) -> None:
        """A new batch (trader) starts: each class it asks for counts once more."""
        self.batch += 1

    def hit(self, rec: list[int]) -> None:
        """Count a request of the class of ``rec`` in the current batch (once per batch)."""
        if rec[0] != self.batch:
            rec[0] = self.batch
            rec[1] += 1

    def record(self, kind: Any, key: Any) -> list[int]:
        """The demand record of class ``(kind, key)``, counted for the current batch."""
        ck = (kind, key)
        rec = self._classes.get(ck)
        if rec is None:
            rec = self._classes[ck] = [self.batch, 1]
        elif rec[0] != self.batch:
            rec[0] = self.batch
            rec[1] += 1
        return rec

    def admitted(self, kind: Any, key: Any, rec: list[int]) -> bool:
        """Whether a large result of this class is worth keeping (module doc)."""
        if self.demand is None or rec[1] >= ADMIT_BATCHES:
            return True
        return self.demand.get((kind, key), 0) >= ADMIT_BATCHES

    def keep(self, memo: dict[Any, Any], key: Any, value: Any, size: int) -> bool:
        """Store ``value`` under ``key`` in a window's memo if the budget allows it; True if stored."""
        size += _ENTRY_BYTES
        if len(memo) >= MEMO_MAX_ENTRIES or self.used + size > self.limit:
            return False
        self.used += size
        memo[self.keys.setdefault(key, key)] = value
        return True

    def offer(
        self, memo: dict[Any, Any], kind: Any, key: Any, value: Any, alias: Any = None, owner: Any = None
    ) -> None:
        """Keep a freshly computed result (small: budget permitting; large: when admitted).

        ``alias``: a second key for the same entry (an argument spelling), at no extra size.
        ``owner``: the window (snapshot) ``memo`` belongs to; a large result that is not
        admitted is remembered for it among the last :data:`RECENT_MAX` (:meth:`recall`),
        so a filter asking twice for the same series of the same symbol gets it once.
        """
        if is_small(value):
            if self.keep(memo, key, value, estimate(value)) and alias is not None:
                self.keep(memo, alias, value, 0)
            return
        rec = self.record(kind, key)
        if self.admitted(kind, key, rec):
            entry = Big(value, rec)
            if self.keep(memo, key, entry, estimate(value)):
                if alias is not None:
                    self.keep(memo, alias, entry, 0)
                return
        if owner is not None:
            if len(self._recent) >= RECENT_MAX:
                self._recent.clear()
            self._recent[owner, key] = value

    def recall(self, owner: Any, key: Any) -> Any:
        """A large result recently computed (and not admitted) for window ``owner``, or None."""
        return self._recent.get((owner, key))

    def finish(self) -> None:
        """The tick is over (for now): remember its demand for the next ticks."""
        if self.demand is None:
            return
        if len(self.demand) + len(self._classes) > _DEMAND_MAX_KEYS:
            self.demand.clear()
        for ck, rec in self._classes.items():
            self.demand[ck] = rec[1]

    def drop(self) -> None:
        """The tick's results are gone: reset the budget (demand counts stay)."""
        self.used = 0
        self.keys = {}
        self._recent = {}
