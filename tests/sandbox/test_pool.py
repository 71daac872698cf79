"""SandboxPool with real worker processes: answers, limits, replacement, lifecycle."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest
import pytest_asyncio
import talib

from sandbox import BatchResult, FilterRejected, MarketSpec, SandboxPool, SandboxUnavailable, UnknownFilter
from sandbox._segment import KlineSegment, SegmentSpec, TickerSegment
from sandbox_data import BENIGN, INTERVALS, SYMBOLS

pytestmark = pytest.mark.asyncio(loop_scope="module")

LAST_CLOSE = """
def check_signal(symbol, ticker, klines):
    k = klines["1m"]
    print(len(k), k[-1].close)
    return k[-1].close > 100.0
"""
SPIN = "def check_signal(symbol, ticker, klines):\n    while True:\n        pass\n"


class SmallMarket:
    """A writable 1m market: 2 symbols, 50 closed candles, closes 99.x (below 100)."""

    def __init__(self, base: float = 99.0) -> None:
        self.seg = KlineSegment.create(2, 100)
        self.tickers = TickerSegment.create(2)
        n = 50
        t = np.arange(n, dtype=np.float64) * 60_000
        for slot in range(2):
            close = np.full(n, base + slot * 0.5)
            rows = np.column_stack([t, close, close, close, close, np.ones(n), t + 59_999, close,
                                    np.zeros(n), np.zeros(n), np.zeros(n)])  # fmt: skip
            self.seg.load(slot, rows, last_closed=True)
            self.tickers.write(slot, (base, base, base, base, 1.0, base, 0.0, 0.0, float(t[-1])))
        self.spec = MarketSpec({"1m": self.seg.spec}, self.tickers.spec)
        self.symbols = [("AAAUSDT", 0), ("BBBUSDT", 1)]

    def form(self, close: float) -> None:
        """Start a forming candle after the last closed one, with this close."""
        for slot in range(2):
            open_time = self.seg.newest(slot)[0] + 60_000
            row = (open_time, close, close, close, close, 1.0, open_time + 59_999, close, 0.0, 0.0, 0.0)
            self.seg.upsert(slot, row, closed=False)

    def close(self) -> None:
        self.seg.close()
        self.tickers.close()


@pytest.fixture(scope="module")
def small():
    m = SmallMarket()
    yield m
    m.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(market):
    async with SandboxPool(market.spec, workers=2, batch_timeout_s=1.0, memory_limit_mb=256) as p:
        await p.load("benign", BENIGN)
        yield p


async def evaluate(pool, market, filter_id="benign", tick_id=1, **kw) -> BatchResult:
    return await pool.evaluate(
        filter_id,
        market.symbols,
        kw.pop("intervals", INTERVALS),
        closed_only=kw.pop("closed_only", True),
        tick_id=tick_id,
        **kw,
    )


async def test_started_isolated_and_right(pool, market, benign_expected):
    health = pool.health()
    assert health["state"] == "running" and health["workers"] == 2 and health["alive"] == 2
    assert len(health["pids"]) == 2 and health["worker_start_ms"] > 0
    if os.geteuid() == 0:
        assert health["uid_dropped"] and health["uid"] == 65534 and health["network_isolated"]
    result = await evaluate(pool, market)
    assert result.outcome == "ok" and result.matches == benign_expected and not result.errors
    assert result.evaluated == len(SYMBOLS) and result.elapsed_ms > 0


async def test_concurrent_batches_of_several_traders(pool, market, windows, benign_expected):
    await pool.load(
        "macd", "def check_signal(s, t, k):\n    m, sig, h = get_latest_macd(k['1h'])\n    return m > sig\n"
    )
    expected_macd = set()
    for s in SYMBOLS:
        m, sig, _ = talib.MACD(windows[s, "1h"][4])
        if m[-1] > sig[-1]:
            expected_macd.add(s)
    results = await asyncio.gather(*(evaluate(pool, market, f, tick_id=7) for f in ["benign", "macd"] * 5))
    for i, r in enumerate(results):
        assert r.outcome == "ok" and not r.errors
        assert r.matches == (benign_expected if i % 2 == 0 else expected_macd)
    await pool.unload("macd")


async def test_batch_level_errors(pool, market):
    await pool.load("boom", "x = 1 / 0\ndef check_signal(s, t, k):\n    return True\n")
    result = await evaluate(pool, market, "boom")
    assert result.outcome == "error" and "ZeroDivisionError" in result.detail and "line 1" in result.detail
    result = await evaluate(pool, market, intervals=("1m", "4h"))
    assert result.outcome == "error" and "4h" in result.detail
    await pool.load("notfn", "def check_signal(s, t, k):\n    return True\ncheck_signal = 3\n")
    assert (await evaluate(pool, market, "notfn")).outcome == "error"


async def test_unknown_reloaded_and_rejected_filters(pool, market):
    with pytest.raises(UnknownFilter):
        await evaluate(pool, market, "never-loaded")
    await pool.load("flip", "def check_signal(s, t, k):\n    return True\n")
    assert (await evaluate(pool, market, "flip")).matches == frozenset(SYMBOLS)
    await pool.load("flip", "def check_signal(s, t, k):\n    return False\n")
    assert (await evaluate(pool, market, "flip")).matches == frozenset()
    with pytest.raises(FilterRejected):
        await pool.load("flip", "import os\ndef check_signal(s, t, k):\n    return True\n")
    assert (await evaluate(pool, market, "flip")).outcome == "ok"  # the previous version stays
    await pool.unload("flip")
    await pool.unload("flip")
    with pytest.raises(UnknownFilter):
        await evaluate(pool, market, "flip")


async def test_bad_arguments(pool, market):
    with pytest.raises(ValueError):
        await pool.evaluate("benign", market.symbols, INTERVALS, closed_only=True, tick_id="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await pool.evaluate("benign", [("X" * 40, 0)], INTERVALS, closed_only=True, tick_id=1)
    with pytest.raises(ValueError):
        await pool.evaluate("benign", [("BTCUSDT", 0)] * 1025, INTERVALS, closed_only=True, tick_id=1)
    result = await pool.evaluate("benign", [], INTERVALS, closed_only=True, tick_id=1)
    assert result.outcome == "ok" and result.evaluated == 0
    result = await pool.evaluate("benign", [("BTCUSDT", 0), ("NOPE", 9999)], INTERVALS, closed_only=True, tick_id=1)
    assert result.outcome == "ok" and "outside the market segments" in result.errors["NOPE"]


async def test_timeout_kills_and_replaces_the_worker(pool, market, benign_expected):
    before = pool.health()
    await pool.load("spin", SPIN)
    result = await evaluate(pool, market, "spin")
    assert result.outcome == "timeout" and "wall-clock" in result.detail
    assert 1000 <= result.elapsed_ms < 2500
    after = pool.health()
    assert after["timeouts"] == before["timeouts"] + 1 and after["restarts"] == before["restarts"] + 1
    for tick in (2, 3, 4):  # both the surviving and the fresh worker answer right
        assert (await evaluate(pool, market, tick_id=tick)).matches == benign_expected


async def test_a_crashed_worker_is_reported_and_replaced(market, benign_expected):
    async with SandboxPool(market.spec, workers=1, batch_timeout_s=10.0) as p:
        await p.load("slow", SPIN)
        await p.load("benign", BENIGN)
        pid = p.health()["pids"][0]
        task = asyncio.create_task(p.evaluate("slow", market.symbols, INTERVALS, closed_only=True, tick_id=1))
        while p.health()["idle"]:  # until the worker has been taken for the batch
            await asyncio.sleep(0)
        os.kill(pid, signal.SIGKILL)
        result = await asyncio.wait_for(task, 5)
        assert result.outcome == "crashed" and "SIGKILL" in result.detail
        assert p.health()["crashes"] == 1
        again = await p.evaluate("benign", market.symbols, INTERVALS, closed_only=True, tick_id=2)
        assert again.matches == benign_expected and p.health()["pids"] != [pid]


async def test_cpu_limit_is_a_timeout(market):
    async with SandboxPool(market.spec, workers=1, batch_timeout_s=10.0, cpu_limit_s=1) as p:
        await p.load("spin", SPIN)
        result = await p.evaluate("spin", market.symbols, INTERVALS, closed_only=True, tick_id=1)
        assert result.outcome == "timeout" and "CPU limit" in result.detail and result.elapsed_ms < 5000


async def test_closed_only_and_the_forming_candle(small):
    async with SandboxPool(small.spec, workers=1) as p:
        await p.load("last", LAST_CLOSE)
        small.form(150.0)
        closed = await p.evaluate("last", small.symbols, ["1m"], closed_only=True, tick_id=1, capture_print=True)
        forming = await p.evaluate("last", small.symbols, ["1m"], closed_only=False, tick_id=1, capture_print=True)
    assert closed.matches == frozenset() and closed.printed.splitlines() == ["50 99.0", "50 99.5"]
    assert forming.matches == {"AAAUSDT", "BBBUSDT"} and forming.printed.splitlines() == ["51 150.0", "51 150.0"]


async def test_one_tick_one_snapshot_and_set_market(small):
    other = SmallMarket(base=200.0)
    try:
        async with SandboxPool(small.spec, workers=1) as p:
            await p.load("last", LAST_CLOSE)
            small.form(50.0)
            first = await p.evaluate("last", small.symbols, ["1m"], closed_only=False, tick_id=5)
            small.form(300.0)
            same_tick = await p.evaluate("last", small.symbols, ["1m"], closed_only=False, tick_id=5)
            next_tick = await p.evaluate("last", small.symbols, ["1m"], closed_only=False, tick_id=6)
            assert first.matches == same_tick.matches == frozenset()
            assert next_tick.matches == {"AAAUSDT", "BBBUSDT"}
            pids = p.health()["pids"]
            await p.set_market(other.spec)
            switched = await p.evaluate("last", other.symbols, ["1m"], closed_only=True, tick_id=6)
            assert switched.matches == {"AAAUSDT", "BBBUSDT"} and p.health()["pids"] != pids
    finally:
        other.close()


COLUMNS = """
def check_signal(symbol, ticker, klines):
    k = klines["1m"]
    print(len(k), get_closes(k)[-1], sum(get_highs(k)), k[-2].close, get_latest_sma(k, 3))
    return True
"""


async def test_columns_read_later_in_a_tick_are_those_of_its_pinned_candles():
    """Columns are copied when a helper first needs them, yet always from the candles the tick pinned."""
    market = SmallMarket()
    try:
        async with SandboxPool(market.spec, workers=1) as p:
            await p.load("pin", "def check_signal(s, t, k):\n    return len(k['1m']) > 0\n")
            await p.load("columns", COLUMNS)
            market.form(120.0)
            assert (await p.evaluate("pin", market.symbols, ["1m"], closed_only=False, tick_id=1)).outcome == "ok"
            pinned = [market.seg.read(slot) for slot in range(2)]
            market.seg.upsert(0, (*pinned[0][:4, -1], 200.0, *pinned[0][5:, -1]), closed=True)  # in place
            for close in (130.0, 140.0, 150.0):
                market.form(close)
            same = await p.evaluate("columns", market.symbols, ["1m"], closed_only=False, tick_id=1,
                                    capture_print=True)  # fmt: skip
            after = await p.evaluate("columns", market.symbols, ["1m"], closed_only=False, tick_id=2,
                                     capture_print=True)  # fmt: skip
            for _ in range(market.seg.cap + 1):  # the ring turns over entirely within one tick
                market.form(160.0)
            cached = await p.evaluate("columns", market.symbols, ["1m"], closed_only=False, tick_id=2,
                                      capture_print=True)  # fmt: skip
            await p.load("lows", "def check_signal(s, t, k):\n    return get_lows(k['1m'])[-1] > 0\n")
            gone = await p.evaluate("lows", market.symbols, ["1m"], closed_only=False, tick_id=2)
    finally:
        market.close()
    for window, line in zip(pinned, same.printed.splitlines()):
        assert line.split() == [str(window.shape[1]), "120.0", str(sum(window[2].tolist())), str(window[4, -2]),
                                str(sum(window[4, -3:].tolist()) / 3)]  # fmt: skip
    assert [line.split()[:2] for line in after.printed.splitlines()] == [["54", "150.0"], ["54", "150.0"]]
    assert cached.printed == after.printed and not cached.errors  # what the tick computed stays valid
    assert gone.outcome == "ok" and set(gone.errors) == {"AAAUSDT", "BBBUSDT"}
    assert all("overwritten since the window was pinned" in text for text in gone.errors.values())


async def test_lifecycle(small):
    p = SandboxPool(small.spec, workers=1)
    await p.load("last", LAST_CLOSE)
    with pytest.raises(SandboxUnavailable):
        await p.evaluate("last", small.symbols, ["1m"], closed_only=True, tick_id=1)
    await p.start()
    await p.start()
    pid = p.health()["pids"][0]
    await p.stop()
    await p.stop()
    assert p.health()["state"] == "stopped" and p.health()["alive"] == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(SandboxUnavailable):
        await p.evaluate("last", small.symbols, ["1m"], closed_only=True, tick_id=1)
    with pytest.raises(SandboxUnavailable):
        await p.start()


async def test_no_worker_can_start():
    missing = MarketSpec({"1m": SegmentSpec("psm_no_such_segment", 2, 10)}, SegmentSpec("psm_no_such_ticker", 2))
    with pytest.raises(SandboxUnavailable, match="FileNotFoundError"):
        await SandboxPool(missing, workers=1).start()
