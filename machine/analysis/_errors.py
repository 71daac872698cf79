"""Errors of the machine's analysis client (``machine.analysis``).

``AnalysisError`` is the root. A decision that parses but must not be executed (an
unknown or not-yet-supported decision, an inconsistent stop-loss, ...) is *not* an
error: it comes back as ``AnalysisDecision(valid=False, invalid_reason=...)`` so the
caller stores it and does not act on it.
"""

from __future__ import annotations

__all__ = [
    "AnalysisError",
    "AnalysisInvalidResponse",
    "AnalysisRejected",
    "AnalysisUnavailable",
]


class AnalysisError(Exception):
    """Root of the analysis client's errors."""


class AnalysisUnavailable(AnalysisError):
    """No answer after ``attempts`` tries (connection errors, timeouts, 429, 5xx).

    Attributes:
        attempts: how many HTTP attempts were made.
        status: HTTP status of the last answer, ``None`` if the last attempt got none.
    """

    def __init__(self, message: str, *, attempts: int, status: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status = status


class AnalysisRejected(AnalysisError):
    """The endpoint answered 4xx (not 429): bad token, malformed request, lacking data.

    Not retried: the same request would be rejected again.

    Attributes:
        status: the HTTP status (401, 400, 422, ...).
        error: the ``error`` text of the ``{"success": false}`` body, or the raw body.
    """

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"analysis endpoint rejected the request ({status}): {error}")
        self.status = status
        self.error = error


class AnalysisInvalidResponse(AnalysisError):
    """A 2xx answer that is not ``{"success": true, "analysis": {...}}`` with a
    string ``decision``: nothing can be stored or executed from it."""
