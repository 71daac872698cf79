"""Each subscriber's machine connects as its own role; row-level security keeps it to its
subscriber's rows and away from the control plane's tables (migration 007)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from control_plane.db import drop_machine_role, ensure_machine_role, machine_role, role_database_url
from machine.persistence import MachineRepository, check_schema, open_pool

pytestmark = pytest.mark.timeout(60)


async def _subscriber(pool, email: str) -> dict:
    """A user with a trader, paper account and balance, a signal, a position, a trade, an analysis and a machine row."""
    user = await pool.fetchval("INSERT INTO users (email, tier, subscription_status) VALUES ($1, 'pro', 'active') "
                               "RETURNING id", email)
    trader = await pool.fetchval(
        "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, "
        "reanalysis_interval) VALUES ($1, 'T', 'x', 'y', '{1m}', '1m', '5m') RETURNING id", user)
    await pool.execute("INSERT INTO paper_accounts (trader_id, user_id, start_balance) VALUES ($1, $2, 1000)",
                       trader, user)
    await pool.execute("INSERT INTO paper_balances (trader_id, asset, free) VALUES ($1, 'USDT', 1000)", trader)
    signal = await pool.fetchval(
        "INSERT INTO signals (trader_id, user_id, symbol, timestamp, status, trigger_price) "
        "VALUES ($1, $2, 'BTCUSDT', NOW(), 'new', 1) RETURNING id", trader, user)
    position = await pool.fetchval(
        "INSERT INTO positions (signal_id, trader_id, user_id, mode, symbol, side, status, size) "
        "VALUES ($1, $2, $3, 'paper', 'BTCUSDT', 'long', 'pending', 1) RETURNING id", signal, trader, user)
    await pool.execute(
        "INSERT INTO trades (position_id, trader_id, user_id, type, purpose, side, symbol, client_order_id, quantity, "
        "status) VALUES ($1, $2, $3, 'paper', 'open', 'BUY', 'BTCUSDT', $4, 1, 'pending')",
        position, trader, user, f"o-{uuid.uuid4().hex[:20]}")
    await pool.execute(
        "INSERT INTO analysis_history (signal_id, trader_id, user_id, decision, executable, reasoning) "
        "VALUES ($1, $2, $3, 'watch', true, 'r')", signal, trader, user)
    await pool.execute("INSERT INTO fly_machines (user_id, machine_id, status, memory_mb) VALUES ($1, $2, 'running', 256)",
                       user, f"m-{uuid.uuid4().hex[:12]}")
    await pool.execute("INSERT INTO fleet_events (user_id, action, outcome) VALUES ($1, 'create', 'ok')", user)
    return {"user": user, "trader": trader, "signal": signal, "position": position}


TABLES = ("traders", "paper_accounts", "signals", "positions", "trades", "analysis_history", "fly_machines")


@pytest.fixture
async def two(db_url):
    owner = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    alice, bob = await _subscriber(owner, "alice@x"), await _subscriber(owner, "bob@x")
    password = await ensure_machine_role(owner, alice["user"])
    machine = await asyncpg.connect(role_database_url(db_url, machine_role(alice["user"]), password))
    yield owner, machine, alice, bob
    await machine.close()
    await drop_machine_role(owner, alice["user"])
    await owner.close()


async def test_the_machine_role_sees_only_its_subscribers_rows(two):
    owner, machine, alice, bob = two
    assert await machine.fetchval("SELECT current_user") == machine_role(alice["user"])
    for table in TABLES:
        users = {r["user_id"] for r in await machine.fetch(f"SELECT user_id FROM {table}")}
        assert users == {alice["user"]}, table
        assert await owner.fetchval(f"SELECT count(DISTINCT user_id) FROM {table}") == 2  # both exist
    balances = await machine.fetch("SELECT trader_id FROM paper_balances")
    assert [r["trader_id"] for r in balances] == [alice["trader"]]


async def test_the_machine_role_cannot_write_another_subscribers_rows(two):
    owner, machine, alice, bob = two
    for table, column in (("traders", "name"), ("signals", "status"), ("positions", "symbol"),
                          ("trades", "symbol"), ("analysis_history", "reasoning")):
        assert await machine.execute(f"UPDATE {table} SET {column} = {column} WHERE user_id = $1", bob["user"]) \
            == "UPDATE 0", table
    assert await machine.execute("UPDATE paper_balances SET free = 0 WHERE trader_id = $1", bob["trader"]) \
        == "UPDATE 0"
    assert await machine.execute("UPDATE fly_machines SET last_heartbeat = NOW() WHERE user_id = $1", bob["user"]) \
        == "UPDATE 0"
    insert_signal = ("INSERT INTO signals (trader_id, user_id, symbol, timestamp, status, trigger_price) "
                     "VALUES ($1, $2, 'ETHUSDT', NOW(), 'new', 1)")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await machine.execute(insert_signal, bob["trader"], bob["user"])  # as the other subscriber
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await machine.execute(insert_signal, bob["trader"], alice["user"])  # onto the other's trader
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await machine.execute("UPDATE traders SET user_id = $1 WHERE id = $2", bob["user"], alice["trader"])
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await machine.execute("INSERT INTO paper_balances (trader_id, asset, free) VALUES ($1, 'BTC', 1)",
                              bob["trader"])
    assert await owner.fetchval("SELECT count(*) FROM signals WHERE user_id = $1", bob["user"]) == 1
    # Its own rows it can write: what the machine does.
    assert await machine.execute(insert_signal, alice["trader"], alice["user"]) == "INSERT 0 1"


async def test_the_machine_role_cannot_touch_the_control_planes_tables(two):
    owner, machine, alice, bob = two
    for sql in ("SELECT tier FROM users", "UPDATE users SET tier = 'power'", "SELECT * FROM fleet_events",
                "INSERT INTO fleet_events (action, outcome) VALUES ('create', 'ok')",
                "UPDATE fly_machines SET memory_mb = 1024",  # its own row, but not a column it may set
                "DELETE FROM traders", "DELETE FROM fly_machines", "INSERT INTO fly_machines (user_id, machine_id, "
                "status) VALUES ('00000000-0000-0000-0000-000000000000', 'x', 'running')"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await machine.execute(sql)
    assert await owner.fetchval("SELECT count(*) FROM users WHERE tier = 'pro'") == 2


async def test_the_machine_runs_as_its_role_and_loses_it_when_dropped(two, db_url):
    owner, machine, alice, bob = two
    password = await ensure_machine_role(owner, alice["user"])  # re-keyed: the old password is void
    url = role_database_url(db_url, machine_role(alice["user"]), password)
    pool = await open_pool(url, min_size=1, max_size=1)
    try:
        await check_schema(pool)
        machine_id = await owner.fetchval("SELECT machine_id FROM fly_machines WHERE user_id = $1", alice["user"])
        assert await MachineRepository(pool).heartbeat(alice["user"], machine_id, {"ok": True}) == 1
    finally:
        await pool.close()
    await drop_machine_role(owner, alice["user"])
    assert await owner.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", machine_role(alice["user"])) == 0
