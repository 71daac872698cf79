"""Kline rings in shared memory: layout, pinned windows read column by column, concurrent writer."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from sandbox._cache import TickCache
from sandbox._errors import WindowGone
from sandbox._segment import N_COLUMNS, SLACK, KlineSegment, SegmentSpec, TickerSegment
from sandbox._views import Snapshot

MIN = 60_000
LIMIT = 50


def row(t: int, version: int = 0) -> tuple[float, ...]:
    """A candle whose every column is a function of (t, version): torn or mixed reads show as mismatches."""
    c = t / MIN + version / 1000
    return (float(t), c, c, c, c, c, float(t + MIN - 1), c, float(version), c, c)


def rows(first: int, n: int) -> np.ndarray:
    return np.array([row((first + i) * MIN) for i in range(n)])


@pytest.fixture
def seg():
    s = KlineSegment.create(2, LIMIT)
    yield s
    s.close()


def test_size_is_limit_plus_slack():
    assert KlineSegment.nbytes(400, 500) == 400 * 4 * 8 + 400 * 11 * (500 + SLACK) * 8
    assert SLACK >= 16


def test_the_ring_keeps_the_newest_limit_candles_across_many_wraps(seg):
    seg.load(0, rows(0, 10), last_closed=True)
    for i in range(10, 10 + 5 * (LIMIT + SLACK)):
        assert seg.upsert(0, row(i * MIN), closed=True)
        window = seg.read(0)
        n = min(i + 1, LIMIT)
        assert window.shape == (N_COLUMNS, n)
        assert np.array_equal(window[0], np.arange(i + 1 - n, i + 1) * float(MIN))
    assert seg.count(0) == LIMIT and seg.newest(0) == (float(i * MIN), True)
    assert not seg.upsert(0, row((i - 1) * MIN), closed=True)  # older than the newest: dropped
    assert seg.count(1) == 0 and seg.read(1).shape == (N_COLUMNS, 0) and seg.newest(1) is None


def test_a_pinned_window_reads_the_same_candles_however_the_writer_moves(seg):
    seg.load(0, rows(0, LIMIT), last_closed=False)  # the newest candle is forming
    start, stop, newest = seg.window(0)
    closed = seg.window(0, closed_only=True)
    assert stop - start == LIMIT and newest == row((LIMIT - 1) * MIN)
    assert closed[1] == stop - 1 and closed[2] == row((LIMIT - 2) * MIN)
    before = seg.read(0)
    seg.upsert(0, row((LIMIT - 1) * MIN, version=7), closed=True)  # the forming candle changes, then closes
    for i in range(LIMIT, LIMIT + SLACK - 1):  # and more candles arrive, the ring wraps
        seg.upsert(0, row(i * MIN), closed=True)
    for column in range(N_COLUMNS):
        got = seg.copy(0, start, stop - 1, column)
        assert np.array_equal(got, before[column, :-1])
    assert np.array_equal(seg.copy(0, start + 10, start + 20), before[:, 10:20])
    assert seg.read(0)[8, -SLACK] == 7.0  # the store itself sees the update


def test_a_window_overwritten_since_it_was_pinned_is_gone(seg):
    seg.load(0, rows(0, LIMIT), last_closed=True)
    start, stop, _ = seg.window(0)
    for i in range(LIMIT, LIMIT + SLACK):
        seg.upsert(0, row(i * MIN), closed=True)
    assert seg.copy(0, start, stop - 1, 4).shape == (LIMIT - 1,)  # still intact after SLACK appends
    seg.upsert(0, row((LIMIT + SLACK) * MIN), closed=True)
    with pytest.raises(WindowGone):
        seg.copy(0, start, stop - 1, 4)
    start, stop, _ = seg.window(0)
    seg.load(0, rows(1000, 5), last_closed=True)  # a backfill replaces the candles
    with pytest.raises(WindowGone):
        seg.copy(0, start, stop, 4)
    start, stop, newest = seg.window(0)
    assert stop - start == 5 and newest == row(1004 * MIN)
    assert np.array_equal(seg.copy(0, start, stop)[0], np.arange(1000, 1005) * float(MIN))


def test_readers_map_the_segments_read_only(seg):
    seg.load(0, rows(0, 3), last_closed=True)
    tickers = TickerSegment.create(2)
    reader, ticker_reader = KlineSegment.attach(seg.spec), TickerSegment.attach(tickers.spec)
    try:
        assert np.array_equal(reader.read(0), seg.read(0))
        with pytest.raises(ValueError, match="read-only"):
            reader.data[0, 4, 0] = 1.0
        with pytest.raises(ValueError, match="read-only"):
            reader.upsert(0, row(3 * MIN), closed=True)
        with pytest.raises(ValueError, match="read-only"):
            ticker_reader.write(0, (1.0,) * 9)
        assert ticker_reader.read(0) is None
    finally:
        reader.close()
        ticker_reader.close()
        tickers.close()
    with pytest.raises(FileNotFoundError):
        KlineSegment.attach(SegmentSpec("psm_never_created_here", 1, 2))


def _writer(name: str, updates: int, go, done) -> None:
    """Child process: the store's side, hammering one slot with in-place updates and appends."""
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(name=name)  # registered with the test's resource tracker: a no-op
    seg = KlineSegment(shm, 2, LIMIT, owner=False)
    try:
        go.wait(30)
        t = LIMIT - 1
        for i in range(updates):
            if i % 50 == 0:
                t += 1  # a new candle every 50 updates: the ring wraps many times
            seg.upsert(0, row(t * MIN, version=i % 997), closed=i % 50 == 49)
    finally:
        done.set()
        del seg.meta, seg.data
        seg._shm.close()


def test_concurrent_writer_never_gives_torn_or_mixed_columns(seg):
    """Snapshots pinned and read column by column while another process writes agree with themselves."""
    seg.load(0, rows(0, LIMIT), last_closed=True)
    ctx = multiprocessing.get_context("spawn")
    go, done = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=_writer, args=(seg.spec.name, 200_000, go, done))
    writer.start()
    cache = TickCache(1 << 20)
    try:
        reads = while_writing = gone = 0
        while not done.is_set() or reads < 50:
            snap = Snapshot.pin(seg, 0, False, cache, "1m")
            go.set()
            try:
                cols = [snap.column(c) for c in range(N_COLUMNS)]
            except WindowGone:  # the writer appended more than SLACK candles meanwhile
                gone += 1
                continue
            reads += 1
            while_writing += not done.is_set()
            t, version = cols[0], cols[8]
            assert len(t) == LIMIT and np.all(np.diff(t) == MIN)
            expected = t / MIN + version / 1000
            for c in (1, 2, 3, 4, 5, 7, 9, 10):
                assert np.array_equal(cols[c], expected), "a torn or mixed candle"
            assert np.array_equal(cols[6], t + MIN - 1)
            last = [c[-1] for c in cols]
            assert snap.row(LIMIT - 1) == tuple(int(x) if i in (0, 6, 8) else x for i, x in enumerate(last))
        assert reads >= 50 and while_writing >= 1
    finally:
        writer.join(30)
    assert writer.exitcode == 0
