"""Analysis client: posts a signal's market data to the analysis endpoint and parses
the decision (seed 002, "2. Analyze Signal").

The machine executes only decisions with ``valid=True`` (see ``_decision``); others
are returned, to be stored, not raised. Errors derive from ``AnalysisError``.
"""

from machine.analysis._client import AnalysisClient, AnalysisClientStats
from machine.analysis._decision import (
    DEFAULT_FRACTIONS,
    EXECUTABLE_DECISIONS,
    KNOWN_DECISIONS,
    AnalysisDecision,
    parse_analysis_response,
)
from machine.analysis._errors import (
    AnalysisError,
    AnalysisInvalidResponse,
    AnalysisRejected,
    AnalysisUnavailable,
)
from machine.analysis._request import AnalysisRequest, OpenPosition, kline_to_wire, ticker_to_wire

__all__ = [
    "DEFAULT_FRACTIONS",
    "EXECUTABLE_DECISIONS",
    "KNOWN_DECISIONS",
    "AnalysisClient",
    "AnalysisClientStats",
    "AnalysisDecision",
    "AnalysisError",
    "AnalysisInvalidResponse",
    "AnalysisRejected",
    "AnalysisRequest",
    "AnalysisUnavailable",
    "OpenPosition",
    "kline_to_wire",
    "parse_analysis_response",
    "ticker_to_wire",
]
