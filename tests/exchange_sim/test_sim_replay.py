"""The replay loop: tick schedule, closing ticks never skipped, updates per minute."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp
import orjson
import pytest
from sim_cases import T0

from exchange_sim import Simulator
from exchange_sim._files import ReplayIndex
from exchange_sim._history import MarketHistory
from exchange_sim._replay import ReplayClock, Replayer
from exchange_sim._ticker import TickerCalculator
from exchange_sim._ws import StreamHub


def _replayer(binance_data: Path, updates: int) -> Replayer:
    history = MarketHistory(ReplayIndex.scan(binance_data))
    return Replayer(
        history,
        TickerCalculator(history),
        StreamHub(["BTCUSDT"]),
        ReplayClock(T0, 60),
        ["BTCUSDT"],
        updates_per_minute=updates,
    )


@pytest.mark.parametrize(
    ("updates", "offsets"),
    [
        (0, [60_000, 120_000]),
        (2, [20_000, 40_000, 60_000, 80_000]),
        (5, [10_000, 20_000, 30_000, 40_000, 50_000, 60_000]),
    ],
)
def test_tick_schedule(binance_data: Path, updates: int, offsets: list[int]) -> None:
    replayer = _replayer(binance_data, updates)
    ticks, t = [], T0
    for _ in offsets:
        t = replayer._next_tick(t)
        ticks.append(t - T0)
    assert ticks == offsets
    assert replayer._next_tick(T0 + 5) == T0 + offsets[0]


async def _one_minute_events(sim: Simulator, closed: int) -> list[dict]:
    """``ethusdt@kline_1m`` events until ``closed`` closing updates arrived."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(sim.ws_url + "/ws/ethusdt@kline_1m") as ws:
            events: list[dict] = []
            async with asyncio.timeout(15):
                while sum(e["k"]["x"] for e in events) < closed:
                    events.append(orjson.loads((await ws.receive()).data))
    return events


async def test_closing_ticks_are_never_skipped_when_behind(binance_data: Path) -> None:
    # 1e6: ~16,700 replay minutes per wall second, far more than the loop can emit.
    async with Simulator(binance_data, speed=1e6, symbols=["ETHUSDT"], start_ms=T0 + 60_000) as sim:
        events = await _one_minute_events(sim, 200)
        assert sim.stats["skipped_ticks"] > 0
    starts = [e["k"]["t"] for e in events if e["k"]["x"]]
    assert len(starts) == 200
    assert all(b - a == 60_000 for a, b in itertools.pairwise(starts))


async def test_updates_per_minute_sets_the_in_progress_cadence(binance_data: Path) -> None:
    async with Simulator(binance_data, speed=600, symbols=["ETHUSDT"], start_ms=T0, updates_per_minute=5) as sim:
        events = await _one_minute_events(sim, 2)
    first_minute = [e for e in events if e["k"]["t"] == T0 + 60_000]
    assert [e["E"] - (T0 + 60_000) for e in first_minute] == [10_000, 20_000, 30_000, 40_000, 50_000, 60_000]
    assert [e["k"]["x"] for e in first_minute] == [False] * 5 + [True]
