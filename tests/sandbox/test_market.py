"""Per-tick market data in a worker: pinned windows, results dropped at the next tick, bounded memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sandbox import MarketSpec, SandboxPool
from sandbox._market import TICKS_KEPT, MarketReader
from sandbox._helpers import wrap_helpers
from sandbox._segment import KlineSegment, TickerSegment
from sandbox_data import INTERVALS, SYMBOLS

MIN = 60_000


class AliasMarket:
    """Writable segments: the session's real windows repeated over ``slots`` symbol slots."""

    def __init__(self, windows: dict, slots: int, limit: int = 500) -> None:
        self.segs = {i: KlineSegment.create(slots, limit) for i in INTERVALS}
        self.tickers = TickerSegment.create(slots)
        self.symbols = []
        for slot in range(slots):
            base = SYMBOLS[slot % len(SYMBOLS)]
            for interval, seg in self.segs.items():
                seg.load(slot, windows[base, interval].T, last_closed=True)
            close = float(windows[base, "1m"][4, -1])
            self.tickers.write(slot, (close, close, close, close, 1.0, close, 0.0, 0.0, 0.0))
            self.symbols.append((f"S{slot}USDT", slot))
        self.spec = MarketSpec({i: s.spec for i, s in self.segs.items()}, self.tickers.spec)

    def append(self, interval: str, tick: int, closed: bool = True) -> None:
        """A new candle after the newest one of every slot (same values, moved close)."""
        seg = self.segs[interval]
        step = seg.read(0)[0, -1] - seg.read(0)[0, -2]
        for slot in range(seg.slots):
            row = seg.read(slot)[:, -1].copy()
            row[0] += step
            row[6] += step
            row[4] *= 1.0 + 0.003 * np.sin(tick + slot)
            row[2], row[3] = max(row[2], row[4]), min(row[3], row[4])
            seg.upsert(slot, row, closed=closed)

    def close(self) -> None:
        for seg in self.segs.values():
            seg.close()
        self.tickers.close()


@pytest.fixture
def alias(windows):
    m = AliasMarket(windows, 24)
    yield m
    m.close()


def test_a_new_tick_drops_the_old_results_but_not_its_candles(alias):
    reader = MarketReader(alias.spec)
    helpers = wrap_helpers()
    try:
        one = reader.tick(1)
        _, klines = one.inputs("S0USDT", 0, INTERVALS, False)
        closes = helpers["get_closes"](klines["1m"])
        rsi = helpers["get_latest_rsi"](klines["1m"], 14)
        snap = klines["1m"]._snap
        assert snap.memo and one.cache.used > 0
        alias.append("1m", 1, closed=False)  # the market moves on
        two = reader.tick(2)
        assert snap.memo == {} and one.cache.used == 0  # results dropped, memory returned
        _, later = two.inputs("S0USDT", 0, INTERVALS, False)
        assert len(later["1m"]) == len(klines["1m"]) and later["1m"][-2].close == closes[-1]
        # a late batch of tick 1 still sees tick 1's candles (pinned), and computes the same values
        again = reader.tick(1)
        assert again is one and one.revisited
        _, same = one.inputs("S0USDT", 0, INTERVALS, False)
        assert same is klines and helpers["get_closes"](same["1m"]) == closes
        assert helpers["get_latest_rsi"](same["1m"], 14) == rsi
        reader.tick(3)
        assert snap.memo != {}  # tick 1 was revisited: its results were kept ...
        reader.tick(4)
        assert 1 not in reader._ticks and len(reader._ticks) == TICKS_KEPT  # ... until it fell out
    finally:
        reader.forget_ticks()
        reader.close()


def test_the_budget_bounds_what_a_tick_keeps(alias):
    reader = MarketReader(alias.spec, cache_limit_mb=0)
    helpers = wrap_helpers()
    try:
        tick = reader.tick(1)
        for symbol, slot in alias.symbols:
            _, klines = tick.inputs(symbol, slot, INTERVALS, True)
            for _ in range(5):
                tick.cache.begin_batch()
                assert helpers["get_latest_rsi"](klines["1m"], 14) is not None
                assert len(helpers["get_macd"](klines["1h"])) == 3
            assert klines["1m"]._snap.memo == {}
        assert tick.cache.used == 0
    finally:
        reader.close()


MEMORY_FILTERS = [
    "def check_signal(symbol, ticker, klines):\n"
    f"    macd, signal, hist = get_macd(klines['1m'], {fast}, {slow}, 9)\n"
    "    closes = get_closes(klines['1m'])\n"
    "    highs = [c.high for c in klines['1m'][-60:]]\n"
    "    return hist[-1] is not None and closes[-1] > max(highs[:-1]) and hist[-1] > 0\n"
    for fast, slow in ((12, 26), (8, 21), (5, 35), (12, 26), (8, 21))
] + [
    "def check_signal(symbol, ticker, klines):\n"
    "    rows = list(klines['1h'][-100:])\n"
    "    obv = get_obv(klines['1h'])\n"
    f"    rsi = get_latest_rsi(klines['1m'], {period})\n"
    "    return rsi < 50 and rows[-1].close > rows[-2].close and obv[-1] > obv[-2]\n"
    for period in (7, 14, 21, 28)
]


CACHE_MB = 8
SLOTS = 100


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise AssertionError("no Pss line")


async def test_a_worker_memory_stays_bounded_across_many_ticks(windows):
    """Every tick moves the market and runs nine traders; the worker's PSS stops growing after warm-up."""
    market = AliasMarket(windows, SLOTS)
    try:
        async with SandboxPool(market.spec, workers=1, batch_timeout_s=30.0, cache_limit_mb=CACHE_MB) as pool:
            pid = pool.health()["pids"][0]
            try:
                start = _pss_kb(pid)
            except PermissionError:
                pytest.skip("the worker's /proc/PID/smaps_rollup is not readable (not root)")
            for i, code in enumerate(MEMORY_FILTERS):
                await pool.load(f"t{i}", code)
            samples = []
            for tick in range(24):
                closed = tick % 3 != 2
                market.append("1m", tick, closed=closed)
                if tick % 8 == 7:
                    market.append("1h", tick)
                for i in range(len(MEMORY_FILTERS)):
                    result = await pool.evaluate(f"t{i}", market.symbols, INTERVALS, closed_only=closed,
                                                 tick_id=tick)  # fmt: skip
                    assert result.outcome == "ok" and not result.errors and result.evaluated == SLOTS
                samples.append(_pss_kb(pid))
            assert pool.health()["pids"] == [pid]
    finally:
        market.close()
    warm, end = samples[3], samples[-1]
    assert max(samples[3:]) - warm < 2048, samples  # no growth past warm-up: < 2 MB over 20 ticks
    # one tick's cached results (the budget), its pinned windows and inputs, the touched market pages
    assert end - start < (CACHE_MB + 12) * 1024, (start, samples)
