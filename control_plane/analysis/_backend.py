"""The pluggable analysis backend interface.

A backend turns one validated :class:`AnalyzeSignalRequest` into one
:class:`AnalysisResult`. The service awaits :meth:`AnalysisBackend.analyze` under its
own timeout (``create_analysis_app(..., backend_timeout_s=...)``) and cancels it when
the timeout expires, so a backend must be cancellation-safe. Errors a backend wants
the client to see derive from ``control_plane.analysis.AnalysisServiceError`` (e.g.
``BackendUnavailable`` for an upstream rate limit, answered as 503 and retried by the
machine); any other exception is answered as 502 ``BackendFailed``.

Backends: ``rules`` (:class:`~control_plane.analysis.RulesBackend`, offline and
deterministic, the default) and ``llm`` (:class:`~control_plane.analysis.LLMBackend`, any
OpenAI-compatible chat-completions API, using the request's ``aiInstructions``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from control_plane.analysis._schemas import AnalysisResult, AnalyzeSignalRequest

__all__ = ["AnalysisBackend"]


@runtime_checkable
class AnalysisBackend(Protocol):
    """Decides on one signal.

    Attributes:
        name: short backend name reported in ``GET /healthz`` and logs (``"rules"``).
    """

    name: str

    async def analyze(self, request: AnalyzeSignalRequest) -> AnalysisResult:
        """Analyse ``request``; raise ``AnalysisServiceError`` subclasses on failure."""
        ...
