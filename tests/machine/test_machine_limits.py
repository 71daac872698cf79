"""A filter that hits a sandbox limit never takes the machine down; three in a row put its trader in error."""

from __future__ import annotations

import pytest

from machine_harness import add_trader, wait_for

pytestmark = pytest.mark.timeout(180)

LOOP = "def check_signal(symbol, ticker, klines):\n    while True:\n        pass\n"
MEMORY = "def check_signal(symbol, ticker, klines):\n    x = [0] * (10 ** 10)\n    return False\n"
GOOD = "def check_signal(symbol, ticker, klines):\n    return len(klines['1m']) > 20\n"


async def test_limit_hits_error_the_trader_while_others_trade(machine_stack):
    make_machine, pool, user_id, sim = machine_stack
    looping = await add_trader(pool, user_id, "loop", LOOP, check_interval="1s")
    hog = await add_trader(pool, user_id, "hog", MEMORY, check_interval="1s")
    good = await add_trader(pool, user_id, "good", GOOD)
    machine = make_machine(SANDBOX_BATCH_TIMEOUT_S="1")
    await machine.start()

    async def errored(trader_id):
        row = await pool.fetchrow("SELECT status, error_message FROM traders WHERE id = $1", trader_id)
        return row if row["status"] == "error" else None

    loop_row = await wait_for(lambda: errored(looping), 60, "the looping trader to be put in error")
    assert "3 ticks in a row" in loop_row["error_message"] and "timeout" in loop_row["error_message"]
    hog_row = await wait_for(lambda: errored(hog), 60, "the memory hog to be put in error")
    assert "memory" in hog_row["error_message"]

    before = await pool.fetchval("SELECT count(*) FROM signals WHERE trader_id = $1", good)

    async def more_signals():
        return await pool.fetchval("SELECT count(*) FROM signals WHERE trader_id = $1", good) > before

    await wait_for(more_signals, 60, "the healthy trader to keep producing signals")
    health = (await machine.get("/health")).json()
    assert health["activeTraders"] == 1
    assert health["sandbox"]["timeouts"] >= 3
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0
