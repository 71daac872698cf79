"""Reconciliation as pure functions: what one subscriber should have, and the actions that get there.

Inputs are plain snapshots, no I/O: the subscriber's row in ``users``
(:class:`Subscriber`), its live ``fly_machines`` row (:class:`MachineRow`) and the
Machines Fly reports tagged with its user id (:class:`FlyMachine`). :func:`desired`
decides whether it should have a machine and of which size; :func:`plan_user` returns
the ordered actions that converge the actual state to that, from any mix of the two:

- wanted, nothing on Fly: ``create`` (after ``close_row`` when a row still names a
  machine Fly no longer has: the machine is replaced);
- wanted, on Fly: the Machine the row names is kept, otherwise the oldest is ``adopt``\\ ed
  (its row written); any other tagged Machine is a ``destroy_duplicate``; a stopped kept
  Machine is ``start``\\ ed; a kept Machine of the wrong size is ``resize``\\ d;
- not wanted: every tagged Machine is ``retire``\\ d (graceful ``POST /shutdown`` first when
  the row knows its URL; the subscriber's app goes with its last Machine), a row without a
  Machine is ``close_row``\\ d, an app without Machines is ``delete_app``\\ d;
- wanted and started, but silent (no heartbeat, see :func:`silence`) for longer than the
  heartbeat timeout: ``restart`` (the row becomes ``error``); still silent a timeout after
  that restart: ``replace`` (destroyed without ceremony: it cannot answer) and ``create``.

A plan is recomputed from fresh state for each subscriber under its lock before it is
carried out (``_reconciler``), so a stale snapshot never acts twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

__all__ = [
    "PAID_TIERS",
    "Action",
    "Desired",
    "FlyMachine",
    "MachineRow",
    "Subscriber",
    "desired",
    "plan_user",
    "silence",
]

#: Memory per paid tier, in MB (Fly ``guest.memory_mb``).
PAID_TIERS: Mapping[str, int] = {"pro": 256, "elite": 512, "power": 1024}
#: Fly states of a Machine that exists but is not running (``start`` brings it back).
_STOPPED = frozenset({"stopped", "suspended", "failed"})
#: Fly states of a Machine on its way out: neither kept nor acted on.
_GOING = frozenset({"destroying", "destroyed"})

ActionKind = Literal[
    "create", "adopt", "start", "resize", "retire", "destroy_duplicate", "close_row", "restart", "replace",
    "delete_app",
]


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A ``users`` row: ``tier`` (free/pro/elite/power), ``status`` (active/cancelled/past_due/None)."""

    user_id: str
    tier: str
    status: str | None
    past_due_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class MachineRow:
    """The live ``fly_machines`` row of a subscriber (``machine_id`` is ``pending-...`` before Fly answered)."""

    row_id: str
    machine_id: str
    status: str
    memory_mb: int | None
    http_url: str | None
    created_at: datetime | None = None
    last_heartbeat: datetime | None = None
    restarted_at: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.machine_id.startswith("pending-")


@dataclass(frozen=True, slots=True)
class FlyMachine:
    """A Machine Fly reports, tagged ``metadata.user_id``; ``created_at`` as Fly sends it (ISO 8601)."""

    machine_id: str
    user_id: str
    state: str
    memory_mb: int | None
    created_at: str = ""


@dataclass(frozen=True, slots=True)
class Desired:
    """Whether the subscriber should have a machine, its size in MB, and why."""

    wanted: bool
    memory_mb: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Action:
    """One step: ``kind``, the subscriber, the Machine it acts on (if any), and the details
    (after a ``retire``, the final state the machine reported: ``openPositions``, ``watchingSignals``)."""

    kind: ActionKind
    user_id: str
    machine_id: str | None = None
    tier: str | None = None
    memory_mb: int | None = None
    reason: str = ""
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def mutates_fly(self) -> bool:
        """Whether the action calls a mutating Fly operation (``adopt`` and ``close_row`` only write rows)."""
        return self.kind not in ("adopt", "close_row")


def desired(subscriber: Subscriber | None, now: datetime, grace: timedelta) -> Desired:
    """A machine for a paid tier with an active subscription, or past due for less than ``grace``.

    ``subscriber`` None (the user was deleted) wants none.
    """
    if subscriber is None:
        return Desired(False, None, "user_deleted")
    memory_mb = PAID_TIERS.get(subscriber.tier)
    if memory_mb is None:
        return Desired(False, None, f"tier_{subscriber.tier}")
    if subscriber.status == "active":
        return Desired(True, memory_mb, "active")
    if subscriber.status == "past_due":
        since = subscriber.past_due_since or now
        if now - since < grace:
            return Desired(True, memory_mb, "past_due_in_grace")
        return Desired(False, None, "past_due_beyond_grace")
    return Desired(False, None, f"subscription_{subscriber.status or 'none'}")


def silence(row: MachineRow, now: datetime) -> timedelta | None:
    """How long the row's machine has been silent: since its last heartbeat, its creation or
    its last restart, whichever is latest (None when none is known)."""
    known = [t for t in (row.last_heartbeat, row.created_at, row.restarted_at) if t is not None]
    return now - max(known) if known else None


def _heartbeat_actions(user_id: str, row: MachineRow, kept: FlyMachine, now: datetime,
                       timeout: timedelta, tier: str | None, memory_mb: int | None) -> list[Action]:
    if kept.state != "started" or row.status not in ("starting", "running", "error"):
        return []
    quiet = silence(row, now)
    if quiet is None or quiet <= timeout:
        return []
    seconds = f"silent {int(quiet.total_seconds())}s"
    restarted_this_episode = row.restarted_at is not None and (
        row.last_heartbeat is None or row.last_heartbeat < row.restarted_at)
    if not restarted_this_episode:
        return [Action("restart", user_id, kept.machine_id, reason=seconds)]
    return [Action("replace", user_id, kept.machine_id, reason=f"{seconds} after a restart"),
            Action("create", user_id, tier=tier, memory_mb=memory_mb, reason="replacement")]


def _kept(row: MachineRow | None, machines: Sequence[FlyMachine]) -> FlyMachine | None:
    if row is not None:
        for machine in machines:
            if machine.machine_id == row.machine_id:
                return machine
    return min(machines, key=lambda m: (m.created_at, m.machine_id)) if machines else None


def plan_user(
    user_id: str,
    want: Desired,
    row: MachineRow | None,
    machines: Sequence[FlyMachine],
    tier: str | None = None,
    *,
    now: datetime | None = None,
    heartbeat_timeout: timedelta | None = None,
    app_exists: bool = False,
) -> list[Action]:
    """The actions converging one subscriber, in the order to take them (see the module doc).

    Heartbeats are judged only with both ``now`` and ``heartbeat_timeout``. ``app_exists``:
    the subscriber's own Fly app exists (an unwanted, empty one is ``delete_app``\\ d)."""
    live = [m for m in machines if m.state not in _GOING]
    actions: list[Action] = []
    if not want.wanted:
        for machine in sorted(live, key=lambda m: m.machine_id):
            actions.append(Action("retire", user_id, machine.machine_id, reason=want.reason))
        if row is not None and not any(m.machine_id == row.machine_id for m in live):
            actions.append(Action("close_row", user_id, row.machine_id, reason=want.reason))
        if app_exists and not live:
            actions.append(Action("delete_app", user_id, reason=want.reason))
        return actions

    kept = _kept(row, live)
    if kept is None:
        if row is not None:
            gone = "create_unfinished" if row.pending else "machine_gone"
            actions.append(Action("close_row", user_id, row.machine_id, reason=gone))
        actions.append(Action("create", user_id, tier=tier, memory_mb=want.memory_mb, reason=want.reason))
        return actions
    if row is None or row.machine_id != kept.machine_id:
        actions.append(Action("adopt", user_id, kept.machine_id, memory_mb=kept.memory_mb,
                              reason="untracked" if row is None else "row_names_another"))
    for machine in sorted(live, key=lambda m: m.machine_id):
        if machine.machine_id != kept.machine_id:
            actions.append(Action("destroy_duplicate", user_id, machine.machine_id, reason="duplicate"))
    if kept.memory_mb != want.memory_mb:
        actions.append(Action("resize", user_id, kept.machine_id, tier=tier, memory_mb=want.memory_mb,
                              reason=f"{kept.memory_mb} MB -> {want.memory_mb} MB"))
    elif kept.state in _STOPPED:
        actions.append(Action("start", user_id, kept.machine_id, reason=f"was {kept.state}"))
    elif row is not None and row.machine_id == kept.machine_id and now is not None and heartbeat_timeout is not None:
        actions += _heartbeat_actions(user_id, row, kept, now, heartbeat_timeout, tier, want.memory_mb)
    return actions
