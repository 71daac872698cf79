"""One trader's filter can never run, crash or hold memory inside another trader's batch.

Each attack in ``cross_batch/`` leaves something behind in the worker it ran
in (deferred code in a garbage cycle, a self-re-arming finaliser, memory held
in the oldest GC generation). It runs first, then the benign filters, in ONE
worker, for several ticks (``sandbox._check.check_filters_async``, the way a
machine runs a set of traders): the benign filters' outcomes and per-tick
matched symbols must be identical to running each of them alone, and the
attacker gets the outcome its header names (``# charged: OUTCOME[ | text]``).

Before the fix (no collection at the end of a batch) the victims got
``timeout``, ``crashed`` or ``memory``, or silently lost matches, while the
attackers stayed ``ok``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from sandbox._check import CheckResult, check_filters_async

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

HERE = Path(__file__).resolve().parent
ATTACKS = sorted((HERE / "cross_batch").glob("*.py"))
SYMBOLS = ["BTCUSDT", "ETHUSDT", "DOGEUSDT", "LINKUSDT", "SOLUSDT", "XRPUSDT"]
TICKS = 3
TIMEOUT_S = 2.0
MEMORY_LIMIT_MB = 256
_CHARGED = re.compile(r"^# charged: (?P<outcome>\w+)(?: \| (?P<text>.+))?$")

BIG_LIST = """
def check_signal(symbol, ticker, klines):
    big = [0.0] * 2500000
    closes = get_closes(klines["1m"])
    big[0] = closes[-1]
    return big[0] > closes[-2] and len(big) == 2500000
"""
CATCH_ALL = """
def check_signal(symbol, ticker, klines):
    try:
        rsi = get_latest_rsi(klines["1m"], 14)
        work = [float(i) for i in range(20000)]
        return rsi is not None and rsi < 55 and len(work) == 20000
    except Exception:
        return False
"""
VICTIMS = {p.stem: p.read_text() for p in sorted((HERE / "benign").glob("*.py"))}
VICTIMS |= {"big_list": BIG_LIST, "catch_all": CATCH_ALL}


def charged(path: Path) -> tuple[str, str]:
    match = _CHARGED.match(path.read_text().splitlines()[0])
    assert match, f"{path.name} has no '# charged:' header"
    return match["outcome"], match["text"] or ""


async def check(codes: list[str], binance_data: Path) -> list[CheckResult]:
    run = await check_filters_async(
        codes, replay_dir=binance_data, symbols=SYMBOLS, ticks=TICKS, timeout_s=TIMEOUT_S, memory_limit_mb=MEMORY_LIMIT_MB
    )
    assert (run.ticks, run.symbols) == (TICKS, len(SYMBOLS))
    return list(run.results)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def alone(binance_data) -> dict[str, CheckResult]:
    """Each victim checked on its own (its own worker, nothing else in it)."""
    out = {}
    for name, code in VICTIMS.items():
        (out[name],) = await check([code], binance_data)
        assert out[name].outcome in ("match", "no_match"), (name, out[name].detail)
    matched = [m for r in out.values() for tick in r.per_tick for m in tick]
    assert matched and len({r.per_tick for r in out.values()}) > 1, "victims must discriminate"
    return out


def test_the_corpus_has_every_kind_of_cross_batch_attack():
    assert {p.stem for p in ATTACKS} >= {
        "deferred_spin", "deferred_crash", "deferred_memory", "self_rearming", "retained_memory"
    }  # fmt: skip


@pytest.mark.parametrize("path", ATTACKS, ids=lambda p: p.stem)
@MODULE_LOOP
async def test_attack_is_charged_to_its_filter_only(path, alone, binance_data):
    outcome, text = charged(path)
    attacker, *victims = await check([path.read_text(), *VICTIMS.values()], binance_data)
    assert attacker.outcome == outcome, attacker.detail
    assert text in attacker.detail
    for name, result in zip(VICTIMS, victims, strict=True):
        expected = alone[name]
        assert (result.outcome, result.per_tick, result.matches) == (
            expected.outcome, expected.per_tick, expected.matches
        ), (name, result.detail)  # fmt: skip
        assert not result.errors, (name, dict(result.errors))


@MODULE_LOOP
async def test_attackers_interleaved_with_victims(alone, binance_data):
    """Every attacker between the victims, in one worker: the victims are untouched."""
    codes, names = [], []
    for path, (victim, code) in zip(ATTACKS, VICTIMS.items(), strict=False):
        codes += [path.read_text(), code]
        names += [path.stem, victim]
    results = dict(zip(names, await check(codes, binance_data), strict=True))
    for path in ATTACKS:
        assert results[path.stem].outcome == charged(path)[0], results[path.stem].detail
    for name in names:
        if name in VICTIMS:
            assert results[name].per_tick == alone[name].per_tick, (name, results[name].detail)
            assert results[name].outcome == alone[name].outcome


def test_the_cli_charges_a_deferred_attack_to_its_file(binance_data):
    """``python -m sandbox check`` passed these filters with ``no_match`` before the fix."""
    attack, benign = HERE / "cross_batch" / "deferred_spin.py", HERE / "benign" / "rsi_oversold.py"
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "check", str(attack), str(benign), "--ticks", "2", "--timeout", "1",
         "--replay", str(binance_data), *(a for s in SYMBOLS[:3] for a in ("--symbol", s))],
        cwd=HERE.parents[1], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 3, done.stderr
    assert [r["file"] for r in reports[:2]] == [str(attack), str(benign)] and reports[0]["outcome"] == "timeout"
    assert reports[1]["outcome"] in ("match", "no_match") and len(reports[1]["matched"]) == 2
    assert reports[2]["summary"] is True and reports[2]["outcomes"]["timeout"] == 1
