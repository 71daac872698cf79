"""Per-tick result cache: small results kept, large ones only on demand, everything within a budget."""

from __future__ import annotations

import numpy as np

from sandbox._cache import ADMIT_BATCHES, MEMO_MAX_ENTRIES, RECENT_MAX, Big, TickCache, estimate, is_small
from sandbox._helpers import wrap_helpers
from sandbox._views import Candles, Snapshot

SERIES = tuple(float(i) for i in range(500))


def window(cache: TickCache, n: int = 300) -> Candles:
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    t = np.arange(n, dtype=np.float64) * 60_000
    array = np.vstack([t, close, close * 1.01, close * 0.99, close, np.full(n, 2.0), t + 59_999, close * 2,
                       np.zeros(n), np.zeros(n), np.zeros(n)])  # fmt: skip
    return Candles(Snapshot(array, cache=cache, kind=("1m", True)))


def test_sizes_and_small_values():
    assert estimate(1.5) == 32 and estimate(SERIES) == 56 + 40 * 500
    assert estimate((SERIES, SERIES)) == 56 + 16 + 2 * estimate(SERIES)
    assert is_small(None) and is_small(1.0) and is_small((1.0, 2.0, 3.0))
    assert not is_small(SERIES) and not is_small(((1.0,), (2.0,)))


def test_large_results_are_kept_once_enough_batches_ask_for_them():
    demand: dict = {}
    cache = TickCache(1 << 30, demand)
    memo: dict = {}
    for batch in range(1, ADMIT_BATCHES):
        cache.begin_batch()
        for _ in range(3):  # several requests in one batch count once
            cache.offer(memo, "1m", "closes", SERIES)
        assert memo == {}, f"kept after {batch} batches"
    cache.begin_batch()
    cache.offer(memo, "1m", "closes", SERIES)
    entry = memo["closes"]
    assert type(entry) is Big and entry.value is SERIES and entry.rec[1] == ADMIT_BATCHES
    cache.begin_batch()
    cache.hit(entry.rec)
    cache.hit(entry.rec)
    assert entry.rec[1] == ADMIT_BATCHES + 1
    cache.finish()
    assert demand == {("1m", "closes"): ADMIT_BATCHES + 1}
    following = TickCache(1 << 30, demand)  # the next tick keeps it at the first request
    memo = {}
    following.begin_batch()
    following.offer(memo, "1m", "closes", SERIES)
    assert type(memo["closes"]) is Big
    other = {}
    following.offer(other, "1h", "closes", SERIES)  # demand is per (interval, closed_only) kind
    assert other == {}


def test_small_results_are_kept_at_once_and_the_budget_bounds_everything():
    cache = TickCache(10 * (64 + 32), {})
    memo: dict = {}
    for i in range(20):
        cache.offer(memo, "1m", ("rsi", i), float(i))
    assert len(memo) == 10 and cache.used == 10 * (64 + 32)
    cache.drop()
    assert cache.used == 0
    memo = {}
    for i in range(MEMO_MAX_ENTRIES + 5):
        TickCache(1 << 30).keep(memo, i, 1.0, 32)
    assert len(memo) == MEMO_MAX_ENTRIES


def test_a_series_helper_through_the_tick_cache(monkeypatch):
    """In a worker: a series is computed per symbol for each of the first batches, then kept and shared."""
    import talib

    calls = []
    real = talib.MACD
    monkeypatch.setattr(talib, "MACD", lambda *a: calls.append(1) or real(*a))
    helpers = wrap_helpers()
    cache = TickCache(1 << 30, {})
    symbols = [window(cache) for _ in range(2 * RECENT_MAX)]
    results, per_batch = [], []
    for _ in range(ADMIT_BATCHES + 3):
        cache.begin_batch()
        before = len(calls)
        for k in symbols:
            results.append(helpers["get_macd"](k, 12, 26, 9))
            assert helpers["get_macd"](k, 12, 26, 9) is results[-1]  # the same filter call again: recalled
        per_batch.append(len(calls) - before)
    assert per_batch[0] == len(symbols) and per_batch[-3:] == [0, 0, 0]
    assert sum(per_batch) <= (ADMIT_BATCHES + 1) * len(symbols)
    assert all(r == results[0] for r in results) and results[-1] is results[-1 - len(symbols)]
    assert helpers["get_latest_macd"](symbols[0], 12, 26, 9) == tuple(s[-1] for s in results[0])
    assert sum(per_batch) == len(calls)  # the latest value came from the kept series


def test_over_budget_nothing_is_kept_and_values_are_the_same():
    cache = TickCache(0, {})
    helpers = wrap_helpers()
    k = window(cache)
    first = helpers["get_closes"](k)
    assert first == tuple(c.close for c in k) and helpers["get_latest_rsi"](k) is not None
    assert k._snap.memo == {} and cache.used == 0
    assert helpers["get_closes"](k) is first  # one of the few recent results, outside the budget
    cache.drop()
    again = helpers["get_closes"](k)
    assert again == first and again is not first
