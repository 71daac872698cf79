"""Identifiers Python accepts work in filters; their NFKC-normalised form is what the policy checks.

Before the fix a benign filter with ``média = ...`` crashed the worker ("No
module named 'unicodedata'"): the parser imports ``unicodedata`` lazily to
normalise non-ASCII identifiers, after the worker had dropped its privileges.
"""

from __future__ import annotations

import pytest
import pytest_asyncio
import talib

from sandbox import FilterRejected, SandboxPool
from sandbox._policy import compile_filter
from sandbox_data import INTERVALS, SYMBOLS

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

ACCENTED = """
def check_signal(symbol, ticker, klines):
    média = get_latest_rsi(klines["1m"], 14)
    über_grenze = 50
    Δ = média - über_grenze
    return Δ < 0
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(market):
    async with SandboxPool(market.spec, workers=1, batch_timeout_s=5.0) as p:
        yield p


@MODULE_LOOP
async def test_non_ascii_identifiers_run_in_a_fresh_worker(pool, market, windows):
    expected = frozenset(s for s in SYMBOLS if talib.RSI(windows[s, "1m"][4], 14)[-1] < 50)
    assert 0 < len(expected) < len(SYMBOLS)
    pid = pool.health()["pids"]
    await pool.load("accented", ACCENTED)
    result = await pool.evaluate("accented", market.symbols, INTERVALS, closed_only=True, tick_id=1)
    assert result.outcome == "ok" and not result.errors, result
    assert result.matches == expected
    health = pool.health()
    assert health["pids"] == pid and health["crashes"] == 0


@pytest.mark.parametrize(
    ("source", "refused"),
    [
        ("return s._\ufe4fclass\ufe4f\ufe4f is None", "__class__"),  # U+FE4F WAVY LOW LINE -> "_"
        ("return _\ufe4fbuiltins\ufe4f\ufe4f", "__builtins__"),
        ("return (i for i in [1]).\uff47\uff49_frame", "gi_frame"),  # fullwidth "gi"
        ("return \uff45\uff56\uff41\uff4c('1')", "Eval calls"),  # fullwidth eval(...)
    ],
)
def test_policy_checks_the_nfkc_normalised_name(source, refused):
    with pytest.raises(FilterRejected) as info:
        compile_filter(f"def check_signal(s, t, k):\n    {source}\n")
    assert refused in str(info.value)


@MODULE_LOOP
async def test_normalised_builtin_name_is_the_builtin(pool, market):
    """``ｌｅｎ`` is ``len`` after NFKC: allowed like ``len``, and the same function."""
    code = "def check_signal(s, t, k):\n    return \uff4c\uff45\uff4e(k['1m']) == len(k['1m']) > 0\n"
    await pool.load("fullwidth", code)
    result = await pool.evaluate("fullwidth", market.symbols, INTERVALS, closed_only=True, tick_id=1)
    assert result.outcome == "ok" and result.matches == frozenset(SYMBOLS), result
