"""Connection pool and the schema-version gate."""

from __future__ import annotations

import asyncpg
import orjson

__all__ = ["SUPPORTED_SCHEMA_VERSIONS", "SchemaMismatch", "check_schema", "open_pool"]

#: Schema versions (``schema_migrations.version`` maximum) this machine runs on.
SUPPORTED_SCHEMA_VERSIONS: frozenset[int] = frozenset({3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})


class SchemaMismatch(RuntimeError):
    """The database schema is missing or of a version this machine cannot run on."""


async def _init(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset on release: nothing beyond asyncpg's own (which rolls back a transaction left open).

    The machine never sets session state (no ``SET``, ``LISTEN``, advisory locks or cursors
    outside a transaction), so the default reset query (``RESET ALL; UNLISTEN *; ...``), one
    round trip on every release, is skipped: a stop-loss's close releases three connections.
    """


async def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """A pool whose connections encode/decode JSONB with orjson (reset: :func:`_keep_session`)."""
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init, reset=_keep_session)


async def check_schema(pool: asyncpg.Pool) -> int:
    """Return the schema version, or raise when it is not supported.

    Raises:
        SchemaMismatch: no ``schema_migrations`` table, or a version outside
            :data:`SUPPORTED_SCHEMA_VERSIONS` (run ``control-plane db migrate`` or
            deploy a machine image that supports the newer schema).
    """
    async with pool.acquire() as conn:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not exists:
            raise SchemaMismatch("database has no schema_migrations table; run `control-plane db migrate`")
        version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
        raise SchemaMismatch(f"database schema version {version} is not supported by this machine (supports {supported})")
    return int(version)
