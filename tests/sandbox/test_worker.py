"""Filters LLMs typically write run in the worker and give the answers plain Python gives.

Each file under ``benign/`` runs (1) sandboxed, in a real worker, and (2) as plain
Python in this process with ordinary builtins, the ``indicators`` functions
called directly, candles as plain named tuples and the ticker as a dict. Both
must agree symbol by symbol, with no error.
"""

from __future__ import annotations

import builtins
import contextlib
import io
from collections import namedtuple
from pathlib import Path

import pytest
import pytest_asyncio

import indicators
from sandbox import SandboxPool
from sandbox._segment import KLINE_COLUMNS, TICKER_FIELDS
from sandbox_data import INTERVALS, SYMBOLS

pytestmark = pytest.mark.asyncio(loop_scope="module")

BENIGN = sorted((Path(__file__).resolve().parent / "benign").glob("*.py"))
Row = namedtuple("Row", KLINE_COLUMNS)  # type: ignore[misc]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(market):
    async with SandboxPool(market.spec, workers=2) as p:
        yield p


@pytest.fixture(scope="module")
def plain_inputs(market, windows):
    tickers = market.ticker_segment
    out = {}
    for symbol, slot in market.symbols:
        values = tickers.read(slot)
        ticker = dict(zip(TICKER_FIELDS, values))
        ticker["event_time"] = int(ticker["event_time"])
        ticker["symbol"] = symbol
        klines = {}
        for interval in INTERVALS:
            rows = windows[symbol, interval].T.tolist()
            klines[interval] = [Row(int(r[0]), *r[1:6], int(r[6]), r[7], int(r[8]), r[9], r[10]) for r in rows]
        out[symbol] = (ticker, klines)
    return out


def plain_python(source: str, inputs) -> frozenset[str]:
    namespace = {"__builtins__": builtins, **indicators.HELPERS}
    exec(compile(source, "<plain>", "exec"), namespace)
    with contextlib.redirect_stdout(io.StringIO()):
        return frozenset(s for s, (t, k) in inputs.items() if namespace["check_signal"](s, t, k) is True)


@pytest.mark.parametrize("path", BENIGN, ids=lambda p: p.stem)
async def test_benign_filter_matches_plain_python(pool, market, plain_inputs, path):
    source = path.read_text()
    await pool.load(path.stem, source)
    result = await pool.evaluate(path.stem, market.symbols, INTERVALS, closed_only=True, tick_id=1, capture_print=True)
    assert result.outcome == "ok" and not result.errors, result
    assert result.evaluated == len(SYMBOLS)
    assert result.matches == plain_python(source, plain_inputs)


async def test_benign_corpus_discriminates(plain_inputs):
    """The corpus is worth comparing against: some filters match, some symbols do not. Computed here
    (plain Python agrees with the worker above), not from the other tests' results: it used to read
    what they had stored and failed when run alone or first."""
    seen = {path.stem: plain_python(path.read_text(), plain_inputs) for path in BENIGN}
    assert len(seen) == len(BENIGN) >= 8
    assert any(seen.values()), "no benign filter matched anything"
    assert any(len(m) < len(SYMBOLS) for m in seen.values())
