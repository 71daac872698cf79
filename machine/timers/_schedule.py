"""Parsing check intervals: ``5s``, ``1m`` (fixed) and ``1m_close``, ``1h_close`` (candle close)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from machine.store import INTERVAL_MS as STORE_INTERVAL_MS

__all__ = ["INTERVAL_MS", "Schedule", "ScheduleError", "parse_schedule"]

#: Kline intervals traders may use, in ms: Binance's intervals without ``1s`` (no
#: candle-close ticks at that rate) and ``1M`` (months have no fixed length).
INTERVAL_MS: dict[str, int] = {k: v for k, v in STORE_INTERVAL_MS.items() if k not in ("1s", "1M")}
_FIXED = re.compile(r"^(\d+)(s|m|h)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


class ScheduleError(ValueError):
    """A check/reanalysis interval that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """``kind`` ``fixed`` runs every ``seconds``; ``close`` runs when ``interval`` candles close."""

    kind: str
    seconds: float = 0.0
    interval: str = ""


def parse_schedule(text: str) -> Schedule:
    """Parse ``"5s"``, ``"1m"``, ``"2h"`` or ``"<binance interval>_close"``.

    Raises:
        ScheduleError: for anything else, or a fixed interval under 1 s or over 1 day.
    """
    text = text.strip()
    if text.endswith("_close"):
        interval = text[: -len("_close")]
        if interval not in INTERVAL_MS:
            raise ScheduleError(f"unknown candle interval {interval!r} in {text!r}; use one of {', '.join(INTERVAL_MS)}")
        return Schedule("close", interval=interval)
    m = _FIXED.match(text)
    if not m:
        raise ScheduleError(f"check interval {text!r} must look like '5s', '1m', '1h' or '1h_close'")
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
    if not 1 <= seconds <= 86_400:
        raise ScheduleError(f"check interval {text!r} must be between 1s and 24h")
    return Schedule("fixed", seconds=float(seconds))


def intervals_needed(timeframes: Iterable[str], *schedules: Schedule) -> set[str]:
    """Every kline interval a trader needs stored and streamed.

    Its timeframes (the filter's ``klines`` and the analysis payload), and the
    interval of each candle-close schedule: a ``1h_close`` check or a
    ``5m_close`` re-analysis fires only when that interval's candles close,
    which the machine sees only for intervals it streams.
    """
    needed = set(timeframes)
    for schedule in schedules:
        if schedule.kind == "close":
            needed.add(schedule.interval)
    return needed
