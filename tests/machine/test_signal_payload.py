"""The analysis request's market data: each trader's analysis_candles, and indicators the analysis endpoint accepts."""

from __future__ import annotations

import numpy as np

from control_plane.analysis._schemas import check_indicator
from machine.signals._payload import PAYLOAD_CANDLES, build_market_payload


def _window(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    window = np.zeros((11, n))
    window[0] = np.arange(n) * 60_000
    window[1], window[4] = close, close
    window[2], window[3] = close + 1, close - 1
    window[5] = rng.uniform(1e9, 1e12, n)  # a meme coin's base volume
    return window


def test_the_payload_sends_the_traders_candles_and_valid_indicators():
    windows = {"1m": _window(300), "1h": _window(40)}
    klines, values = build_market_payload(windows, ["1m", "1h"], 30)
    assert len(klines["1m"]) == 30 and len(klines["1h"]) == 30
    assert klines["1m"][-1][0] == windows["1m"][0, -1]  # the newest ones
    klines, _ = build_market_payload(windows, ["1m", "1h"])
    assert len(klines["1m"]) == PAYLOAD_CANDLES and len(klines["1h"]) == 40  # at most what the store holds
    assert {"rsi_14_1m", "macd_1m", "atr_14_1m", "bb_20_1m", "volume_ma_20_1m"} <= set(values)
    for key, value in values.items():
        check_indicator(key, value)  # what the machine sends, the endpoint accepts
