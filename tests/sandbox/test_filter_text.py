"""Whatever text or exception attributes a filter produces, the worker reports it as that filter's error.

Before the fix, a lone surrogate in an exception message or in ``print``
output, and ``NameError("x", name=[])``, ended the worker with exit code 87
(reported as ``crashed``), and the next batch waited for a replacement.
"""

from __future__ import annotations

import pytest
import pytest_asyncio

from sandbox import SandboxPool
from sandbox_data import INTERVALS, SYMBOLS

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

HOSTILE_TEXT = {
    "surrogate_message": ('raise ValueError("a\\ud800b")', "ValueError: a\\ud800b"),
    "escape_sequences": ('raise ValueError("x\\x1b[2J\\x1b]0;t\\x07\\r\\u202ey")',
                         "ValueError: x\\x1b[2J\\x1b]0;t\\x07\\r\\u202ey"),  # fmt: skip
    "name_error_list_name": ('raise NameError("open", name=[])', "NameError: open"),
    "name_error_forbidden": ('raise NameError("open", name="open")', "NameError: open (not available in filters)"),
    "key_error_surrogate": ('raise KeyError("\\udfff")', "KeyError: '\\udfff'"),
    "newline_message": ('raise RuntimeError("line1\\nline2")', "RuntimeError: line1\\nline2"),
    "huge_message": ('raise ValueError("\\ud800" * 100000)', "ValueError: \\ud800"),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(market):
    async with SandboxPool(market.spec, workers=1, batch_timeout_s=5.0, memory_limit_mb=256) as p:
        yield p


async def run(pool, market, name: str, code: str, capture_print: bool = False):
    await pool.load(name, code)
    try:
        return await pool.evaluate(name, market.symbols, INTERVALS, closed_only=True, tick_id=1,
                                   capture_print=capture_print)  # fmt: skip
    finally:
        await pool.unload(name)


def assert_safe(text: str) -> None:
    text.encode("utf-8")  # no lone surrogate
    assert text.isprintable(), repr(text)  # no control, format or separator character
    assert len(text.encode()) <= 2048


@pytest.mark.parametrize("case", sorted(HOSTILE_TEXT))
@MODULE_LOOP
async def test_hostile_exception_text_is_the_symbols_error(pool, market, case):
    statement, expected = HOSTILE_TEXT[case]
    pid = pool.health()["pids"]
    result = await run(pool, market, case, f"def check_signal(s, t, k):\n    {statement}\n")
    assert result.outcome == "ok", result.detail
    assert set(result.errors) == set(SYMBOLS)
    for text in result.errors.values():
        assert_safe(text)
        assert text.startswith(expected), text
        assert text.endswith("(line 2)") or text.endswith("...")
    health = pool.health()
    assert health["pids"] == pid and health["crashes"] == 0 and health["restarts"] == 0


@MODULE_LOOP
async def test_hostile_module_code_text_is_the_batch_error(pool, market):
    result = await run(pool, market, "module", 'raise ValueError("m\\ud800\\x1b")\ndef check_signal(s, t, k):\n    return True\n')
    assert result.outcome == "error"
    assert result.detail == "the filter's module code raised ValueError: m\\ud800\\x1b (line 1)"
    assert pool.health()["crashes"] == 0


@MODULE_LOOP
async def test_printed_surrogates_are_escaped_and_the_batch_counts(pool, market):
    code = 'def check_signal(s, t, k):\n    print("a\\ud800b", s)\n    return True\n'
    result = await run(pool, market, "printer", code, capture_print=True)
    assert result.outcome == "ok" and result.matches == frozenset(SYMBOLS) and not result.errors
    assert result.printed.splitlines() == [f"a\\ud800b {s}" for s, _ in market.symbols]
    assert pool.health()["crashes"] == 0
