"""Through the machine's own Screener, one trader's filter never fails another trader's ticks.

Before the sandbox cleared each batch's garbage inside that batch, a trader
whose filter left a spinning finaliser behind stayed at 0 failures while the
benign trader after it went to ``error`` ("filter failed 3 ticks in a row:
timeout"). Here the attacker runs first on every tick, in the same single
worker as a benign trader: the attacker is the one that fails and is
reported broken; the benign trader never fails and matches exactly what it
matches when it runs alone.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from machine.screener import Screener, TraderRuntime
from machine.traders import Risk, TraderConfig
from sandbox import SandboxPool
from sandbox._check import load_replay_market

ATTACKS = Path(__file__).resolve().parents[1] / "sandbox" / "cross_batch"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "DOGEUSDT", "LINKUSDT", "SOLUSDT", "XRPUSDT"]
BENIGN = """
def check_signal(symbol, ticker, klines):
    rsi = get_latest_rsi(klines["1m"], 14)
    return rsi is not None and rsi < 55
"""
TICKS = 4


def trader(name: str, code: str) -> TraderConfig:
    risk = Risk(Decimal("2"), Decimal("4"), Decimal("10"), 3)
    return TraderConfig(uuid.uuid4(), uuid.uuid4(), name, code, "", ("1m",), "1m_close", "5m", None, "paper", risk,
                        "active", 1)  # fmt: skip


@pytest.fixture(scope="module")
def market(binance_data):
    m = load_replay_market(binance_data, SYMBOLS, ["1m"], 500)
    yield m
    m.close()


async def screen(market, configs: list[TraderConfig]) -> tuple[dict[str, TraderRuntime], dict[str, list], list]:
    """Run every trader, in order, on TICKS ticks in one worker; (runtimes, matches per tick, broken)."""
    matches: dict[str, list[list[str]]] = {c.name: [[] for _ in range(TICKS)] for c in configs}
    broken: list[tuple[str, str]] = []
    tick_index = [0]

    async def on_match(config: TraderConfig, symbol: str, when_ms: int, _tick: object) -> None:
        matches[config.name][tick_index[0]].append(symbol)

    async def on_broken(rt: TraderRuntime, reason: str) -> None:
        broken.append((rt.config.name, reason))

    async with SandboxPool(market.spec, workers=1, batch_timeout_s=1.5, memory_limit_mb=256) as pool:
        screener = Screener(pool, on_match, on_broken, lambda: 0)
        runtimes = {}
        for config in configs:
            await pool.load(config.name, config.filter_code)
            runtimes[config.name] = TraderRuntime(config, market.symbols, config.name)
        for k in range(TICKS):
            tick_index[0] = k
            for config in configs:
                if config.name not in {name for name, _ in broken}:
                    await screener.tick(runtimes[config.name], closed_only=True, tick_id=100 + k, market_time_ms=0)
    return runtimes, matches, broken


@pytest.mark.parametrize("attack", ["deferred_spin", "deferred_memory", "self_rearming"])
@pytest.mark.asyncio
async def test_the_attacker_is_charged_and_the_benign_trader_untouched(market, attack):
    _, alone, none_broken = await screen(market, [trader("benign", BENIGN)])
    assert not none_broken and any(alone["benign"]), "the benign trader must match something"

    code = (ATTACKS / f"{attack}.py").read_text()
    runtimes, matches, broken = await screen(market, [trader("attacker", code), trader("benign", BENIGN)])
    benign = runtimes["benign"]
    assert benign.failures == 0 and benign.symbol_errors == 0 and benign.last_outcome == "ok"
    assert matches["benign"] == alone["benign"]
    assert [name for name, _ in broken] == ["attacker"]
    assert "filter failed 3 ticks in a row" in broken[0][1]
