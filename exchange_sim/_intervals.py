"""Binance kline intervals: names, lengths and UTC bucket boundaries.

All times are ms since the Unix epoch, UTC. Source: Binance spot REST API docs,
"ENUM definitions / Kline/Candlestick chart intervals" (1s is listed there too, but
cannot be built from 1m data, so it is not served).

Alignment (what Binance does, and what we do):
- minutes, hours and 1d buckets start at multiples of the interval since the epoch,
  i.e. on UTC boundaries (1h at :00, 4h at 00/04/08..., 1d at 00:00 UTC);
- 1w buckets start on Monday 00:00 UTC;
- 1M buckets start on the first day of the calendar month, 00:00 UTC;
- 3d buckets: Binance does not document their phase; we align them to multiples of
  3 days since the epoch (the convention of pandas/ccxt resamplers).
"""

from __future__ import annotations

import datetime as _dt

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
#: 1970-01-05 00:00 UTC was the first Monday after the epoch.
_WEEK_PHASE_MS = 4 * DAY_MS

#: Fixed-length intervals and their length in ms ("1M" is calendar-based, see below).
INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": WEEK_MS,
}
MONTH = "1M"
#: Every interval the simulator serves, shortest first.
INTERVALS: tuple[str, ...] = (*INTERVAL_MS, MONTH)
#: Intervals whose buckets never cross a UTC day boundary (they divide 1d).
INTRADAY: frozenset[str] = frozenset(i for i, ms in INTERVAL_MS.items() if ms <= DAY_MS)


def is_interval(name: str) -> bool:
    """True for every interval name the simulator serves (case-sensitive: "1M" is a month)."""
    return name in INTERVAL_MS or name == MONTH


def _month_start(t_ms: int) -> int:
    d = _dt.datetime.fromtimestamp(t_ms / 1000, tz=_dt.UTC)
    return int(_dt.datetime(d.year, d.month, 1, tzinfo=_dt.UTC).timestamp() * 1000)


def _next_month_start(t_ms: int) -> int:
    d = _dt.datetime.fromtimestamp(_month_start(t_ms) / 1000, tz=_dt.UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(_dt.datetime(year, month, 1, tzinfo=_dt.UTC).timestamp() * 1000)


def bucket_start(t_ms: int, interval: str) -> int:
    """Open time of the ``interval`` bucket that contains ``t_ms``."""
    if interval == MONTH:
        return _month_start(t_ms)
    ms = INTERVAL_MS[interval]
    if interval == "1w":
        return t_ms - (t_ms - _WEEK_PHASE_MS) % ms
    return t_ms - t_ms % ms


def bucket_end(open_ms: int, interval: str) -> int:
    """Open time of the bucket after the one opening at ``open_ms`` (exclusive end)."""
    if interval == MONTH:
        return _next_month_start(open_ms)
    return open_ms + INTERVAL_MS[interval]


def close_time(open_ms: int, interval: str) -> int:
    """Binance's kline close time: the last ms of the bucket (``next open - 1``)."""
    return bucket_end(open_ms, interval) - 1


def day_start(t_ms: int) -> int:
    """00:00 UTC of the day containing ``t_ms``."""
    return t_ms - t_ms % DAY_MS


def parse_time(text: str) -> int:
    """Parse ms since the epoch, or an ISO-8601 date/time (UTC unless an offset is given).

    Accepts ``1619827200000``, ``2021-05-01``, ``2021-05-01T00:00:00Z``,
    ``2021-05-01 12:30``. Raises ValueError on anything else.
    """
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    parsed = _dt.datetime.fromisoformat(iso)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.UTC)
    return int(parsed.timestamp() * 1000)


def format_time(t_ms: int) -> str:
    """ISO-8601 UTC text of ``t_ms`` (for logs and messages)."""
    d = _dt.datetime.fromtimestamp(t_ms / 1000, tz=_dt.UTC)
    return d.isoformat(timespec="milliseconds").replace("+00:00", "Z")
