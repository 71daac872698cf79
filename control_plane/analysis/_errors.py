"""Errors of the analysis service (``control_plane.analysis``).

Every error a backend may raise derives from :class:`AnalysisServiceError`.
Each class carries the HTTP status the endpoint answers with, so the web layer
maps errors to responses in one place and a new backend (the LLM backend of a
later issue) only has to pick the right class:

=============================  ======  ==========================================
class                          status  meaning
=============================  ======  ==========================================
``InvalidAnalysisRequest``     400     the request body is malformed
``InsufficientMarketData``     422     well-formed, but the rule cannot be applied
                                       (e.g. no RSI and too few klines for one)
``BackendFailed``              502     the backend failed on this request
``BackendUnavailable``         503     the backend cannot serve now (rate limit,
                                       upstream down); worth a retry
``BackendTimeout``             504     the backend did not answer in time
=============================  ======  ==========================================

5xx answers are retried by the machine's analysis client, 4xx answers are not.
"""

from __future__ import annotations

__all__ = [
    "AnalysisServiceError",
    "BackendFailed",
    "BackendTimeout",
    "BackendUnavailable",
    "InsufficientMarketData",
    "InvalidAnalysisRequest",
]


class AnalysisServiceError(Exception):
    """Root of the analysis service's errors; ``status`` is the HTTP answer."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidAnalysisRequest(AnalysisServiceError):
    """The request body is not valid JSON or does not match the request schema."""

    status = 400


class InsufficientMarketData(AnalysisServiceError):
    """The request is well-formed but lacks what the backend needs to decide."""

    status = 422


class BackendFailed(AnalysisServiceError):
    """The backend raised while analysing this request."""

    status = 502


class BackendUnavailable(AnalysisServiceError):
    """The backend cannot serve right now (rate limited, upstream unreachable)."""

    status = 503


class BackendTimeout(AnalysisServiceError):
    """The backend did not answer within the service's backend timeout."""

    status = 504
