"""MarketFeed end to end on the simulator: backfill, live updates, closes, reloads, reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import numpy as np
import orjson
import pytest

from exchange_sim import Simulator
from exchange_sim._candles import rest_kline  # the endpoint's own row formatting
from machine.market import BinanceRest, KlineEvent, MarketFeed, klines_to_array
from machine.store import MarketStore, UnknownSymbol

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]


class ObservedStore(MarketStore):
    """The real store, plus a record of every applied kline update (for waiting on them)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.applied: list[tuple[KlineEvent, np.ndarray]] = []
        self.changed = asyncio.Event()

    def apply_kline(self, event) -> bool:
        ok = super().apply_kline(event)
        if ok:
            self.applied.append((event, self.klines(event.symbol, event.interval)[:, -1].copy()))
            self.changed.set()
        return ok

    async def wait_for(self, predicate, timeout_s: float = 10.0) -> tuple[KlineEvent, np.ndarray]:
        seen = 0
        async with asyncio.timeout(timeout_s):
            while True:
                for item in self.applied[seen:]:
                    if predicate(item[0]):
                        return item
                seen = len(self.applied)
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def sim(binance_data) -> AsyncIterator[Simulator]:
    s = Simulator(binance_data / "spot" / "1m", speed=60, symbols=SYMBOLS)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def rest(sim) -> AsyncIterator[BinanceRest]:
    client = BinanceRest(sim.rest_url)
    yield client
    await client.close()


async def rest_klines(sim: Simulator, symbol: str, interval: str, **params: int) -> np.ndarray:
    query = {"symbol": symbol, "interval": interval, **{k: str(v) for k, v in params.items()}}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.rest_url}/api/v3/klines", params=query) as resp:
            return klines_to_array(await resp.json())


def rest_answer_at(sim: Simulator, symbol: str, interval: str, now_ms: int) -> np.ndarray:
    """What GET /api/v3/klines returned for the newest candle at replay time ``now_ms``."""
    rows = sim.history.klines(symbol, interval, now_ms, limit=1)
    return klines_to_array(orjson.loads(orjson.dumps([rest_kline(r) for r in rows])))[-1]


async def test_backfill_then_stream_updates_match_the_rest_endpoint(sim, rest):
    universe = [s.symbol for s in await rest.exchange_symbols()]
    store = ObservedStore(universe, limit=200)
    closes: list[tuple[str, str, int]] = []
    store.add_close_listener(lambda *a: closes.append(a))
    feed = MarketFeed(rest, sim.ws_url, store)
    pairs = {("BTCUSDT", "1m"), ("BTCUSDT", "5m"), ("ETHUSDT", "1m")}
    try:
        with pytest.raises(UnknownSymbol):
            await feed.start({("DOGEUSDT", "1m")}, [])
        report = await feed.start(pairs, ["BTCUSDT", "ETHUSDT"])
        assert sorted(report.loaded) == sorted(pairs) and not report.failed and feed.ready

        # backfill: the closed candles equal the REST answer
        for symbol, interval in pairs:
            stored = store.klines(symbol, interval, closed_only=True)
            want = await rest_klines(sim, symbol, interval, limit=200)
            assert stored.shape[1] >= 190
            common, i, j = np.intersect1d(stored[0], want[:-1, 0], return_indices=True)
            assert len(common) >= 190
            assert np.array_equal(stored[:, i], want[j].T)

        # a forming update equals the REST answer for that candle at the event's time
        event, newest = await store.wait_for(lambda e: e.symbol == "BTCUSDT" and e.interval == "1m" and not e.closed)
        assert np.array_equal(newest, rest_answer_at(sim, "BTCUSDT", "1m", event.event_time_ms))
        event5, newest5 = await store.wait_for(lambda e: e.interval == "5m" and not e.closed)
        assert np.array_equal(newest5, rest_answer_at(sim, "BTCUSDT", "5m", event5.event_time_ms))
        assert store.last_price("BTCUSDT") is not None

        # then its closing update equals what REST returns for it afterwards
        t = event.open_time_ms
        closed, row = await store.wait_for(lambda e: e.symbol == "BTCUSDT" and e.interval == "1m" and e.closed
                                           and e.open_time_ms == t)  # fmt: skip
        after = await rest_klines(sim, "BTCUSDT", "1m", startTime=t, limit=1)
        assert after.shape == (1, 11) and np.array_equal(row, after[0])
        assert store.newest_kline("BTCUSDT", "1m")[0] >= t
        assert closes.count(("BTCUSDT", "1m", t)) == 1

        stats = feed.stats()
        assert stats.ready and stats.connected and stats.connections == 1 and stats.streams == 5
        assert stats.messages > 0 and stats.malformed == 0 and stats.backfilled == 3
        assert stats.newest_kline_age_s is not None and stats.newest_kline_age_s < 10
        assert stats.rest["used_weight_1m"] is not None

        # a reload backfills only the new pair
        requests = rest.requests
        report = await feed.update(pairs | {("BNBUSDT", "15m")}, ["BTCUSDT"])
        assert report.loaded == (("BNBUSDT", "15m"),)
        assert rest.requests == requests + 2  # server time + one klines page
        assert store.klines("BNBUSDT", "15m").shape[1] == 200
        assert feed.stream is not None and len(feed.stream.streams) == 5
        await store.wait_for(lambda e: e.symbol == "BNBUSDT" and e.interval == "15m")
    finally:
        await feed.stop()
        await feed.stop()
        store.close()


async def test_reconnect_backfills_the_pairs_of_the_dropped_connection(binance_data):
    sim = Simulator(binance_data / "spot" / "1m", speed=60, symbols=["BTCUSDT"])
    await sim.start()
    port = sim.port
    rest = BinanceRest(sim.rest_url)
    store = ObservedStore(["BTCUSDT"], limit=100)
    feed = MarketFeed(rest, sim.ws_url, store)
    sim2: Simulator | None = None
    try:
        await feed.start({("BTCUSDT", "1m")}, ["BTCUSDT"])
        assert feed.stats().backfilled == 1
        resume_ms = sim.now_ms() + 5 * 60_000  # candles close while the connection is down
        await sim.stop()
        assert feed.stream is not None
        await feed.stream.wait_until(lambda s: s.disconnects >= 1, 10)
        sim2 = Simulator(binance_data / "spot" / "1m", speed=60, symbols=["BTCUSDT"], port=port, start_ms=resume_ms)
        await sim2.start()
        await feed.stream.wait_until(lambda s: s.reconnects >= 1 and s.connected, 15)
        await store.wait_for(lambda e: e.event_time_ms >= resume_ms)
        async with asyncio.timeout(10):
            while feed.stats().backfilled < 2:  # the backfill runs as a feed task after the reconnect
                store.changed.clear()
                await store.changed.wait()
        window = store.klines("BTCUSDT", "1m")
        assert np.all(np.diff(window[0]) == 60_000), "a gap was left after the reconnect"
        assert window[0, -1] >= resume_ms - 60_000
    finally:
        await feed.stop()
        await rest.close()
        store.close()
        if sim2 is not None:
            await sim2.stop()


async def test_every_replayed_symbol_over_several_connections(binance_data):
    sim = Simulator(binance_data / "spot" / "1m", speed=60)
    await sim.start()
    rest = BinanceRest(sim.rest_url)
    try:
        universe = [s.symbol for s in await rest.exchange_symbols()]
        assert len(universe) >= 90
        store = ObservedStore(universe, limit=100)
        feed = MarketFeed(rest, sim.ws_url, store)
        try:
            pairs = {(s, i) for s in universe for i in ("1m", "5m")}
            report = await feed.start(pairs, universe)
            assert len(report.loaded) == len(pairs) and not report.failed
            assert feed.stream is not None
            assert [len(c) for c in feed.stream.connections] == [200, 3 * len(universe) - 200]
            # updates arrive from streams on both connections
            first, last = feed.stream.connections[0][0], feed.stream.connections[-1][-1]
            assert first.endswith("@kline_1m") and last.endswith("@ticker")
            sym_first = first.split("@")[0].upper()
            await store.wait_for(lambda e: e.symbol == sym_first and e.interval == "1m")
            sym_last = last.split("@")[0].upper()
            async with asyncio.timeout(10):
                while store.ticker(sym_last) is None:
                    store.changed.clear()
                    await store.changed.wait()
            assert feed.stats().connected and feed.stats().malformed == 0
        finally:
            await feed.stop()
            store.close()
    finally:
        await rest.close()
        await sim.stop()
