"""The screener's failure counting with the real sandbox pool on real klines: a tick where every
symbol errored counts, a good tick resets the count, three in a row break the trader, a pool
that is down is not the trader's fault, and a tick due while one runs is skipped, not queued."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from machine.screener import Screener, TraderRuntime
from machine.screener._screener import MAX_CONSECUTIVE_FAILURES
from machine.traders import Risk, TraderConfig
from sandbox import SandboxPool
from sandbox._check import load_replay_market

SYMBOLS = ["BTCUSDT", "ETHUSDT", "DOGEUSDT"]
FLAKY = """
def check_signal(symbol, ticker, klines):
    if len(klines["1m"]) and FAIL:
        raise ValueError("boom on " + symbol)
    return True
"""


def config(code: str) -> TraderConfig:
    return TraderConfig(uuid.uuid4(), uuid.uuid4(), "t", code, "", ("1m",), "1m_close", "5m", None, "paper",
                        Risk(Decimal(2), Decimal(4), Decimal(10), 3), "active", 1)


@pytest.fixture(scope="module")
def market(binance_data):
    m = load_replay_market(binance_data, SYMBOLS, ["1m"], 200)
    yield m
    m.close()


class Run:
    def __init__(self, pool: SandboxPool, market) -> None:
        self.matches: list[str] = []
        self.broken: list[str] = []
        self.pool = pool
        self.market = market
        self.tick_id = 0

        async def on_match(cfg: TraderConfig, symbol: str, when: int, _tick: object) -> None:
            self.matches.append(symbol)

        async def on_broken(rt: TraderRuntime, reason: str) -> None:
            self.broken.append(reason)

        self.screener = Screener(pool, on_match, on_broken, lambda: 0)

    async def load(self, code: str) -> TraderRuntime:
        cfg = config(code)
        await self.pool.load(str(cfg.id), code)
        return TraderRuntime(cfg, self.market.symbols, str(cfg.id))

    async def tick(self, rt: TraderRuntime):
        self.tick_id += 1
        return await self.screener.tick(rt, closed_only=True, tick_id=self.tick_id, market_time_ms=0)


async def test_every_symbol_erroring_counts_a_good_tick_resets_and_three_break(market):
    async with SandboxPool(market.spec, workers=1, batch_timeout_s=2.0, memory_limit_mb=256) as pool:
        run = Run(pool, market)
        failing = await run.load(FLAKY.replace("FAIL", "True"))
        good = await run.load(FLAKY.replace("FAIL", "False"))
        for expected in (1, 2):
            result = await run.tick(failing)
            assert len(result.errors) == len(SYMBOLS) and failing.failures == expected and run.broken == []
        good.failures = 2  # a good tick resets whatever the count was
        await run.tick(good)
        assert good.failures == 0 and sorted(run.matches) == sorted(SYMBOLS)
        await run.tick(failing)
        assert failing.failures == MAX_CONSECUTIVE_FAILURES == 3
        assert len(run.broken) == 1 and "3 ticks in a row" in run.broken[0] and "boom on" in run.broken[0]


async def test_a_pool_that_is_down_is_not_the_trader_s_fault(market):
    pool = SandboxPool(market.spec, workers=1, batch_timeout_s=2.0, memory_limit_mb=256)
    await pool.start()
    run = Run(pool, market)
    rt = await run.load(FLAKY.replace("FAIL", "False"))
    await pool.stop()
    for _ in range(MAX_CONSECUTIVE_FAILURES + 1):
        assert await run.tick(rt) is None
    assert rt.failures == 0 and run.broken == [] and run.screener.unavailable == MAX_CONSECUTIVE_FAILURES + 1


async def test_a_tick_due_while_one_runs_is_skipped_not_queued(market):
    slow = FLAKY.replace("FAIL", "False").replace("return True", "x = 0\n    for i in range(300000):\n"
                                                                  "        x += i\n    return True")
    async with SandboxPool(market.spec, workers=2, batch_timeout_s=5.0, memory_limit_mb=256) as pool:
        run = Run(pool, market)
        rt = await run.load(slow)
        first = asyncio.create_task(run.tick(rt))
        while not rt.running:  # until the first tick holds the trader
            await asyncio.sleep(0)
        assert await run.tick(rt) is None  # skipped at once, counted
        assert rt.overruns == 1 and run.screener.overruns == 1
        assert (await first) is not None and rt.ticks == 1
