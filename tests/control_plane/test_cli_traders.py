"""``control-plane traders add`` validates filter code in the sandbox before saving it."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest
from typer.testing import CliRunner

from control_plane.cli import app

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def user(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["users", "add", "cli@example.com", "--tier", "pro"])
    assert result.exit_code == 0, result.output
    return uuid.UUID(result.stdout.strip().splitlines()[-1])


def _spec(tmp_path, code: str):
    (tmp_path / "f.py").write_text(code)
    spec = {"name": "t", "filter": "f.py", "ai_instructions": "x", "timeframes": ["1m"], "check_interval": "1m_close"}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(spec))
    return path


async def _count(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM traders")
    finally:
        await conn.close()


def test_rejected_code_is_refused_and_not_saved(user, tmp_path, db_url):
    import asyncio

    path = _spec(tmp_path, "import os\ndef check_signal(symbol, ticker, klines):\n    return True\n")
    result = CliRunner().invoke(app, ["traders", "add", str(user), str(path)])
    assert result.exit_code == 1
    assert "trader refused" in result.output and "rejected" in result.output
    assert asyncio.run(_count(db_url)) == 0


def test_valid_code_is_checked_on_real_klines_and_saved(user, tmp_path, db_url):
    import asyncio

    path = _spec(tmp_path, "def check_signal(symbol, ticker, klines):\n"
                           "    rsi = get_latest_rsi(klines['1m'], 14)\n    return rsi is not None and rsi < 101\n")
    result = CliRunner().invoke(app, ["traders", "add", str(user), str(path)])
    assert result.exit_code == 0, result.output
    assert "sandbox check: match" in result.output
    assert asyncio.run(_count(db_url)) == 1
