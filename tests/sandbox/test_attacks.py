"""The attack corpus: every file under ``attacks/`` is contained with its expected outcome.

Each attack file starts with ``# expect: OUTCOME[ | text]``:

* ``rejected``: ``SandboxPool.load`` raises ``FilterRejected`` mentioning ``text``;
* ``error``: the batch runs (``ok``), every symbol has an error mentioning ``text``, nothing matches;
* ``no_match`` / ``match``: the batch runs cleanly and matches no / every symbol;
* ``timeout`` / ``memory`` / ``crashed``: the batch reports that outcome (the worker is replaced).

Attacks that run cleanly or per-symbol are run twice (two ticks), so state or
poison left behind by the first run would show in the second. After every
attack a benign filter gets its right answer (computed with TA-Lib directly)
in normal time, on the same pool.
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

import pytest
import pytest_asyncio

from sandbox import FilterRejected, SandboxPool
from sandbox_data import BENIGN, INTERVALS, SYMBOLS

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

ATTACKS = sorted((Path(__file__).resolve().parent / "attacks").glob("*.py"))
_EXPECT = re.compile(r"^# expect: (?P<outcome>\w+)(?: \| (?P<text>.+))?$")
_ticks = itertools.count(1000)
BENIGN_MAX_S = 1.5
_COUNTER = {"timeout": "timeouts", "memory": "memory", "crashed": "crashes"}


def expectation(path: Path) -> tuple[str, str]:
    match = _EXPECT.match(path.read_text().splitlines()[0])
    assert match, f"{path.name} has no '# expect:' header"
    return match["outcome"], match["text"] or ""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(market):
    p = SandboxPool(market.spec, workers=2, batch_timeout_s=1.0, memory_limit_mb=256)
    await p.start()
    await p.load("benign", BENIGN)
    yield p
    await p.stop()


def test_corpus_covers_the_issue():
    names = {p.stem for p in ATTACKS}
    assert len(names) >= 40
    outcomes = {expectation(p)[0] for p in ATTACKS}
    assert outcomes >= {"rejected", "error", "no_match", "match", "timeout", "memory", "crashed"}


@pytest.mark.parametrize("path", ATTACKS, ids=lambda p: p.stem)
@MODULE_LOOP
async def test_attack_is_contained(pool, market, benign_expected, path):
    outcome, text = expectation(path)
    code = path.read_text()
    if outcome == "rejected":
        with pytest.raises(FilterRejected) as info:
            await pool.load(path.stem, code)
        assert text in str(info.value)
    else:
        await pool.load(path.stem, code)
        runs = 2 if outcome in ("error", "no_match", "match") else 1
        before = pool.health()
        for _ in range(runs):
            result = await pool.evaluate(path.stem, market.symbols, INTERVALS, closed_only=True, tick_id=next(_ticks))
            if outcome == "error":
                assert result.outcome == "ok", result
                assert not result.matches
                assert set(result.errors) == set(SYMBOLS)
                assert all(text in err for err in result.errors.values()), result.errors
                assert all(len(err.encode()) <= 2048 for err in result.errors.values())
            elif outcome in ("no_match", "match"):
                assert result.outcome == "ok" and not result.errors, result
                assert result.matches == (frozenset(SYMBOLS) if outcome == "match" else frozenset())
            else:
                assert result.outcome == outcome, result
                assert result.detail
                after = pool.health()
                assert after[_COUNTER[outcome]] == before[_COUNTER[outcome]] + 1
                assert after["restarts"] == before["restarts"] + 1 and after["state"] == "running"
        await pool.unload(path.stem)

    started = time.monotonic()
    benign = await pool.evaluate("benign", market.symbols, INTERVALS, closed_only=True, tick_id=next(_ticks))
    assert benign.outcome == "ok" and not benign.errors, benign
    assert benign.matches == benign_expected
    assert time.monotonic() - started < BENIGN_MAX_S
