"""Execution: exchange rules, risk gate, order intents, paper fills and live orders (``LiveExecutor``;
not yet wired to live traders)."""

from machine.execution._closing import CloseRequest, CloseResult
from machine.execution._errors import (ExecutionError, NoPrice, OrderRejected, OutcomeUnknown, RateLimited,
                                       RiskDenied, StalePrice)
from machine.execution._live import LiveExecutor
from machine.execution._orders import Executor, Fill, OrderRequest, Trigger, client_order_id, step_order_id
from machine.execution._paper import PaperExecutor
from machine.execution._rules import SymbolRules
from machine.execution._service import ExecutionService

__all__ = [
    "CloseRequest",
    "CloseResult",
    "ExecutionError",
    "ExecutionService",
    "Executor",
    "Fill",
    "LiveExecutor",
    "NoPrice",
    "OrderRejected",
    "OrderRequest",
    "OutcomeUnknown",
    "PaperExecutor",
    "RateLimited",
    "RiskDenied",
    "StalePrice",
    "SymbolRules",
    "Trigger",
    "client_order_id",
    "step_order_id",
]
