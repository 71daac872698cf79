"""Versioned SQL migrations (``control_plane/migrations/NNN_name.sql``).

Each file is applied once, in version order, in its own transaction, under a
Postgres advisory lock so that two control-plane replicas never migrate at the
same time. ``schema_migrations`` records version, name, checksum and time; an
applied file whose checksum changed is refused (edit history by adding a file).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

__all__ = ["Migration", "MigrationError", "applied_versions", "discover", "migrate"]

_LOCK_KEY = 0x7472_6164_6572  # "trader"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """A migration file is malformed, was changed after it was applied, or failed."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover() -> list[Migration]:
    """The packaged migrations in version order.

    Raises:
        MigrationError: on a misnamed file or a duplicate/missing version.
    """
    found: list[Migration] = []
    for entry in resources.files("control_plane.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = _NAME.match(entry.name)
        if not m:
            raise MigrationError(f"migration file {entry.name!r} must be named NNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise MigrationError(f"migration versions must be 1..N without gaps; found {mig.version} at {expected}")
    return found


_CREATE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
)
"""


async def applied_versions(conn: asyncpg.Connection) -> dict[int, str]:
    """``{version: checksum}`` of applied migrations (empty on a fresh database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def migrate(dsn: str) -> list[int]:
    """Apply every pending migration.

    Returns:
        The versions applied by this call (empty when up to date).

    Raises:
        MigrationError: when an applied migration changed or one fails.
    """
    migrations = discover()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(_CREATE)
            applied = await applied_versions(conn)
            done: list[int] = []
            for mig in migrations:
                if mig.version in applied:
                    if applied[mig.version] != mig.checksum:
                        raise MigrationError(
                            f"migration {mig.version:03d}_{mig.name} changed after it was applied; add a new migration instead"
                        )
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(mig.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                            mig.version,
                            mig.name,
                            mig.checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"migration {mig.version:03d}_{mig.name} failed: {exc}") from exc
                done.append(mig.version)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
