"""Provisioning through the Fly client against the local engine running a real machine."""

from __future__ import annotations

import asyncio
import time

import pytest

from control_plane.local import LocalStack
from control_plane.provisioning import ProvisioningError
from control_plane.settings import ControlPlaneSettings

pytestmark = pytest.mark.timeout(180)


async def _eventually(fn, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (value := await fn()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
    return value


async def test_provision_runs_the_machine_and_destroy_shuts_it_down(db_url, binance_data, tmp_path):
    from exchange_sim import Simulator

    async with Simulator(binance_data, speed=60.0, symbols=["BTCUSDT", "ETHUSDT"]) as sim:
        settings = ControlPlaneSettings(database_url=db_url, data_dir=tmp_path / "data")
        async with LocalStack(settings, analysis_port=0, binance_rest_url=sim.rest_url,
                              binance_ws_url=sim.ws_url) as stack:
            pool = stack.pool
            user = await pool.fetchval(
                "INSERT INTO users (email, tier, subscription_status) VALUES ('p@x', 'elite', 'active') RETURNING id")
            free = await pool.fetchval(
                "INSERT INTO users (email, tier, subscription_status) VALUES ('f@x', 'free', 'active') RETURNING id")
            provisioner = stack.provisioner()
            with pytest.raises(ProvisioningError, match="no machine"):
                await provisioner.provision(free)

            row = await provisioner.provision(user)
            assert row["status"] == "running" and row["memory_mb"] == 512
            assert (await provisioner.provision(user))["machine_id"] == row["machine_id"]  # idempotent
            app = provisioner.app_for(user)
            assert row["app_name"] == app.app_name
            fly_machine = await app.get_machine(row["machine_id"])
            assert fly_machine.state == "started"
            assert fly_machine.config.guest.memory_mb == 512

            async def heartbeat():
                return await pool.fetchval(
                    "SELECT last_heartbeat IS NOT NULL FROM fly_machines WHERE machine_id = $1", row["machine_id"])
            await _eventually(heartbeat, 60, "the machine's first heartbeat")

            result = await provisioner.destroy(user, "subscription_cancelled")
            assert result["finalState"] == {"openPositions": 0, "watchingSignals": 0}
            final = await pool.fetchrow("SELECT status, destroy_reason FROM fly_machines WHERE machine_id = $1",
                                        row["machine_id"])
            assert (final["status"], final["destroy_reason"]) == ("destroyed", "subscription_cancelled")
            assert app.app_name not in {a.name for a in await stack.fly.list_apps()}  # app and secrets gone
            with pytest.raises(ProvisioningError, match="has no machine"):
                await provisioner.destroy(user, "again")
