"""One Binance request budget per machine, shared by market data and live orders.

Binance counts request weight per IP (``REQUEST_WEIGHT``, 6000 per minute today) and orders per
account (``ORDERS``: 100 per 10 s and 200000 per day today); both come from ``exchangeInfo.rateLimits``
(Binance Spot API docs, "LIMITS"). Market data (``BinanceRest``) and the live executor share one
:class:`RequestBudget`, so a burst of orders cannot push klines backfill over the weight limit nor
the reverse. Before each request :meth:`RequestBudget.acquire` takes its weight (and one order for a
placing request) from ``aiolimiter.AsyncLimiter`` buckets sized at ``share`` of the limits. After
each response :meth:`RequestBudget.observe` reads ``X-MBX-USED-WEIGHT-1M`` (and
``X-MBX-ORDER-COUNT-10S``): at the budget, every request waits for the next window. A 429 pauses
every caller for its ``Retry-After`` (:meth:`pause`); a 418 is a ban (:meth:`ban`): requests fail
fast until it ends (Binance: "a 418 ... IP has been auto-banned for continuing to send requests
after receiving 429 codes").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import structlog
from aiolimiter import AsyncLimiter

__all__ = ["RequestBudget", "rate_limits"]

_log = structlog.get_logger("machine.market")
_MIN_WEIGHT_BUDGET = 20  # exchangeInfo's own weight: the budget always admits it


def rate_limits(info: Mapping[str, Any]) -> dict[tuple[str, str, int], int]:
    """``exchangeInfo.rateLimits`` as ``(rateLimitType, interval, intervalNum) -> limit``."""
    out: dict[tuple[str, str, int], int] = {}
    for item in info.get("rateLimits") or () if isinstance(info, Mapping) else ():
        if isinstance(item, Mapping) and isinstance(item.get("limit"), int) and isinstance(item.get("intervalNum"), int):
            out[(str(item.get("rateLimitType")), str(item.get("interval")), int(item["intervalNum"]))] = item["limit"]
    return out


class RequestBudget:
    """The machine's share of Binance's request limits (module doc).

    Args:
        weight_limit_1m: ``REQUEST_WEIGHT`` per minute until exchangeInfo says otherwise.
        orders_limit_10s: ``ORDERS`` per 10 seconds until exchangeInfo says otherwise.
        share: the part of each limit this machine allows itself, in (0, 1].
    """

    def __init__(self, weight_limit_1m: int = 6000, orders_limit_10s: int = 100, share: float = 0.8) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"weight_share must be in (0, 1], got {share}")
        self._share = share
        self._paused_until = 0.0  # time.monotonic()
        self._banned_until = 0.0
        self.used_weight_1m: int | None = None
        self.order_count_10s: int | None = None
        self.pauses = 0
        self.set_limits(weight_limit_1m, orders_limit_10s)

    # ------------------------------------------------------------ limits
    def set_limits(self, weight_limit_1m: int | None = None, orders_limit_10s: int | None = None) -> None:
        """Adopt the exchange's limits (None keeps the current one)."""
        if weight_limit_1m is not None:
            self.weight_limit_1m = weight_limit_1m
            self.weight_budget_1m = max(_MIN_WEIGHT_BUDGET, int(weight_limit_1m * self._share))
            self._weight = AsyncLimiter(self.weight_budget_1m, 60)
        if orders_limit_10s is not None:
            self.orders_limit_10s = orders_limit_10s
            self.orders_budget_10s = max(1, int(orders_limit_10s * self._share))
            self._orders = AsyncLimiter(self.orders_budget_10s, 10)

    def adopt(self, info: Mapping[str, Any]) -> None:
        """Adopt ``exchangeInfo.rateLimits`` (``REQUEST_WEIGHT`` per minute, ``ORDERS`` per 10 seconds)."""
        limits = rate_limits(info)
        self.set_limits(limits.get(("REQUEST_WEIGHT", "MINUTE", 1)), limits.get(("ORDERS", "SECOND", 10)))

    # ------------------------------------------------------------ before and after a request
    def banned_for(self) -> float:
        """Seconds of an IP ban (HTTP 418) still to run; 0 when none."""
        return max(0.0, self._banned_until - time.monotonic())

    async def acquire(self, weight: int, orders: int = 0) -> None:
        """Wait until ``weight`` (and ``orders`` placing requests) fit the budget and no pause holds."""
        while (wait := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        await self._weight.acquire(min(weight, self.weight_budget_1m))
        if orders:
            await self._orders.acquire(min(orders, self.orders_budget_10s))

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read the exchange's running counts from a response's headers; at the budget, pause everyone
        until the next window (weight: the minute; orders: the 10 seconds)."""
        used = headers.get("X-MBX-USED-WEIGHT-1M")
        if used is not None and used.isdigit():
            self.used_weight_1m = int(used)
            if self.used_weight_1m >= self.weight_budget_1m:
                self.pause(60.0 - (time.time() % 60.0), "rest_weight_budget_reached")
        orders = headers.get("X-MBX-ORDER-COUNT-10S")
        if orders is not None and orders.isdigit():
            self.order_count_10s = int(orders)
            if self.order_count_10s >= self.orders_budget_10s:
                self.pause(10.0 - (time.time() % 10.0), "order_budget_reached")

    def pause(self, seconds: float, reason: str = "rate_limited") -> None:
        """Hold every request for ``seconds`` (a 429's ``Retry-After``, or the rest of a window)."""
        until = time.monotonic() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1
            _log.warning(reason, pause_s=round(seconds, 1), used_weight_1m=self.used_weight_1m,
                         order_count_10s=self.order_count_10s)

    def ban(self, seconds: float) -> None:
        """An IP ban (HTTP 418) for ``seconds``: :meth:`banned_for` reports it; callers fail fast."""
        self._banned_until = max(self._banned_until, time.monotonic() + seconds)
        _log.error("rest_ip_banned", retry_after_s=seconds)

    def stats(self) -> dict[str, int | None]:
        """Counters for ``/metrics``."""
        return {"used_weight_1m": self.used_weight_1m, "weight_budget_1m": self.weight_budget_1m,
                "order_count_10s": self.order_count_10s, "orders_budget_10s": self.orders_budget_10s,
                "pauses": self.pauses}
