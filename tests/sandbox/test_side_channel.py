"""Filters that do not share code cannot observe each other's indicator requests.

Helper results are shared through the worker's per-tick cache, so whether two
results are the same *object* depends on the cache's history (what was
admitted, what other traders asked for, what is still among the recent large
results); before the fix a filter could compare results with ``is`` and learn
about other traders' requests. ``is`` / ``is not`` are now refused except
against ``None``, ``True``, ``False``; what remains (``==``, ``in``,
``count``, ``index``) only sees values, which are the same whoever computed
them.
"""

from __future__ import annotations

import pytest

from sandbox import FilterRejected, SandboxPool
from sandbox._policy import compile_filter
from sandbox_data import INTERVALS

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

VICTIM = """
def check_signal(symbol, ticker, klines):
    macd, signal, hist = get_macd(klines["1h"], 7, 21, 5)
    return macd[-1] is not None and macd[-1] > signal[-1]
"""
SPY_IDENTITY = """
def check_signal(symbol, ticker, klines):
    series = get_macd(klines["1h"], 7, 21, 5)
    latest = get_latest_macd(klines["1h"], 7, 21, 5)
    return latest[0] is series[0][-1]
"""
SPY_VALUES = """
def check_signal(symbol, ticker, klines):
    series = get_macd(klines["1h"], 7, 21, 5)
    latest = get_latest_macd(klines["1h"], 7, 21, 5)
    again = get_macd(klines["1h"], 7, 21, 5)
    probes = [
        latest[0] in [series[0][-1]],
        [series[0][-1]].count(latest[0]) == 1,
        [series[0]].index(again[0]) == 0,
        {latest: 1}.get(get_latest_macd(klines["1h"], 7, 21, 5)) == 1,
        latest[0] == series[0][-1],
    ]
    return all(probes)
"""


def test_identity_comparison_of_results_is_refused():
    with pytest.raises(FilterRejected) as info:
        compile_filter(SPY_IDENTITY)
    assert '"is" may only compare with None, True or False' in str(info.value) and "line 5" in str(info.value).lower()
    for allowed in ("x is None", "x is not None", "x is True", "False is not x", "x is ..."):
        compile_filter(f"def check_signal(s, t, k):\n    x = 1\n    return {allowed}\n")
    for refused in ("x is t", "x is not (1,)", "None is x is t", "x is 1"):
        with pytest.raises(FilterRejected):
            compile_filter(f"def check_signal(s, t, k):\n    x = 1\n    return {refused}\n")


async def spy_result(market, victims: int):
    async with SandboxPool(market.spec, workers=1, batch_timeout_s=10.0) as pool:
        await pool.load("victim", VICTIM)
        await pool.load("spy", SPY_VALUES)
        for _ in range(victims):  # enough batches asking for the series to get it cached
            victim = await pool.evaluate("victim", market.symbols, INTERVALS, closed_only=True, tick_id=5)
            assert victim.outcome == "ok" and not victim.errors
        return await pool.evaluate("spy", market.symbols, INTERVALS, closed_only=True, tick_id=5)


@MODULE_LOOP
async def test_value_probes_see_the_same_whoever_asked_before(market):
    alone = await spy_result(market, victims=0)
    watched = await spy_result(market, victims=6)
    assert alone.outcome == watched.outcome == "ok" and not alone.errors and not watched.errors
    assert alone.matches == watched.matches == frozenset(s for s, _ in market.symbols)
