"""``control-plane analyses show|replay``: stored analyses with their cost, and re-run offline."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import orjson
import pytest
from typer.testing import CliRunner

from control_plane.cli import app
from test_analysis_app import body

pytestmark = pytest.mark.timeout(60)


async def _seed(db_url: str) -> dict[str, uuid.UUID]:
    conn = await asyncpg.connect(db_url)
    try:
        user = await conn.fetchval("INSERT INTO users (email, tier, subscription_status) VALUES ('a@x', 'pro', 'active') "
                                   "RETURNING id")
        trader = await conn.fetchval(
            "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, "
            "reanalysis_interval) VALUES ($1, 'Dip buyer', 'x', 'y', '{1h}', '1h_close', '1h') RETURNING id", user)
        signal = await conn.fetchval(
            "INSERT INTO signals (trader_id, user_id, symbol, timestamp, status, trigger_price) "
            "VALUES ($1, $2, 'BTCUSDT', NOW(), 'new', 42500) RETURNING id", trader, user)
        market = body()["marketData"]
        stored = {**market, "request": {"aiInstructions": "Buy dips", "mode": "paper", "userId": str(user)}}
        llm_meta = {"backend": "llm", "model": "gpt-test", "usage": {"total_tokens": 853}, "costUsd": 0.00244}
        analysis = await conn.fetchval(
            "INSERT INTO analysis_history (signal_id, trader_id, user_id, decision, executable, reasoning, confidence, "
            "market_data, metadata) VALUES ($1, $2, $3, 'watch', true, 'waiting for confirmation', 55, $4::jsonb, "
            "$5::jsonb) RETURNING id", signal, trader, user, orjson.dumps(stored).decode(), orjson.dumps(llm_meta).decode())
        empty = await conn.fetchval(
            "INSERT INTO analysis_history (signal_id, trader_id, user_id, decision, executable, reasoning, confidence, "
            "market_data, metadata) VALUES ($1, $2, $3, 'no_trade', true, 'r', 50, '{}'::jsonb, '{}'::jsonb) "
            "RETURNING id", signal, trader, user)
        return {"user": user, "analysis": analysis, "empty": empty}
    finally:
        await conn.close()


@pytest.fixture
def seeded(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return asyncio.run(_seed(db_url))


def _run(*args: str, code: int = 0):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "220"})
    assert result.exit_code == code, result.output
    return result


def test_show_lists_analyses_with_model_tokens_and_cost(seeded):
    rows = json.loads(_run("analyses", "show", "--json", "--user", str(seeded["user"])).stdout.splitlines()[-1])
    by_id = {r["id"]: r for r in rows}
    mine = by_id[str(seeded["analysis"])]
    assert (mine["model"], mine["tokens"], mine["trader"], mine["symbol"]) == ("gpt-test", 853, "Dip buyer", "BTCUSDT")
    assert float(mine["cost_usd"]) == pytest.approx(0.00244)
    assert "gpt-test" in _run("analyses", "show").stdout


def test_replay_reruns_the_stored_input_and_shows_both(seeded):
    out = json.loads(_run("analyses", "replay", str(seeded["analysis"]), "--backend", "rules", "--json")
                     .stdout.splitlines()[-1])
    assert out["stored"]["decision"] == "watch" and out["stored"]["metadata"]["model"] == "gpt-test"
    assert out["replayed"]["decision"] == "open_long"  # the rules on the stored candles and indicators
    assert out["replayed"]["metadata"]["backend"] == "rules"
    table = _run("analyses", "replay", str(seeded["analysis"]), "--backend", "rules").stdout
    assert "watch" in table and "open_long" in table


def test_replay_refuses_unknown_or_inputless_analyses(seeded):
    assert "does not exist" in _run("analyses", "replay", str(uuid.uuid4()), "--backend", "rules", code=1).output
    assert "no replayable input" in _run("analyses", "replay", str(seeded["empty"]), "--backend", "rules",
                                         code=1).output
    assert "rules or llm" in _run("analyses", "replay", str(seeded["analysis"]), "--backend", "gpt", code=2).output
