"""Execution: risk gate, order intents, paper fills (live comes later)."""

from machine.execution._errors import ExecutionError, NoPrice, RiskDenied
from machine.execution._orders import Executor, Fill, OrderRequest, client_order_id
from machine.execution._paper import PaperExecutor
from machine.execution._service import ExecutionService, SymbolRules

__all__ = [
    "ExecutionError",
    "ExecutionService",
    "Executor",
    "Fill",
    "NoPrice",
    "OrderRequest",
    "PaperExecutor",
    "RiskDenied",
    "SymbolRules",
    "client_order_id",
]
