"""The latency book: stage marks of an entry and the arrival of the closed kline it started from."""

from __future__ import annotations

import time

import pytest

from machine.latency import ENTRY_STAGES, LatencyBook, TickTiming
from machine.latency._book import percentile


def test_percentile_is_nearest_rank():
    samples = list(range(1, 101))  # 1..100
    assert (percentile(samples, 50), percentile(samples, 99), percentile(samples, 100)) == (50, 99, 100)
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2  # unordered input


def test_an_entry_is_traced_from_its_own_candles_arrival_and_its_stages_add_up():
    book = LatencyBook()
    book.on_kline_closed("BTCUSDT", "1m", 60_000)
    arrived = time.perf_counter()
    tick = TickTiming(arrived + 0.010, arrived + 0.015)
    assert book.entry("t", "BTCUSDT", "1m", 0, tick) is None  # an older candle: its arrival is gone
    assert book.entry("t", "BTCUSDT", "5m", 60_000, tick) is None  # another interval
    assert book.entry("t", "ETHUSDT", "1m", 60_000, tick) is None
    trace = book.entry("t", "BTCUSDT", "1m", 60_000, tick)
    assert trace is not None
    trace.mark("signal")
    assert trace.stages_ms() is None  # not filled yet: no sample
    trace.mark("analysed")
    trace.filled()
    stages = trace.stages_ms()
    assert stages is not None and set(stages) == set(ENTRY_STAGES)
    assert stages["wait"] == pytest.approx(10, abs=1.5) and stages["screen"] == pytest.approx(5, abs=0.01)
    parts = sum(v for k, v in stages.items() if k != "total")
    assert parts == pytest.approx(stages["total"], abs=1e-6)
    gauges = book.gauges()
    assert gauges["latency_entry_total_p50_ms"] == gauges["latency_entry_total_p99_ms"] == round(stages["total"], 3)
    assert {f"latency_entry_{s}_p99_ms" for s in ENTRY_STAGES} <= set(gauges)


def test_the_book_keeps_only_the_newest_samples():
    book = LatencyBook(keep=3)
    for ms in (1000.0, 1.0, 2.0, 3.0):
        book.record_exit("t", "BTCUSDT", "stop_loss", time.perf_counter() - ms / 1000)
    assert book.gauges()["latency_exit_stop_loss_p99_ms"] < 100  # the 1 s sample was pushed out
