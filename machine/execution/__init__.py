"""Execution: exchange rules, risk gate, order intents, paper fills, live orders (``LiveExecutor``) and a
live position's exit order list on the exchange (``_exits``)."""

from machine.execution._closing import CloseRequest, CloseResult
from machine.execution._errors import (ExecutionError, NoPrice, OrderRejected, OutcomeUnknown, RateLimited,
                                       RiskDenied, StalePrice)
from machine.execution._live import LiveExecutor
from machine.execution._orders import (Executor, ExitIds, ExitReport, Fill, OrderRequest, Trigger, client_order_id,
                                       exit_ids, exit_list_owner, step_order_id)
from machine.execution._paper import PaperExecutor
from machine.execution._rules import SymbolRules
from machine.execution._service import ExecutionService

__all__ = [
    "CloseRequest",
    "CloseResult",
    "ExecutionError",
    "ExecutionService",
    "Executor",
    "ExitIds",
    "ExitReport",
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
    "exit_ids",
    "exit_list_owner",
    "step_order_id",
]
