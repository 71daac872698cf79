"""Analysis service: ``POST /analyze-signal`` with a pluggable backend (seed 002).

The machine posts a signal's market data; a backend (``RulesBackend`` by default,
offline and deterministic, or ``LLMBackend`` for any OpenAI-compatible API) answers a decision with reasoning, confidence and
stop-loss/take-profit. See ``_app`` for routes and errors, ``_schemas`` for the wire
shapes, ``_rules`` for the exact rule.
"""

from control_plane.analysis._app import (
    ANALYSIS_PATH,
    AnalysisServer,
    OnAnalysis,
    create_analysis_app,
    serve_analysis,
)
from control_plane.analysis._backend import AnalysisBackend
from control_plane.analysis._errors import (
    AnalysisServiceError,
    BackendFailed,
    BackendTimeout,
    BackendUnavailable,
    InsufficientMarketData,
    InvalidAnalysisRequest,
)
from control_plane.analysis._llm import DECISION_SCHEMA, PROMPT_VERSION, LLMBackend
from control_plane.analysis._rules import RULE_VERSION, RuleParameters, RulesBackend
from control_plane.analysis._schemas import (
    AnalysisResult,
    AnalyzeSignalRequest,
    Decision,
    Kline,
    MarketData,
    OpenPosition,
    Ticker,
)

__all__ = [
    "ANALYSIS_PATH",
    "DECISION_SCHEMA",
    "PROMPT_VERSION",
    "LLMBackend",
    "RULE_VERSION",
    "AnalysisBackend",
    "AnalysisResult",
    "AnalysisServer",
    "AnalysisServiceError",
    "AnalyzeSignalRequest",
    "BackendFailed",
    "BackendTimeout",
    "BackendUnavailable",
    "Decision",
    "InsufficientMarketData",
    "InvalidAnalysisRequest",
    "Kline",
    "MarketData",
    "OnAnalysis",
    "OpenPosition",
    "RuleParameters",
    "RulesBackend",
    "Ticker",
    "create_analysis_app",
    "serve_analysis",
]
