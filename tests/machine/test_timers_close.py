"""Candle-close ticks: once per candle, when all symbols closed, after a grace, never queued."""

from __future__ import annotations

import asyncio

from machine.timers import Timers


async def _collect(n: int, timers: Timers, key: str, symbols: frozenset[str], timeout: float = 5.0) -> list[int]:
    fired: list[int] = []
    done = asyncio.Event()

    async def on_close(open_time_ms: int) -> None:
        fired.append(open_time_ms)
        if len(fired) >= n:
            done.set()

    timers.add_close(key, "1m", symbols, on_close)
    return fired, done  # type: ignore[return-value]


async def test_fires_once_when_every_symbol_closed():
    timers = Timers(close_grace_s=30)
    timers.start()
    try:
        fired, done = await _collect(1, timers, "t", frozenset({"A", "B"}))
        timers.on_kline_closed("A", "1m", 60_000)
        timers.on_kline_closed("A", "1m", 60_000)  # duplicate close
        timers.on_kline_closed("B", "1h", 60_000)  # other interval
        assert timers.close_ticks == 0 and fired == []  # counted when a tick is scheduled: nothing was
        timers.on_kline_closed("B", "1m", 60_000)
        await asyncio.wait_for(done.wait(), 5)
        timers.on_kline_closed("B", "1m", 60_000)  # late duplicate after firing
        timers.on_kline_closed("Z", "1m", 120_000)  # not the trader's symbol
        assert timers.close_ticks == 1 and fired == [60_000]
    finally:
        timers.shutdown()


async def test_grace_fires_without_the_missing_symbol():
    timers = Timers(close_grace_s=0.2)
    timers.start()
    try:
        fired, done = await _collect(1, timers, "t", frozenset({"A", "B"}))
        timers.on_kline_closed("A", "1m", 60_000)
        await asyncio.wait_for(done.wait(), 5)
        assert fired == [60_000]
    finally:
        timers.shutdown()


async def test_a_later_close_completes_the_previous_candle():
    timers = Timers(close_grace_s=30)
    timers.start()
    try:
        fired, done = await _collect(2, timers, "t", frozenset({"A", "B"}))
        for t in (60_000, 120_000, 180_000):
            timers.on_kline_closed("A", "1m", t)
        await asyncio.wait_for(done.wait(), 5)
        assert timers.close_ticks == 2 and fired == [60_000, 120_000]  # 180_000 still waits for B
    finally:
        timers.shutdown()


async def test_pending_candles_are_coalesced_not_queued():
    timers = Timers(close_grace_s=30)
    timers.start()
    try:
        fired, done = await _collect(1, timers, "t", frozenset({"A", "B"}))
        timers.on_kline_closed("A", "1m", 120_000)
        timers.on_kline_closed("B", "1m", 60_000)  # out of order: two candles pending
        timers.on_kline_closed("A", "1m", 180_000)
        await asyncio.wait_for(done.wait(), 5)
        assert timers.close_ticks == 1 and fired == [120_000]  # one tick for the newest complete candle; 60_000 skipped
        assert timers.skipped == 1
    finally:
        timers.shutdown()
