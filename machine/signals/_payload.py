"""The market data sent with an analysis request (seed 002 ``marketData``).

``klines``: the newest ``PAYLOAD_CANDLES`` candles of each of the trader's
intervals. ``indicators`` (keys ``<name>_<params>_<interval>``): RSI 14, MACD
12/26/9, ATR 14, Bollinger Bands 20/2, EMA 20, SMA 50 and volume MA 20 of each
interval, computed with the ``indicators`` package (TA-Lib) over the store's
whole window, so the values equal what a filter sees. Missing values (too few
candles) are left out rather than sent as null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import indicators

__all__ = ["PAYLOAD_CANDLES", "build_market_payload"]

PAYLOAD_CANDLES = 100


class _Columns:
    """Adapter giving the indicators fast path (``column(i)``) over a ``(11, n)`` array."""

    __slots__ = ("_a",)

    def __init__(self, array: np.ndarray) -> None:
        self._a = array

    def column(self, index: int) -> np.ndarray:
        return np.ascontiguousarray(self._a[index])

    def __len__(self) -> int:
        return self._a.shape[1]


def _indicator_values(interval: str, cols: _Columns) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rsi = indicators.get_latest_rsi(cols, 14)
    if rsi is not None:
        out[f"rsi_14_{interval}"] = rsi
    macd = indicators.get_latest_macd(cols)
    if macd is not None:
        out[f"macd_{interval}"] = {"macd": macd[0], "signal": macd[1], "histogram": macd[2]}
    atr = indicators.get_latest_atr(cols, 14)
    if atr is not None:
        out[f"atr_14_{interval}"] = atr
    bb = indicators.get_latest_bollinger_bands(cols, 20, 2.0)
    if bb is not None:
        out[f"bb_20_{interval}"] = {"upper": bb[0], "middle": bb[1], "lower": bb[2]}
    for name, fn, period in (("ema", indicators.get_latest_ema, 20), ("sma", indicators.get_latest_sma, 50),
                             ("volume_ma", indicators.get_latest_volume_ma, 20)):
        value = fn(cols, period)
        if value is not None:
            out[f"{name}_{period}_{interval}"] = value
    return out


def build_market_payload(
    windows: dict[str, np.ndarray], intervals: Sequence[str], candles: int = PAYLOAD_CANDLES
) -> tuple[dict[str, list], dict[str, Any]]:
    """``(klines, indicators)`` for the analysis request.

    Args:
        windows: interval -> the store's ``(11, n)`` window, oldest first.
        intervals: the trader's intervals, in its order.
        candles: candles per interval sent (the trader's ``analysis_candles``; at most what the store holds).

    Returns:
        ``klines``: interval -> rows (11 values each, the newest ``candles``);
        ``indicators``: flat mapping as described in the module docstring.
    """
    klines: dict[str, list] = {}
    values: dict[str, Any] = {}
    for interval in intervals:
        window = windows.get(interval)
        if window is None or window.shape[1] == 0:
            continue
        klines[interval] = window[:, -candles:].T.tolist()
        values.update(_indicator_values(interval, _Columns(window)))
    return klines, values
