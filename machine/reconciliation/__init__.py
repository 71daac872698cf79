"""Reconciliation of the live account with the database: pure planning (``_plan``), run at boot and
periodically (``_service``)."""

from machine.reconciliation._events import Balances, SettlePosition, event_actions, exit_leg_owner
from machine.reconciliation._plan import (Action, CancelList, DbState, ExchangeState, Halt, LivePosition,
                                          PendingIntent, ResolveIntent, SettleExits, plan, stable)
from machine.reconciliation._service import Reconciler

__all__ = ["Action", "Balances", "SettlePosition", "event_actions", "exit_leg_owner", "CancelList", "DbState", "ExchangeState", "Halt", "LivePosition", "PendingIntent", "Reconciler",
           "ResolveIntent", "SettleExits", "plan", "stable"]
