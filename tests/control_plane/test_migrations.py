import asyncpg
import pytest

from control_plane.db import MigrationError, discover, migrate
from machine.persistence import SUPPORTED_SCHEMA_VERSIONS, SchemaMismatch, check_schema, open_pool


def test_migrations_are_numbered_without_gaps():
    migrations = discover()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    # the machine must support the newest schema
    assert migrations[-1].version in SUPPORTED_SCHEMA_VERSIONS


async def test_migrate_is_idempotent_and_detects_edits(db_url):
    assert await migrate(db_url) == []  # the template is already migrated
    conn = await asyncpg.connect(db_url)
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"users", "fly_machines", "traders", "signals", "positions", "trades", "analysis_history",
                "paper_accounts", "schema_migrations"} <= tables
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(db_url)


async def test_machine_refuses_unknown_schema(db_url):
    pool = await open_pool(db_url)
    try:
        assert await check_schema(pool) == max(SUPPORTED_SCHEMA_VERSIONS) == discover()[-1].version
        await pool.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (99, 'future', 'x')")
        with pytest.raises(SchemaMismatch, match="version 99 is not supported"):
            await check_schema(pool)
        await pool.execute("DROP TABLE schema_migrations")
        with pytest.raises(SchemaMismatch, match="control-plane db migrate"):
            await check_schema(pool)
    finally:
        await pool.close()


async def test_paper_balances_migration_carries_each_account_balance(pg_server_url):
    """002 moves every paper account's quote balance into ``paper_balances`` (free) and drops the column."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    from control_plane.db._migrate import _CREATE

    name = f"mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_server_url)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    parts = urlsplit(pg_server_url)
    dsn = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    try:
        first = discover()[0]
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(_CREATE)
            await conn.execute(first.sql)
            await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                               first.version, first.name, first.checksum)
            user = await conn.fetchval("INSERT INTO users (email, tier, subscription_status) VALUES ('m@x', 'pro', 'active') "
                                       "RETURNING id")
            trader = await conn.fetchval(
                "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, "
                "reanalysis_interval) VALUES ($1, 't', 'x', 'y', '{1m}', '1m_close', '5m') RETURNING id", user)
            await conn.execute("INSERT INTO paper_accounts (trader_id, user_id, quote_asset, start_balance, balance) "
                               "VALUES ($1, $2, 'USDT', 10000, 9876.54321)", trader, user)
        finally:
            await conn.close()
        assert 2 in await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT asset, free, locked FROM paper_balances WHERE trader_id = $1", trader)
            assert [(r["asset"], str(r["free"]), str(r["locked"])) for r in rows] == [("USDT", "9876.54321000", "0E-8")]
            columns = {r["column_name"] for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'paper_accounts'")}
            assert "balance" not in columns
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(pg_server_url)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
