"""HTTP client of the analysis endpoint (``POST /analyze-signal``, seed 002).

Retry policy (tenacity): up to ``max_attempts`` HTTP attempts; retried are connection
errors, timeouts (``timeout_s`` per attempt), 429 and 5xx answers. The wait before
retry ``n`` (1-based) is ``min(backoff_initial_s * 2**(n-1) + uniform(0,
backoff_jitter_s), backoff_max_s)`` (tenacity ``wait_exponential`` + ``wait_random``);
a ``Retry-After`` header (seconds) lengthens it, up to ``backoff_max_s``. Any other 4xx raises
:class:`AnalysisRejected` at once; exhausted retries raise :class:`AnalysisUnavailable`;
an unusable 2xx body raises :class:`AnalysisInvalidResponse`. A decision that parses
but must not be executed comes back with ``valid=False`` (see ``_decision``).

:class:`AnalysisClientStats` counts requests, attempts and outcomes for ``/metrics``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from machine.analysis._decision import AnalysisDecision, parse_analysis_response
from machine.analysis._errors import (
    AnalysisError,
    AnalysisInvalidResponse,
    AnalysisRejected,
    AnalysisUnavailable,
)
from machine.analysis._request import AnalysisRequest

__all__ = ["AnalysisClient", "AnalysisClientStats"]

log = structlog.get_logger("machine.analysis")


class _RetryableFailure(AnalysisError):
    """One failed attempt worth retrying (internal; surfaces as AnalysisUnavailable)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass
class AnalysisClientStats:
    """Counters since the client was created (monotonic, for ``/metrics``).

    ``requests``: ``analyze`` calls; ``attempts``: HTTP attempts; ``retries``: attempts
    after a retryable failure; ``successes``: parsed decisions (valid or not);
    ``invalid_decisions``: of those, ``valid=False``; ``unavailable`` / ``rejected`` /
    ``invalid_responses``: calls that raised that error; ``last_duration_s``: wall time
    of the last call including retries.
    """

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    successes: int = 0
    invalid_decisions: int = 0
    unavailable: int = 0
    rejected: int = 0
    invalid_responses: int = 0
    last_duration_s: float | None = None

    @property
    def failures(self) -> int:
        """Calls that raised."""
        return self.unavailable + self.rejected + self.invalid_responses

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failures": self.failures}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the exponential backoff


def _error_text(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return response.text[:200]


class AnalysisClient:
    """Calls the analysis endpoint; use as ``async with`` or call :meth:`aclose`.

    Args:
        url: full endpoint URL, e.g. ``http://127.0.0.1:8081/analyze-signal`` (ANALYSIS_URL).
        token: bearer token (ANALYSIS_TOKEN).
        timeout_s: per-attempt timeout (connect, write, read, pool), seconds.
        max_attempts: HTTP attempts per call, >= 1.
        backoff_initial_s, backoff_max_s, backoff_jitter_s: retry waits (module docstring).

    Raises:
        ValueError: a URL that is not http(s), an empty token or a non-positive setting.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 3,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 8.0,
        backoff_jitter_s: float = 0.5,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"analysis url must be http(s)://host[:port]/path, got {url!r}")
        if not token:
            raise ValueError("analysis token must not be empty")
        if timeout_s <= 0 or max_attempts < 1 or backoff_initial_s < 0 or backoff_max_s < 0:
            raise ValueError("timeout_s and max_attempts must be positive, backoffs >= 0")
        self.url = url
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.stats = AnalysisClientStats()
        self._backoff = wait_exponential(multiplier=backoff_initial_s, max=backoff_max_s) + wait_random(
            0, backoff_jitter_s
        )
        self._backoff_max_s = backoff_max_s
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )

    async def __aenter__(self) -> AnalysisClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def _wait(self, state: RetryCallState) -> float:
        wait = min(self._backoff(state), self._backoff_max_s)
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, _RetryableFailure) and failure.retry_after_s is not None:
            wait = max(wait, min(failure.retry_after_s, self._backoff_max_s))
        return wait

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        failure = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "analysis_retry",
            attempt=state.attempt_number,
            max_attempts=self.max_attempts,
            wait_s=round(state.upcoming_sleep, 3),
            error=str(failure),
        )

    async def _attempt(self, body: bytes) -> AnalysisDecision:
        self.stats.attempts += 1
        try:
            response = await self._http.post(self.url, content=body)
        except httpx.TimeoutException as exc:
            raise _RetryableFailure(f"timed out after {self.timeout_s}s ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _RetryableFailure(f"connection failed: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise _RetryableFailure(
                f"answered {status}: {_error_text(response)}",
                status=status,
                retry_after_s=_retry_after(response),
            )
        if 400 <= status < 500:
            raise AnalysisRejected(status, _error_text(response))
        if not 200 <= status < 300:
            raise AnalysisInvalidResponse(f"analysis endpoint answered {status}")
        return parse_analysis_response(response.content)

    async def analyze(self, request: AnalysisRequest) -> AnalysisDecision:
        """POST ``request`` and parse the decision (policy and errors: module docstring).

        Raises:
            AnalysisUnavailable: retries exhausted.
            AnalysisRejected: a 4xx other than 429.
            AnalysisInvalidResponse: a 2xx body that is not a usable analysis.
        """
        body = request.to_json()
        self.stats.requests += 1
        started = time.perf_counter()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_RetryableFailure),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            decision = await retrying(self._attempt, body)
        except _RetryableFailure as exc:
            self.stats.unavailable += 1
            raise AnalysisUnavailable(
                f"analysis endpoint unavailable after {self.max_attempts} attempts: {exc}",
                attempts=self.max_attempts,
                status=exc.status,
            ) from exc
        except AnalysisRejected:
            self.stats.rejected += 1
            raise
        except AnalysisInvalidResponse:
            self.stats.invalid_responses += 1
            raise
        finally:
            self.stats.last_duration_s = time.perf_counter() - started
        self.stats.successes += 1
        if not decision.valid:
            self.stats.invalid_decisions += 1
            log.warning(
                "analysis_decision_invalid",
                signal_id=request.signal_id,
                decision=decision.decision,
                reason=decision.invalid_reason,
            )
        return decision
