"""Risk and control (issue 21, part 2): states ACTIVE / REDUCING / HALTED per trader and per
user, the gate asked before every order, and the trader metrics.

``_gate`` (pure: states, transitions, the gate), ``_metrics`` (pure: seed 001's metrics plus
max drawdown and profit factor) and ``_service`` (the engine: persisted states, periodic
equity readings, denials stored as events)."""

from machine.risk._gate import ACTIVE, HALTED, REDUCING, OrderKind, TraderLimits, evaluate_trader, evaluate_user, gate
from machine.risk._metrics import TraderMetrics, compute_metrics
from machine.risk._service import RiskService

__all__ = [
    "ACTIVE",
    "HALTED",
    "REDUCING",
    "OrderKind",
    "RiskService",
    "TraderLimits",
    "TraderMetrics",
    "compute_metrics",
    "evaluate_trader",
    "evaluate_user",
    "gate",
]
