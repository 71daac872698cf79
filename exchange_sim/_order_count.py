"""The unfilled order count of each account (Binance spot API docs, ``faqs/order_count_decrement.md``
"Spot Unfilled Order Count Rules", and ``rest-api.md`` "Unfilled Order Count").

Each ``ORDERS`` rate limit of ``exchangeInfo`` is a fixed window of wall time (10 s windows
start at :00, :10, ...; a day window at 00:00 UTC). Every successfully placed order adds one
to the account's count in every window (an OCO list two); an order's first fill takes one
off again in every window (never below 0), so orders that trade do not use up the limit. A
new order that would take a count over its limit is refused with HTTP 429 -1015 "Too many
new orders; current limit is N orders per 10 SECOND." and never reaches the matching engine.
The count is per account, shared by its API keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import BinanceAPIError

__all__ = ["OrderLimit", "UnfilledOrderCount"]

_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


@dataclass(frozen=True, slots=True)
class OrderLimit:
    """One ``ORDERS`` entry of ``exchangeInfo.rateLimits`` (``interval`` SECOND/MINUTE/HOUR/DAY)."""

    interval: str
    interval_num: int
    limit: int

    @property
    def seconds(self) -> int:
        return _SECONDS[self.interval] * self.interval_num

    @property
    def header(self) -> str:
        """``X-MBX-ORDER-COUNT-10S`` and the like."""
        return f"X-MBX-ORDER-COUNT-{self.interval_num}{self.interval[0]}"

    @classmethod
    def from_rate_limits(cls, rate_limits: Sequence[Mapping[str, Any]]) -> list[OrderLimit]:
        """The ``ORDERS`` entries (Binance's current 100 per 10 s and 200 000 per day when none)."""
        limits = [cls(str(r["interval"]), int(r["intervalNum"]), int(r["limit"])) for r in rate_limits
                  if r.get("rateLimitType") == "ORDERS" and r.get("interval") in _SECONDS]
        return limits or [cls("SECOND", 10, 100), cls("DAY", 1, 200_000)]


class UnfilledOrderCount:
    """Unfilled order counts per account and window (module doc).

    Args:
        limits: the ``ORDERS`` limits.
        clock: wall time in seconds since the Unix epoch (``time.time``; a test may set its own).
    """

    def __init__(self, limits: Sequence[OrderLimit], clock: Callable[[], float] = time.time) -> None:
        self.limits = list(limits)
        self.clock = clock
        self._counts: dict[tuple[str, OrderLimit], tuple[int, int]] = {}  # -> (window start s, count)

    def _current(self, account: str, limit: OrderLimit, now: float) -> int:
        start = int(now) // limit.seconds * limit.seconds
        window, count = self._counts.get((account, limit), (start, 0))
        return count if window == start else 0

    def _set(self, account: str, limit: OrderLimit, now: float, count: int) -> None:
        self._counts[(account, limit)] = (int(now) // limit.seconds * limit.seconds, count)

    def check(self, account: str, orders: int = 1) -> None:
        """Raise BinanceAPIError -1015 (HTTP 429) if ``orders`` more would go over a limit."""
        now = self.clock()
        for limit in self.limits:
            if self._current(account, limit, now) + orders > limit.limit:
                unit = f"{limit.interval_num} {limit.interval}"
                raise BinanceAPIError(-1015, f"Too many new orders; current limit is {limit.limit} orders per "
                                             f"{unit}.", status=429)

    def placed(self, account: str, orders: int = 1) -> None:
        """Count ``orders`` successfully placed orders."""
        now = self.clock()
        for limit in self.limits:
            self._set(account, limit, now, self._current(account, limit, now) + orders)

    def filled(self, account: str) -> None:
        """An order's first fill: one off every window's count."""
        now = self.clock()
        for limit in self.limits:
            self._set(account, limit, now, max(0, self._current(account, limit, now) - 1))

    def headers(self, account: str) -> dict[str, str]:
        """``X-MBX-ORDER-COUNT-*`` headers with the account's current counts."""
        now = self.clock()
        return {limit.header: str(self._current(account, limit, now)) for limit in self.limits}

    def report(self, account: str) -> list[dict[str, Any]]:
        """``GET /api/v3/rateLimit/order``: each limit with the account's current count."""
        now = self.clock()
        return [{"rateLimitType": "ORDERS", "interval": limit.interval, "intervalNum": limit.interval_num,
                 "limit": limit.limit, "count": self._current(account, limit, now)} for limit in self.limits]
