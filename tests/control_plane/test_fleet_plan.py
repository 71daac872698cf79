"""Reconciliation as pure functions: desired state and the plan for every mix of rows and Machines."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from control_plane.fleet import Desired, FlyMachine, MachineRow, Subscriber, desired, plan_user

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
GRACE = timedelta(days=3)
U = "11111111-1111-1111-1111-111111111111"
WANT_PRO = Desired(True, 256, "active")
NOT_WANTED = Desired(False, None, "subscription_cancelled")


def _row(machine_id="m1", memory_mb=256, http_url="http://127.0.0.1:9/"):
    return MachineRow("row-1", machine_id, "running", memory_mb, http_url)


def _m(machine_id="m1", state="started", memory_mb=256, created_at="2026-12-06T10:00:00Z"):
    return FlyMachine(machine_id, U, state, memory_mb, created_at)


@pytest.mark.parametrize(("subscriber", "wanted", "memory_mb", "reason"), [
    (Subscriber(U, "pro", "active"), True, 256, "active"),
    (Subscriber(U, "elite", "active"), True, 512, "active"),
    (Subscriber(U, "power", "active"), True, 1024, "active"),
    (Subscriber(U, "free", "active"), False, None, "tier_free"),
    (Subscriber(U, "pro", "cancelled"), False, None, "subscription_cancelled"),
    (Subscriber(U, "pro", None), False, None, "subscription_none"),
    (Subscriber(U, "pro", "past_due", NOW - timedelta(days=1)), True, 256, "past_due_in_grace"),
    (Subscriber(U, "pro", "past_due", NOW - timedelta(days=3)), False, None, "past_due_beyond_grace"),
    (None, False, None, "user_deleted"),
])
def test_desired(subscriber, wanted, memory_mb, reason):
    assert desired(subscriber, NOW, GRACE) == Desired(wanted, memory_mb, reason)


def _kinds(actions):
    return [(a.kind, a.machine_id) for a in actions]


def test_converged_states_plan_nothing():
    assert plan_user(U, WANT_PRO, _row(), [_m()], "pro") == []
    assert plan_user(U, NOT_WANTED, None, [], None) == []
    assert plan_user(U, WANT_PRO, _row(), [_m(state="starting")], "pro") == []
    # A Machine on its way out is neither kept nor acted on twice.
    assert plan_user(U, NOT_WANTED, None, [_m(state="destroying")], None) == []


def test_wanted_and_nothing_anywhere_is_created():
    actions = plan_user(U, WANT_PRO, None, [], "pro")
    assert _kinds(actions) == [("create", None)] and actions[0].memory_mb == 256 and actions[0].tier == "pro"


@pytest.mark.parametrize(("row", "reason"), [(_row("m-gone"), "machine_gone"), (_row("pending-x"), "create_unfinished")])
def test_a_row_whose_machine_is_gone_is_replaced(row, reason):
    actions = plan_user(U, WANT_PRO, row, [_m("m-other", state="destroyed")], "pro")
    assert _kinds(actions) == [("close_row", row.machine_id), ("create", None)]
    assert actions[0].reason == reason


def test_a_machine_the_table_lacks_is_adopted_not_recreated():
    assert _kinds(plan_user(U, WANT_PRO, None, [_m("m7")], "pro")) == [("adopt", "m7")]
    # A pending row (crash between create and the row update) adopts the tagged Machine too.
    assert _kinds(plan_user(U, WANT_PRO, _row("pending-1"), [_m("m7")], "pro")) == [("adopt", "m7")]


def test_duplicates_keep_the_rows_machine_else_the_oldest():
    machines = [_m("m2", created_at="2026-12-06T11:00:00Z"), _m("m1", created_at="2026-12-06T10:00:00Z")]
    assert _kinds(plan_user(U, WANT_PRO, _row("m2"), machines, "pro")) == [("destroy_duplicate", "m1")]
    assert _kinds(plan_user(U, WANT_PRO, None, machines, "pro")) == [("adopt", "m1"), ("destroy_duplicate", "m2")]


def test_tier_change_resizes_and_a_stopped_machine_is_started():
    actions = plan_user(U, Desired(True, 1024, "active"), _row(), [_m()], "power")
    assert _kinds(actions) == [("resize", "m1")] and actions[0].memory_mb == 1024 and actions[0].tier == "power"
    assert _kinds(plan_user(U, WANT_PRO, _row(), [_m(state="stopped")], "pro")) == [("start", "m1")]


def test_unwanted_machines_are_retired_and_rows_closed():
    assert _kinds(plan_user(U, NOT_WANTED, _row(), [_m()], None)) == [("retire", "m1")]
    assert _kinds(plan_user(U, NOT_WANTED, _row(), [], None)) == [("close_row", "m1")]
    both = plan_user(U, NOT_WANTED, _row("m1"), [_m("m1"), _m("m2")], None)
    assert _kinds(both) == [("retire", "m1"), ("retire", "m2")]
    assert all(a.reason == "subscription_cancelled" for a in both)


def test_only_fly_mutations_count_as_mutating():
    kinds = {a.kind: a.mutates_fly for a in [
        *plan_user(U, WANT_PRO, _row("gone"), [], "pro"), *plan_user(U, WANT_PRO, None, [_m()], "pro")]}
    assert kinds == {"close_row": False, "create": True, "adopt": False}


TIMEOUT = timedelta(minutes=2)


def _hb_row(status="running", heartbeat=None, restarted=None, created=NOW - timedelta(hours=1)):
    return MachineRow("row-1", "m1", status, 256, "http://x", created, heartbeat, restarted)


def _hb_plan(row, state="started"):
    return plan_user(U, WANT_PRO, row, [_m(state=state)], "pro", now=NOW, heartbeat_timeout=TIMEOUT)


def test_a_machine_heartbeating_in_time_needs_nothing():
    assert _hb_plan(_hb_row(heartbeat=NOW - timedelta(seconds=30))) == []
    assert _hb_plan(_hb_row(heartbeat=None, created=NOW - timedelta(seconds=90))) == []  # still booting
    # Without a clock or a timeout heartbeats are not judged.
    assert plan_user(U, WANT_PRO, _hb_row(), [_m()], "pro") == []


def test_silence_restarts_then_replaces():
    silent = _hb_row(heartbeat=NOW - timedelta(minutes=3))
    assert _kinds(_hb_plan(silent)) == [("restart", "m1")]
    assert _kinds(_hb_plan(_hb_row(heartbeat=None, created=NOW - timedelta(minutes=3)))) == [("restart", "m1")]
    # Restarted 1 min ago: given the timeout to come back.
    restarted = _hb_row("error", heartbeat=NOW - timedelta(minutes=4), restarted=NOW - timedelta(minutes=1))
    assert _hb_plan(restarted) == []
    # Still silent a timeout after the restart: replaced by a new machine.
    hopeless = _hb_row("error", heartbeat=NOW - timedelta(minutes=6), restarted=NOW - timedelta(minutes=3))
    actions = _hb_plan(hopeless)
    assert _kinds(actions) == [("replace", "m1"), ("create", None)] and actions[1].memory_mb == 256


def test_a_heartbeat_after_a_restart_starts_a_new_episode():
    # It came back after the restart, then went silent again: restarted again, not replaced.
    again = _hb_row("running", heartbeat=NOW - timedelta(minutes=3), restarted=NOW - timedelta(minutes=10))
    assert _kinds(_hb_plan(again)) == [("restart", "m1")]


def test_heartbeats_are_not_judged_while_fly_is_changing_the_machine():
    silent = _hb_row(heartbeat=NOW - timedelta(minutes=30))
    for state in ("starting", "replacing", "stopping", "created"):
        assert _hb_plan(silent, state=state) == []
    assert _hb_plan(_hb_row("stopping", heartbeat=NOW - timedelta(minutes=30))) == []
