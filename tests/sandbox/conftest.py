"""Fixtures for the sandbox tests: real klines in shared memory, and the right answers.

The market holds the newest 500 1m and 1h candles of a few replayed symbols
(``../shared/data/binance``), written into real segments the workers attach to.
Expected answers are computed here, in-process, with TA-Lib directly on the
same arrays, independently of the sandbox code paths.
"""

from __future__ import annotations

import numpy as np
import pytest
import talib

from sandbox._check import load_replay_market
from sandbox_data import INTERVALS, SYMBOLS


@pytest.fixture(scope="session")
def market(binance_data):
    """ReplayMarket: 8 symbols x (1m, 1h) x 500 closed candles in shared memory."""
    m = load_replay_market(binance_data, SYMBOLS, INTERVALS, 500)
    yield m
    m.close()


@pytest.fixture(scope="session")
def windows(market) -> dict[tuple[str, str], np.ndarray]:
    """(symbol, interval) -> (11, n) array, read from the segments in this process."""
    out = {}
    for interval in INTERVALS:
        seg = market.kline_segment(interval)
        for symbol, slot in market.symbols:
            out[symbol, interval] = seg.read(slot, closed_only=True)
    return out


@pytest.fixture(scope="session")
def benign_expected(windows) -> frozenset[str]:
    """Symbols whose latest 1m RSI(14) is below 50 (TA-Lib RSI called directly)."""
    expected = frozenset(s for s in SYMBOLS if talib.RSI(windows[s, "1m"][4], 14)[-1] < 50)
    assert 0 < len(expected) < len(SYMBOLS), "the reference answer must discriminate"
    return expected
