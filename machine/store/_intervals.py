"""Binance kline intervals and their lengths.

Source: Binance Spot API docs, "ENUM definitions" -> "Kline/Candlestick chart
intervals": s = seconds, m = minutes, h = hours, d = days, w = weeks, M = months.
A month has no fixed length; ``INTERVAL_MS["1M"]`` is 31 days, an upper bound
used only for sizing, never for candle arithmetic.
"""

from __future__ import annotations

from typing import Final

from ._errors import UnknownInterval

__all__ = ["INTERVAL_MS", "check_interval"]

_S: Final = 1_000
_M: Final = 60 * _S
_H: Final = 60 * _M
_D: Final = 24 * _H

INTERVAL_MS: Final[dict[str, int]] = {
    "1s": _S,
    "1m": _M,
    "3m": 3 * _M,
    "5m": 5 * _M,
    "15m": 15 * _M,
    "30m": 30 * _M,
    "1h": _H,
    "2h": 2 * _H,
    "4h": 4 * _H,
    "6h": 6 * _H,
    "8h": 8 * _H,
    "12h": 12 * _H,
    "1d": _D,
    "3d": 3 * _D,
    "1w": 7 * _D,
    "1M": 31 * _D,
}


def check_interval(interval: str) -> str:
    """Return ``interval`` unchanged when Binance knows it.

    Raises:
        UnknownInterval: for anything else (intervals are case-sensitive: ``1m`` is a
            minute, ``1M`` a month).
    """
    if interval not in INTERVAL_MS:
        raise UnknownInterval(interval)
    return interval
