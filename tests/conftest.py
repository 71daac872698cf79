"""Shared fixtures: a real PostgreSQL for every test that needs one.

``DATABASE_URL`` when set (its server must allow CREATE DATABASE), otherwise an
embedded PostgreSQL 16 from ``pgserver`` in a temporary directory. The schema is
migrated once into a template database; each test gets a fresh copy of it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest


REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO.parent / "shared").resolve()
BINANCE_DATA = SHARED / "data" / "binance"
_TEMPLATE = "trader_template"
_counter = itertools.count()


def _with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory):
    """Admin DSN of the test server (database ``postgres``)."""
    url = os.environ.get("DATABASE_URL")
    server = None
    if not url:
        from control_plane.db import EmbeddedPostgres

        base = Path(tempfile.mkdtemp(prefix="trader-test-pg-"))
        base.chmod(0o755)  # pgserver runs postgres as its own user when we are root
        server = EmbeddedPostgres(base / "pg", keep=False)
        url = server.start()

    async def prepare() -> None:
        from control_plane.db import migrate

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {_TEMPLATE}")
            await conn.execute(f"CREATE DATABASE {_TEMPLATE}")
        finally:
            await conn.close()
        await migrate(_with_db(url, _TEMPLATE))

    asyncio.run(prepare())
    yield url
    if server is not None:
        server.stop()
        shutil.rmtree(server.data_dir.parent, ignore_errors=True)


@pytest.fixture
def db_url(pg_server_url):
    """DSN of a fresh, migrated database for this test (dropped afterwards)."""
    name = f"t_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(pg_server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}"))
    yield _with_db(pg_server_url, name)
    asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def binance_data() -> Path:
    if not (BINANCE_DATA / "spot" / "1m").is_dir():
        pytest.fail(f"reference data missing: {BINANCE_DATA} (../shared must sit beside the repo)")
    return BINANCE_DATA
