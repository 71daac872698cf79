"""Execution: exchange rules, risk gate, order intents, paper fills (live comes later)."""

from machine.execution._closing import CloseRequest, CloseResult
from machine.execution._errors import ExecutionError, NoPrice, RiskDenied, StalePrice
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
    "NoPrice",
    "OrderRequest",
    "PaperExecutor",
    "RiskDenied",
    "StalePrice",
    "SymbolRules",
    "Trigger",
    "client_order_id",
    "step_order_id",
]
