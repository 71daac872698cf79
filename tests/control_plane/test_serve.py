"""``control-plane serve``: the fleet's reconcile loop in the served stack provisions a new
subscriber's real machine and retires it on cancellation, driven only by database changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from fly_testkit import eventually

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


async def _until(pool, sql: str, *args, timeout_s: float = 90.0):
    return await eventually(lambda: pool.fetchval(sql, *args), timeout_s=timeout_s, interval_s=0.2)


async def test_serve_provisions_and_retires_through_the_loop(db_url, binance_data, tmp_path):
    from exchange_sim import Simulator

    async with Simulator(binance_data, speed=60.0, symbols=["BTCUSDT", "ETHUSDT"]) as sim:
        env = {**os.environ, "DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "data"), "ANALYSIS_PORT": "0",
               "BINANCE_REST_URL": sim.rest_url, "BINANCE_WS_URL": sim.ws_url, "FLEET_PERIOD_S": "3600"}
        serve = subprocess.Popen([str(Path(sys.executable).parent / "control-plane"), "serve"], cwd=REPO, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        try:
            assert serve.stderr is not None
            for line in serve.stderr:  # the loop is up once it says so
                if "fleet: reconciling" in line:
                    break
            else:
                raise AssertionError("serve exited before the fleet started")
            user = await pool.fetchval("INSERT INTO users (email, tier, subscription_status) "
                                       "VALUES ('serve@x', 'elite', 'active') RETURNING id")
            # NOTIFY, not the hourly pass: the machine runs and heartbeats (as its own database role).
            machine_id = await _until(pool, "SELECT machine_id FROM fly_machines WHERE user_id = $1 AND "
                                            "status = 'running' AND last_heartbeat IS NOT NULL", user)
            assert await pool.fetchval("SELECT memory_mb FROM fly_machines WHERE machine_id = $1", machine_id) == 512
            await pool.execute("UPDATE users SET subscription_status = 'cancelled' WHERE id = $1", user)
            await _until(pool, "SELECT status = 'destroyed' FROM fly_machines WHERE machine_id = $1", machine_id,
                         timeout_s=60)
            events = await pool.fetch("SELECT action, outcome FROM fleet_events WHERE user_id = $1 ORDER BY id", user)
            assert [(e["action"], e["outcome"]) for e in events] == [("create", "ok"), ("retire", "ok")]
        finally:
            await pool.close()
            serve.terminate()
            serve.wait(30)
    assert serve.returncode == 0  # SIGTERM stops the stack cleanly: engine, machines, database
