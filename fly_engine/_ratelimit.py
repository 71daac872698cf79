"""Fly's per-action rate limits of the Machines API, answered with 429 and ``Retry-After``.

Fly docs, "Working with the Machines API" > Rate Limits: limits apply per action and per
identifier (the Machine ID, or the app name for app-level calls such as ``Machines_create``
and ``Machines_list``): 1 request/s per action with a short-term burst of 3; Get Machine
(``Machines_show``) 5 requests/s with a burst of 10. A request over the limit is not acted
on: the answer is 429 with the spec's ``ErrorResponse`` and a ``Retry-After`` header in
whole seconds. Each bucket is an aiolimiter leaky bucket, the same shape a well-behaved
client uses to stay under the limit.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from ._errors import ApiError

__all__ = ["FLY_RATE_LIMITS", "RateLimits", "RequestLimiter"]


@dataclass(frozen=True)
class RateLimits:
    """``*_burst`` requests at once, refilled at ``*_per_s`` requests per second."""

    action_per_s: float = 1.0
    action_burst: int = 3
    get_machine_per_s: float = 5.0
    get_machine_burst: int = 10

    def for_operation(self, operation: str) -> tuple[float, int]:
        """``(per_s, burst)`` of a spec operation."""
        if operation == "Machines_show":
            return self.get_machine_per_s, self.get_machine_burst
        return self.action_per_s, self.action_burst


#: Fly's documented limits.
FLY_RATE_LIMITS = RateLimits()


class RequestLimiter:
    """One leaky bucket per (spec operation, identifier); ``rejected`` counts 429s per operation."""

    def __init__(self, limits: RateLimits = FLY_RATE_LIMITS) -> None:
        self.limits = limits
        self.rejected: Counter[str] = Counter()
        self._buckets: dict[tuple[str, str], AsyncLimiter] = {}

    async def admit(self, operation: str, identifier: str) -> None:
        """Take a request's token. Raises ApiError 429 (with ``retry_after_s``) when the bucket is full."""
        key = (operation, identifier)
        bucket = self._buckets.get(key)
        if bucket is None:
            per_s, burst = self.limits.for_operation(operation)
            bucket = self._buckets[key] = AsyncLimiter(burst, burst / per_s)
        if not bucket.has_capacity():
            self.rejected[operation] += 1
            per_s, _burst = self.limits.for_operation(operation)
            raise ApiError(
                429,
                f"rate limit exceeded: {operation} on {identifier} allows {per_s:g} request(s)/s",
                retry_after_s=max(1, math.ceil(1.0 / per_s)),
            )
        await bucket.acquire()
