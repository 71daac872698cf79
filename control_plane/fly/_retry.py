"""Retry policy of the Fly client (tenacity).

- 429 (:class:`FlyRateLimited`) and failures to connect are retried for every operation:
  Fly did not act on the request.
- Other 5xx and transport errors (:class:`FlyUnavailable` after the request was sent) are
  retried only for idempotent operations (GETs and ``Machines_wait``): a retried create,
  stop or destroy could act twice. 408 (:class:`FlyTimeout`) likewise, except for
  ``Machines_wait``, whose 408 means its own deadline passed (the caller chains waits).
- The delay is the ``Retry-After`` header when Fly sends one (capped), otherwise a
  jittered exponential back-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.wait import wait_base

from ._errors import FlyRateLimited, FlyTimeout, FlyUnavailable

__all__ = ["RetryPolicy", "retrying"]

log = structlog.get_logger("control_plane.fly")


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (first try included); back-off between ``base_delay_s`` and
    ``max_delay_s`` seconds; a ``Retry-After`` above ``max_retry_after_s`` is capped to it."""

    attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0
    max_retry_after_s: float = 60.0


class _RetryAfterOrBackoff(wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._backoff = wait_random_exponential(multiplier=policy.base_delay_s, max=policy.max_delay_s)

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, FlyRateLimited) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, self._policy.max_retry_after_s)
        return self._backoff(retry_state)


def _should_retry(exc: BaseException, idempotent: bool, retry_timeouts: bool) -> bool:
    if isinstance(exc, FlyRateLimited):
        return True
    if isinstance(exc, FlyUnavailable):
        return idempotent or not exc.request_sent
    if isinstance(exc, FlyTimeout):
        return idempotent and retry_timeouts
    return False


def _log_retry(retry_state: RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    log.warning(
        "fly request failed, retrying",
        attempt=retry_state.attempt_number,
        delay_s=round(retry_state.upcoming_sleep, 3),
        error=str(exc),
    )


def retrying(policy: RetryPolicy, *, idempotent: bool, retry_timeouts: bool = True) -> AsyncRetrying:
    """A tenacity ``AsyncRetrying`` for one request; re-raises the last FlyError."""
    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=_RetryAfterOrBackoff(policy),
        retry=retry_if_exception(lambda exc: _should_retry(exc, idempotent, retry_timeouts)),
        before_sleep=_log_retry,
        reraise=True,
    )
