"""``control-plane demo`` end to end, offline: the summary it prints is the truth after the machine is gone.

Before the fix the summary was read before the machine was destroyed
(``"machine_state": "running"``) and had no ``reanalyses``; the demo traders'
``5m_close`` re-analysis never ran (no 5m klines were streamed).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parents[2]
KEYS = {"user_id", "machine_state", "traders", "symbols", "signals", "analyses", "reanalyses", "trades",
        "open_positions", "closed_positions", "realized_pnl_quote"}  # fmt: skip


def test_demo_summary_is_read_after_destruction_and_counts_reanalyses(db_url, binance_data, tmp_path):
    env = {**os.environ, "DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "control-plane"), "demo", "--replay", str(binance_data), "--duration", "30",
         "--speed", "120"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(summary) == KEYS
    assert summary["machine_state"] == "destroyed"
    assert summary["traders"] == 3 and summary["symbols"] > 0
    assert summary["trades"] > 0 and summary["reanalyses"] > 0, summary
    # the terminal gets tables, not log lines: JSON logs and library warnings go to the log file named at start
    terminal = done.stderr
    assert '"event"' not in terminal and "Warning" not in terminal, terminal[:3000]
    log_path = Path(terminal.split("warnings): ", 1)[1].splitlines()[0].strip())
    assert log_path.is_file() and log_path.parent == tmp_path / "data" / "logs"
    assert "simulator_started" in log_path.read_text()
    words = " ".join(terminal.split())  # rich wraps long lines
    assert "(provisioned by the fleet's reconcile loop)" in words
    assert "end state" in words and words.index("shut the machine down and destroyed it") < words.index("end state")

    async def from_db() -> tuple[str, int, list]:
        conn = await asyncpg.connect(db_url)
        try:
            state = await conn.fetchval("SELECT status FROM fly_machines WHERE user_id = $1", summary["user_id"])
            roles = await conn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1",
                                        "machine_" + summary["user_id"].replace("-", ""))
            assert roles == 0  # the machine's own database role went with it
            events = await conn.fetch("SELECT action, outcome, detail::text FROM fleet_events WHERE user_id = $1 "
                                      "ORDER BY id", summary["user_id"])
            reanalysed = await conn.fetchval(
                "SELECT count(*) FROM (SELECT signal_id FROM analysis_history WHERE user_id = $1 "
                "GROUP BY signal_id HAVING count(*) > 1) s", summary["user_id"],
            )  # fmt: skip
            return state, reanalysed, events
        finally:
            await conn.close()

    state, reanalysed, events = asyncio.run(from_db())
    assert state == "destroyed" and reanalysed > 0
    # The machine came and went through the fleet's reconcile loop, not a direct call.
    assert [(e["action"], e["outcome"]) for e in events] == [("create", "ok"), ("retire", "ok")]
    assert "openPositions" in events[1]["detail"]  # the graceful /shutdown answered with the final state


def test_demo_live_trades_the_simulators_matching_engine_with_keys_it_creates(db_url, binance_data, tmp_path):
    env = {**os.environ, "DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "data")}
    env.pop("EXCHANGE_KEYS_SECRET", None)  # the demo makes one for its run
    done = subprocess.run(
        [str(Path(sys.executable).parent / "control-plane"), "demo", "--mode", "live", "--replay", str(binance_data),
         "--duration", "30", "--speed", "120"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["machine_state"] == "destroyed" and summary["trades"] > 0, summary
    assert "stored encrypted" in " ".join(done.stderr.split())

    async def from_db() -> tuple[set, int, int, bytes]:
        conn = await asyncpg.connect(db_url)
        try:
            modes = {r["mode"] for r in await conn.fetch("SELECT mode FROM traders WHERE user_id = $1",
                                                          summary["user_id"])}
            live = await conn.fetchval("SELECT count(*) FROM trades WHERE user_id = $1 AND type = 'live' "
                                       "AND status = 'filled' AND binance_order_id IS NOT NULL", summary["user_id"])
            exits = await conn.fetchval("SELECT count(*) FROM positions WHERE user_id = $1 AND exit_attempt > 0",
                                        summary["user_id"])
            token = await conn.fetchval("SELECT api_secret_token FROM exchange_keys WHERE user_id = $1",
                                        summary["user_id"])
            return modes, live, exits, token
        finally:
            await conn.close()

    modes, live, exits, token = asyncio.run(from_db())
    assert modes == {"live"} and live > 0 and exits > 0  # filled on the exchange, protected by its OCO exits
    assert token and b"demo-" not in token  # the keys are stored encrypted
