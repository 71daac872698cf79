"""Reconciliation as a pure function of (database state, exchange reports): what it resolves, settles,
cancels and halts, and that a missing report is never read as an empty one."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

from machine.execution import exit_ids, exit_list_owner
from machine.reconciliation import (CancelList, DbState, ExchangeState, Halt, LivePosition, PendingIntent,
                                    ResolveIntent, SettleExits, plan, stable)

ALICE, BOB = uuid.uuid4(), uuid.uuid4()


def position(trader=ALICE, symbol="BTCUSDT", size="0.01", attempt=1) -> LivePosition:
    return LivePosition(uuid.uuid4(), trader, symbol, symbol[:-4], "long", D(size), attempt)


def working(*positions: LivePosition) -> dict[str, str]:
    return {exit_ids(p.id, p.exit_attempt).list_id: p.symbol for p in positions}


def test_a_sound_account_needs_nothing():
    a, b = position(), position(BOB, "ETHUSDT", "0.5", attempt=3)
    assert plan(DbState([a, b], []), ExchangeState({"BTC": D("0.01"), "ETH": D("0.6")}, working(a, b))) == []


def test_pending_intents_are_resolved_by_asking():
    intent = PendingIntent(uuid.uuid4(), uuid.uuid4(), ALICE, "BTCUSDT", "open", "o01x")
    assert plan(DbState([], [intent]), ExchangeState({}, {})) == [ResolveIntent(intent)]


def test_a_long_without_its_current_list_working_is_settled_and_an_orphan_list_cancelled():
    unprotected, replaced = position(), position(symbol="ETHUSDT", attempt=2)
    old = exit_ids(replaced.id, 1).list_id  # the attempt a cancel-replace left working
    closed = exit_ids(uuid.uuid4(), 1).list_id  # of a position the database has closed
    lists = {**working(replaced), old: "ETHUSDT", closed: "BNBUSDT", "someone-elses-list": "BTCUSDT"}
    actions = plan(DbState([unprotected, replaced], []), ExchangeState({"BTC": D(1), "ETH": D(1)}, lists))
    assert actions[0] == SettleExits(unprotected)
    assert sorted(actions[1:], key=str) == sorted([CancelList("BNBUSDT", closed), CancelList("ETHUSDT", old)], key=str)


def test_a_shortfall_nothing_explains_halts_every_trader_holding_the_asset_with_what_differs():
    a, b, other = position(size="0.01"), position(BOB, size="0.02"), position(symbol="ETHUSDT", size="1")
    actions = plan(DbState([a, b, other], []), ExchangeState({"BTC": D("0.005"), "ETH": D("1")}, working(a, b, other)))
    assert [type(x) for x in actions] == [Halt, Halt] and {x.trader_id for x in actions} == {ALICE, BOB}
    assert "holds 0.005 BTC" in actions[0].reason and "0.03 BTC" in actions[0].reason and "short by 0.025" in \
        actions[0].reason


def test_a_shortfall_something_may_explain_waits_for_the_next_run():
    a = position()
    short = {"BTC": D("0.001")}
    closing = PendingIntent(uuid.uuid4(), a.id, ALICE, "BTCUSDT", "close", "c01x")
    assert not any(isinstance(x, Halt) for x in plan(DbState([a], [closing]), ExchangeState(short, working(a))))
    # its exit list ended: a leg may have filled unbooked; settle first
    assert plan(DbState([a], []), ExchangeState(short, {})) == [SettleExits(a)]
    # settled this run and still short: now it is unexplained
    assert [type(x) for x in plan(DbState([a], []), ExchangeState(short, {}), frozenset({a.id}))] == [SettleExits, Halt]
    # changed while the exchange was asked
    assert plan(DbState([a], [], busy=frozenset({"BTCUSDT"})), ExchangeState(short, working(a))) == []


def test_a_missing_report_is_never_read_as_empty():
    a = position()
    assert plan(DbState([a], []), ExchangeState(None, working(a))) == []  # no balances: nothing is flat
    assert plan(DbState([a], []), ExchangeState({"BTC": D(0)}, None)) == []  # no lists: nothing to settle or halt


def test_stable_keeps_what_did_not_change_and_marks_the_rest_busy():
    a, b = position(), position(symbol="ETHUSDT")
    grown = LivePosition(b.id, b.trader_id, b.symbol, b.base_asset, b.side, b.size * 2, b.exit_attempt)
    intent = PendingIntent(uuid.uuid4(), uuid.uuid4(), ALICE, "BNBUSDT", "open", "o01y")
    merged = stable(DbState([a, b], [intent]), DbState([a, grown], []))
    assert (list(merged.positions), list(merged.pending), merged.busy) == ([a], [intent], frozenset({"ETHUSDT"}))


def test_exit_list_ids_name_their_position_and_attempt():
    pid = uuid.uuid4()
    assert exit_list_owner(exit_ids(pid, 7).list_id) == (pid, 7)
    assert exit_list_owner(exit_ids(pid, 7).take_profit) is None and exit_list_owner("x01nothex") is None


def test_stream_events_settle_the_exits_they_concern_and_update_balances():
    from machine.reconciliation import Balances, SettlePosition, event_actions, exit_leg_owner

    pid = uuid.uuid4()
    ids = exit_ids(pid, 2)
    filled = {"e": "executionReport", "X": "FILLED", "c": ids.take_profit, "C": "", "g": 7}
    cancelled = {"e": "executionReport", "X": "CANCELED", "c": "cancel-1", "C": ids.stop_loss, "g": 7}
    assert event_actions(filled) == event_actions(cancelled) == [SettlePosition(pid)]
    assert event_actions({"e": "listStatus", "L": "ALL_DONE", "C": ids.list_id}) == [SettlePosition(pid)]
    assert event_actions({"e": "listStatus", "L": "EXECUTING", "C": ids.list_id}) == []
    assert event_actions({"e": "executionReport", "X": "NEW", "c": ids.take_profit}) == []  # placed: nothing ended
    assert event_actions({"e": "executionReport", "X": "FILLED", "c": "o01" + pid.hex}) == []  # our own answer has it
    assert event_actions({"e": "outboundAccountPosition", "B": [{"a": "BTC", "f": "0.5", "l": "0.01"}]}) == [
        Balances({"BTC": (D("0.5"), D("0.01"))})]
    for hostile in ({"e": "outboundAccountPosition", "B": [{"a": "BTC", "f": "lots"}]}, {"e": "executionReport"},
                    {"e": "listStatus", "L": "ALL_DONE", "C": "x99" + "z" * 32}, {}, {"e": 5}):
        assert event_actions(hostile) == []
    assert exit_leg_owner(ids.stop_loss) == pid and exit_leg_owner(ids.list_id) is None
