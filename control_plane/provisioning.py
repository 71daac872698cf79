"""One machine per paid subscriber: provision, destroy, list.

``fly_machines`` follows the machine: a row is written (``provisioning``)
before the Fly call, then ``starting`` with the Fly machine id, ``running``
when Fly reports it started (the machine's heartbeat also sets it), and
``destroyed`` after Fly destroyed it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import structlog

from control_plane.fly import TIER_MEMORY_MB, FlyClient, FlyError, FlyNotFound, machine_config_for

__all__ = ["MachineEnv", "Provisioner", "ProvisioningError", "TIER_MEMORY_MB", "TIER_SANDBOX_WORKERS"]

log = structlog.get_logger(__name__)

#: Sandbox worker processes per tier: a pro machine (up to 20 traders) screens a
#: tick on one worker well within a second; more workers cost ~40 MB each.
TIER_SANDBOX_WORKERS: Mapping[str, int] = {"pro": 1, "elite": 2, "power": 2}


class ProvisioningError(RuntimeError):
    """The user cannot get a machine (unknown, unpaid tier, inactive subscription) or Fly failed."""


@dataclass(frozen=True, slots=True)
class MachineEnv:
    """What every machine is told (its environment, minus per-user values)."""

    database_url: str
    analysis_url: str
    analysis_token: str
    binance_ws_url: str
    binance_rest_url: str
    extra: Mapping[str, str] | None = None


class Provisioner:
    """Provision and destroy users' machines through the Fly Machines API.

    Args:
        pool: control-plane database pool.
        fly: the Fly client (real Fly or the local engine; one code path).
        env: settings passed to machines.
        image: machine image.
        region: Fly region.
        token_for: user id -> the machine's bearer token.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        fly: FlyClient,
        env: MachineEnv,
        *,
        image: str,
        region: str,
        token_for: Any,
    ) -> None:
        self._pool = pool
        self._fly = fly
        self._env = env
        self._image = image
        self._region = region
        self._token_for = token_for

    async def provision(self, user_id: UUID, *, wait_timeout_s: float = 60.0) -> dict[str, Any]:
        """Create (or return) the user's machine and wait until it started.

        Idempotent: a user with a live machine gets it back unchanged.

        Raises:
            ProvisioningError: unknown user, tier without a machine, inactive subscription, Fly error.
        """
        user = await self._pool.fetchrow("SELECT id, tier, subscription_status FROM users WHERE id = $1", user_id)
        if user is None:
            raise ProvisioningError(f"user {user_id} does not exist")
        memory_mb = TIER_MEMORY_MB.get(user["tier"])
        if memory_mb is None:
            raise ProvisioningError(f"tier {user['tier']!r} has no machine (paid tiers: {', '.join(TIER_MEMORY_MB)})")
        if user["subscription_status"] != "active":
            raise ProvisioningError(f"subscription is {user['subscription_status']!r}, not active")
        live = await self.live_machine(user_id)
        if live is not None:
            return live
        placeholder = f"pending-{uuid.uuid4().hex}"
        try:
            row_id = await self._pool.fetchval(
                "INSERT INTO fly_machines (user_id, machine_id, status, region, memory_mb, image) "
                "VALUES ($1, $2, 'provisioning', $3, $4, $5) RETURNING id",
                user_id, placeholder, self._region, memory_mb, self._image,
            )
        except asyncpg.UniqueViolationError:
            live = await self.live_machine(user_id)
            if live is None:
                raise ProvisioningError(f"user {user_id} is being provisioned concurrently") from None
            return live
        env = {
            "USER_ID": str(user_id),
            "DATABASE_URL": self._env.database_url,
            "ANALYSIS_URL": self._env.analysis_url,
            "ANALYSIS_TOKEN": self._env.analysis_token,
            "MACHINE_TOKEN": self._token_for(str(user_id)),
            "BINANCE_WS_URL": self._env.binance_ws_url,
            "BINANCE_REST_URL": self._env.binance_rest_url,
            "SANDBOX_WORKERS": str(TIER_SANDBOX_WORKERS[user["tier"]]),
            **(self._env.extra or {}),
        }
        config = machine_config_for(str(user_id), user["tier"], self._image, env)
        try:
            machine = await self._fly.create_machine(
                config, name=f"user-{user_id.hex[:12]}", region=self._region, tag=("user_id", str(user_id))
            )
        except FlyError as exc:
            # Nothing was created: the row is closed so the user can be provisioned again.
            await self._pool.execute(
                "UPDATE fly_machines SET status = 'destroyed', destroy_reason = $2, destroyed_at = NOW(), updated_at = NOW() "
                "WHERE id = $1", row_id, f"create failed: {exc}",
            )
            raise ProvisioningError(f"Fly refused to create the machine: {exc}") from exc
        await self._pool.execute(
            "UPDATE fly_machines SET machine_id = $2, status = 'starting', ip_address = $3, region = $4, "
            "http_url = $5, updated_at = NOW() WHERE id = $1",
            row_id, machine.id, machine.private_ip, machine.region or self._region, _http_url(machine),
        )
        log.info("machine_created", user_id=str(user_id), machine_id=machine.id, memory_mb=memory_mb)
        await self._fly.wait(machine.id, "started", timeout_s=wait_timeout_s)
        await self._pool.execute(
            "UPDATE fly_machines SET status = 'running', updated_at = NOW() WHERE id = $1 AND status = 'starting'", row_id
        )
        return await self.live_machine(user_id)  # type: ignore[return-value]

    async def live_machine(self, user_id: UUID) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM fly_machines WHERE user_id = $1 AND status <> 'destroyed'", user_id
        )
        return dict(row) if row else None

    async def destroy(self, user_id: UUID, reason: str, *, shutdown_timeout_s: float = 30.0) -> dict[str, Any]:
        """Shut the user's machine down gracefully, then destroy it.

        Returns:
            ``{"machineId", "finalState": {"openPositions", "watchingSignals"} | None}``;
            ``finalState`` is None when the machine did not answer ``/shutdown``.

        Raises:
            ProvisioningError: the user has no live machine.
        """
        row = await self.live_machine(user_id)
        if row is None:
            raise ProvisioningError(f"user {user_id} has no machine")
        await self._pool.execute(
            "UPDATE fly_machines SET status = 'stopping', updated_at = NOW() WHERE id = $1", row["id"]
        )
        final_state = None
        if row["http_url"]:
            try:
                async with httpx.AsyncClient(timeout=shutdown_timeout_s) as http:
                    resp = await http.post(
                        row["http_url"].rstrip("/") + "/shutdown",
                        json={"reason": reason},
                        headers={"Authorization": f"Bearer {self._token_for(str(user_id))}"},
                    )
                if resp.status_code == 200:
                    body = resp.json()
                    final_state = {k: body.get(k) for k in ("openPositions", "watchingSignals")}
            except httpx.HTTPError as exc:
                log.warning("machine_shutdown_unanswered", user_id=str(user_id), error=str(exc))
        machine_id = row["machine_id"]
        if not machine_id.startswith("pending-"):
            try:
                await self._fly.wait(machine_id, "stopped", timeout_s=shutdown_timeout_s)
            except FlyError:
                await self._fly.stop(machine_id)
            try:
                await self._fly.destroy(machine_id, force=True)
            except FlyNotFound:
                pass
        await self._pool.execute(
            "UPDATE fly_machines SET status = 'destroyed', destroyed_at = NOW(), destroy_reason = $2, updated_at = NOW() "
            "WHERE id = $1", row["id"], reason,
        )
        log.info("machine_destroyed", user_id=str(user_id), machine_id=machine_id, reason=reason)
        return {"machineId": machine_id, "finalState": final_state}

    async def list(self, include_destroyed: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT m.*, u.email, u.tier FROM fly_machines m JOIN users u ON u.id = m.user_id"
        if not include_destroyed:
            sql += " WHERE m.status <> 'destroyed'"
        return [dict(r) for r in await self._pool.fetch(sql + " ORDER BY m.created_at")]


def _http_url(machine: Any) -> str | None:
    """Where the machine's HTTP API listens (6PN address on Fly; loopback port on the local engine)."""
    return machine.http_base_url()
