"""The orchestrator across reloads and restarts, as a real machine process on replayed klines:
reload-traders adding a trader, changing its code or settings and adding an interval; a restart
resuming watched signals and closing interrupted ones; a SIGKILL between an order's intent and
its fill."""

from __future__ import annotations

import pytest

from machine_harness import AlwaysOpenLong, add_trader, wait_for
from test_machine_e2e import ALWAYS, assert_consistent, count

pytestmark = pytest.mark.timeout(240)

NEVER = "def check_signal(symbol, ticker, klines):\n    return False\n"
FIVE_MINUTE = "def check_signal(symbol, ticker, klines):\n    return len(klines['5m']) > 3 and klines['5m'][-1].close > 0\n"
WIDE = {"stop_loss_pct": 50, "take_profit_pct": 50}


async def reload(machine) -> dict:
    response = await machine.post("/reload-traders", token=machine.token)
    assert response.status_code == 200, response.text
    body = response.json()
    return {k: body[k] for k in ("added", "changed", "removed", "rejected")}


async def test_reload_adds_a_trader_with_a_new_interval_and_applies_changed_code_and_settings(machine_stack):
    make_machine, pool, user_id, sim = machine_stack
    a = await add_trader(pool, user_id, "a", NEVER, symbols=["BTCUSDT"], **WIDE)
    machine = make_machine()
    await machine.start()

    async def positions(trader, symbol) -> int:
        return await count(pool, "SELECT count(*) FROM positions WHERE trader_id = $1 AND symbol = $2", trader, symbol)

    # a trader reading 5m klines, an interval nothing streamed or stored before
    b = await add_trader(pool, user_id, "b", FIVE_MINUTE, timeframes=["1m", "5m"], symbols=["ETHUSDT"], **WIDE)
    assert await reload(machine) == {"added": 1, "changed": 0, "removed": 0, "rejected": 0}
    await wait_for(lambda: positions(b, "ETHUSDT"), 90, "the added trader's 5m filter to match")
    assert await pool.fetchval("SELECT status FROM traders WHERE id = $1", b) == "active"  # its filter never raised

    # new code (the control plane bumps the version with every edit)
    await pool.execute("UPDATE traders SET filter_code = $2, version = version + 1 WHERE id = $1", a, ALWAYS)
    assert await reload(machine) == {"added": 0, "changed": 1, "removed": 0, "rejected": 0}
    await wait_for(lambda: positions(a, "BTCUSDT"), 60, "the changed code to match")

    # settings edited without a version bump still count: the re-analysis interval and the instructions
    await pool.execute("UPDATE traders SET reanalysis_interval = '1m_close' WHERE id = $1", a)
    assert await reload(machine) == {"added": 0, "changed": 1, "removed": 0, "rejected": 0}
    await pool.execute("UPDATE traders SET ai_instructions = 'be careful' WHERE id = $1", a)
    assert await reload(machine) == {"added": 0, "changed": 1, "removed": 0, "rejected": 0}
    assert await reload(machine) == {"added": 0, "changed": 0, "removed": 0, "rejected": 0}

    await pool.execute("UPDATE traders SET status = 'paused' WHERE id = $1", b)
    assert await reload(machine) == {"added": 0, "changed": 0, "removed": 1, "rejected": 0}
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0
    await assert_consistent(pool, user_id)


async def test_a_restart_resumes_watched_signals_and_closes_interrupted_ones(machine_stack):
    make_machine, pool, user_id, sim = machine_stack
    trader = await add_trader(pool, user_id, "quiet", NEVER, symbols=["BTCUSDT", "ETHUSDT"],
                              reanalysis_interval="1s", **WIDE)
    # left by an earlier run: a signal being watched, and one whose analysis never finished
    watched = await pool.fetchval(
        "INSERT INTO signals (trader_id, user_id, symbol, timestamp, status, trigger_price, current_price) "
        "VALUES ($1, $2, 'BTCUSDT', NOW(), 'watching', 1, 1) RETURNING id", trader, user_id)
    interrupted = await pool.fetchval(
        "INSERT INTO signals (trader_id, user_id, symbol, timestamp, status, trigger_price) "
        "VALUES ($1, $2, 'ETHUSDT', NOW(), 'new', 1) RETURNING id", trader, user_id)
    machine = make_machine()
    await machine.start()
    row = await pool.fetchrow("SELECT status, close_reason FROM signals WHERE id = $1", interrupted)
    assert tuple(row) == ("closed", "interrupted")  # closed before the machine served anything
    assert await count(pool, "SELECT count(*) FROM analysis_history WHERE signal_id = $1", interrupted) == 0

    # the watched one is re-analysed (the backend now says open_long) and becomes a position
    async def opened() -> int:
        return await count(pool, "SELECT count(*) FROM positions WHERE signal_id = $1 AND status = 'open'", watched)

    await wait_for(opened, 60, "the resumed watched signal to be re-analysed into a position")
    assert await pool.fetchval("SELECT status FROM signals WHERE id = $1", watched) == "position_open"
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0
    await assert_consistent(pool, user_id)


async def test_a_sigkill_between_the_order_intent_and_its_fill_never_fills_that_order(machine_stack, monkeypatch):
    """The machine is held inside its fill transaction by a row lock the test takes on the signal (the
    fill is the only writer of it), then killed: the intent is committed, the fill never is."""
    import asyncio

    gate = asyncio.Event()
    monkeypatch.setattr(AlwaysOpenLong, "gate", gate)
    make_machine, pool, user_id, sim = machine_stack
    trader = await add_trader(pool, user_id, "one", ALWAYS, symbols=["BTCUSDT"], max_positions=1, **WIDE)
    machine = make_machine()
    await machine.start()
    signal = await wait_for(lambda: pool.fetchval("SELECT id FROM signals WHERE trader_id = $1", trader), 60,
                            "a signal waiting for its analysis", every_s=0.05)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT id FROM signals WHERE id = $1 FOR NO KEY UPDATE", signal)
        gate.set()  # the analysis answers open_long; the machine writes the intent and books the fill

        async def held_in_the_fill() -> bool:
            intent = await pool.fetchval("SELECT count(*) FROM trades WHERE trader_id = $1 AND status = 'pending' "
                                         "AND purpose = 'open'", trader)
            waiting = await pool.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")
            return intent == 1 and waiting > 0

        await wait_for(held_in_the_fill, 30, "the intent committed and the fill waiting on the lock", every_s=0.05)
        machine.kill()
        await tx.rollback()
    intent = await pool.fetchrow("SELECT id, client_order_id, position_id, status FROM trades WHERE trader_id = $1",
                                 trader)
    assert intent["status"] == "pending"  # the fill's transaction died with the process
    assert await count(pool, "SELECT count(*) FROM trades WHERE status = 'filled'") == 0

    machine2 = make_machine()
    await machine2.start()
    row = await pool.fetchrow("SELECT status, error_message FROM trades WHERE id = $1", intent["id"])
    assert row["status"] == "cancelled" and "interrupted before fill" in row["error_message"]
    assert await pool.fetchval("SELECT status FROM positions WHERE id = $1", intent["position_id"]) != "open"

    # the trader goes on with new orders: new ids, the interrupted one never filled
    async def reopened() -> int:
        return await count(pool, "SELECT count(*) FROM trades WHERE trader_id = $1 AND status = 'filled'", trader)

    await wait_for(reopened, 60, "a new position after the restart")
    filled = await pool.fetch("SELECT client_order_id FROM trades WHERE trader_id = $1 AND status = 'filled'", trader)
    assert intent["client_order_id"] not in {r["client_order_id"] for r in filled}
    assert await pool.fetchval("SELECT status FROM trades WHERE id = $1", intent["id"]) == "cancelled"
    await machine2.post("/shutdown", token=machine2.token)
    assert machine2.proc.wait(30) == 0
    await assert_consistent(pool, user_id)
