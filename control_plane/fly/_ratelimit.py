"""Client-side rate limiting matching Fly's documented Machines API limits (aiolimiter).

Fly docs, "Working with the Machines API" > Rate Limits: limits apply per action and per
identifier (Machine ID, or app for app-level calls): 1 request/s per action with a
short-term burst of 3; Get Machine (``Machines_show``) 5 requests/s with a burst of 10.
Staying under them avoids 429s instead of retrying after them. Fly counts a request when
it arrives, and arrivals are spaced by a varying network latency, not by the client's
send times: each bucket therefore keeps ``spare`` tokens unused, which absorbs a latency
variation of up to ``spare / per_second`` seconds (a 429 is still retried, see ``_retry``).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

__all__ = ["GET_MACHINE_LIMIT", "MACHINE_ACTION_LIMIT", "RateLimit", "RateLimiter"]


@dataclass(frozen=True)
class RateLimit:
    """Fly's limit: ``burst`` requests at once, refilled at ``per_second`` requests per second;
    the client sends at most ``burst - spare`` at once."""

    per_second: float
    burst: int
    spare: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.spare < self.burst:
            raise ValueError(f"spare must be 0..burst-1, got {self.spare} of {self.burst}")

    def limiter(self) -> AsyncLimiter:
        usable = self.burst - self.spare
        return AsyncLimiter(usable, usable / self.per_second)


#: Every Machines API action except Get Machine: 1 req/s, burst 3.
MACHINE_ACTION_LIMIT = RateLimit(per_second=1.0, burst=3)
#: Get Machine (``Machines_show``): 5 req/s, burst 10.
GET_MACHINE_LIMIT = RateLimit(per_second=5.0, burst=10)


class RateLimiter:
    """One token bucket per (spec operation, identifier)."""

    def __init__(self, action: RateLimit = MACHINE_ACTION_LIMIT, get_machine: RateLimit = GET_MACHINE_LIMIT) -> None:
        self._action = action
        self._get_machine = get_machine
        self._limiters: dict[tuple[str, str], AsyncLimiter] = {}

    def slot(self, operation: str, identifier: str) -> AbstractAsyncContextManager[None]:
        """``async with limiter.slot("Machines_stop", machine_id):`` waits for a token."""
        key = (operation, identifier)
        limiter = self._limiters.get(key)
        if limiter is None:
            limit = self._get_machine if operation == "Machines_show" else self._action
            limiter = self._limiters[key] = limit.limiter()
        return limiter
