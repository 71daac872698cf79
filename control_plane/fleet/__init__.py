"""The fleet: exactly one machine per paid subscriber, converged by a reconcile loop.

- ``_plan``: pure functions, desired state of a subscriber and the actions to get there.
- ``_reconciler``: one pass (snapshot, plan, act per subscriber under an advisory lock,
  ``fleet_events``), safe with several replicas.
- ``_service``: the loop of ``control-plane serve``: a pass every period, and a
  subscriber's pass within seconds of a change announced on ``fleet_changes`` (NOTIFY).
"""

from ._plan import PAID_TIERS, Action, Desired, FlyMachine, MachineRow, Subscriber, desired, plan_user, silence
from ._reconciler import DEFAULT_GRACE, DEFAULT_HEARTBEAT_TIMEOUT, FLEET_LOCK_CLASS, PassReport, Reconciler
from ._service import FLEET_CHANNEL, FleetService

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "FLEET_CHANNEL",
    "FLEET_LOCK_CLASS",
    "PAID_TIERS",
    "Action",
    "Desired",
    "FleetService",
    "FlyMachine",
    "MachineRow",
    "PassReport",
    "Reconciler",
    "Subscriber",
    "desired",
    "plan_user",
    "silence",
]
