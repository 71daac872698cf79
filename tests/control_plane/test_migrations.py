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
        assert await check_schema(pool) == 1
        await pool.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (99, 'future', 'x')")
        with pytest.raises(SchemaMismatch, match="version 99 is not supported"):
            await check_schema(pool)
        await pool.execute("DROP TABLE schema_migrations")
        with pytest.raises(SchemaMismatch, match="control-plane db migrate"):
            await check_schema(pool)
    finally:
        await pool.close()
