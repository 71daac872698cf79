"""Live trading of a replay, every decision, audited against the exchange: traders open on signals, the
exchange's OCO exits close positions, re-analyses take part out, scale in and out, move the stop and the
target (a cancel-replace of the exits) and close; an open short, a flip into a short and a hedge are
stored with their reason and never executed (live spot cannot short). At the end the simulator's order
log, fills and balances equal the database to the unit of each asset (``live_testkit.audit``, independent
of the machine's code)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from machine_harness import LIVE_KEY, LIVE_START_USDT, AlwaysOpenLong, add_trader, wait_for
from live_testkit import audit
from test_machine_e2e import ALWAYS
from test_machine_live import live_env

pytestmark = pytest.mark.timeout(300)


async def test_every_decision_live_reconciles_with_the_exchange(machine_stack, monkeypatch):
    monkeypatch.setattr(AlwaysOpenLong, "reanalysis", (
        "partial_close", "scale_in", "update_stop_loss", "update_take_profit", "scale_out", "flip_position", "hedge",
        "watch", "close"))
    monkeypatch.setattr(AlwaysOpenLong, "per_symbol", {"LTCUSDT": "open_short"})
    monkeypatch.setattr(AlwaysOpenLong, "_turns", {})
    make_machine, pool, user_id, sim = machine_stack
    await add_trader(pool, user_id, "manager", ALWAYS, mode="live", reanalysis_interval="5m_close",
                     symbols=["BTCUSDT", "ETHUSDT", "BNBUSDT"], stop_loss_pct=3, take_profit_pct=3,
                     position_size_pct=10, max_positions=3)
    await add_trader(pool, user_id, "tight", ALWAYS, mode="live", reanalysis_interval="1h_close",
                     symbols=["XRPUSDT", "ADAUSDT", "LTCUSDT"], stop_loss_pct=0.3, take_profit_pct=0.3,
                     position_size_pct=5, max_positions=3)
    machine = make_machine(**live_env())
    await machine.start()

    async def everything_happened() -> bool:
        rows = await pool.fetch("SELECT DISTINCT purpose FROM trades WHERE status = 'filled'")
        reasons = await pool.fetch("SELECT DISTINCT close_reason FROM positions WHERE status = 'closed'")
        done = {r["decision"] for r in await pool.fetch("SELECT DISTINCT decision FROM order_sequences "
                                                        "WHERE status = 'done'")}
        refused = {r["decision"] for r in await pool.fetch(
            "SELECT DISTINCT decision FROM analysis_history WHERE NOT executable AND rejection_reason LIKE "
            "'%cannot short%'")}
        return ({"open", "close", "increase", "reduce"} <= {r["purpose"] for r in rows}
                and {"open_long", "partial_close", "scale_in", "update_stop_loss", "update_take_profit", "scale_out",
                     "close"} <= done and {"open_short", "flip_position"} <= refused
                and {"take_profit", "stop_loss"} & {r["close_reason"] for r in reasons})

    await wait_for(everything_happened, 200, "every decision executed or refused, and an exit of the exchange",
                   every_s=1.0)
    sim.freeze()  # the market stops: the shutdown settles the exits against a still exchange
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(60) == 0
    report = await audit(pool, sim, LIVE_KEY, {"USDT": D(LIVE_START_USDT)})
    assert report.orders > 10 and report.fills > 10
    if not report.sound:  # what differs, with the positions concerned
        rows = await pool.fetch("SELECT p.id, p.status, p.close_reason, p.exit_attempt, p.exit_order_list_id, p.size, "
                                "(SELECT array_agg(t.client_order_id || ':' || t.purpose || ':' || t.status) FROM trades t "
                                "WHERE t.position_id = p.id) AS trades FROM positions p WHERE p.mode = 'live'")
        print("\n".join(str(dict(r)) for r in rows))
        print(report)
    assert report.sound, report
    assert await pool.fetchval("SELECT count(*) FROM analysis_history WHERE decision = 'hedge' AND NOT executable "
                               "AND rejection_reason LIKE '%no hedge mode%'") > 0
    replaced = await pool.fetchval("SELECT count(*) FROM positions WHERE exit_attempt > 1")
    assert replaced > 0  # exits were cancel-replaced (scale-in, partial close, moved stop)
