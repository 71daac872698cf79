"""One machine per paid subscriber, each in its own Fly app: provision, retire, list.

Every subscriber gets a Fly app of its own (``<FLY_APP_NAME>-<user id hex>``), created on
its own private network (Fly's guidance for per-customer isolation: one app per customer,
``network`` on app create), holding that user's secrets as app secrets (the machine's
bearer token, its database URL, the analysis token), and one machine in it started with
at least that secrets version (``min_secrets_version``). Secrets never appear in the
machine config, which Fly shows to anyone who can list machines.

``fly_machines`` follows the machine: a row is written (``provisioning``)
before the Fly call, then ``starting`` with the Fly machine id and app, ``running``
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
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from control_plane.db import drop_machine_role, ensure_machine_role, machine_role, role_database_url
from control_plane.exchange_keys import ExchangeKeyStore, sealed_secrets
from control_plane.fly import (
    TIER_MEMORY_MB,
    FlyClient,
    FlyConflict,
    FlyError,
    FlyNameTaken,
    FlyNotFound,
    machine_config_for,
)

__all__ = [
    "SECRET_ENV",
    "MachineEnv",
    "Provisioner",
    "ProvisioningError",
    "TIER_MEMORY_MB",
    "TIER_SANDBOX_WORKERS",
    "app_name_for",
]

log = structlog.get_logger(__name__)

#: Sandbox worker processes per tier: a pro machine (up to 20 traders) screens a
#: tick on one worker well within a second; more workers cost ~40 MB each.
TIER_SANDBOX_WORKERS: Mapping[str, int] = {"pro": 1, "elite": 2, "power": 2}
#: Machine environment variables that are app secrets, never part of the machine config (a
#: subscriber with exchange keys also gets ``exchange_keys.CREDENTIALS_ENV``).
SECRET_ENV = ("MACHINE_TOKEN", "DATABASE_URL", "ANALYSIS_TOKEN")


def app_name_for(prefix: str, user_id: UUID) -> str:
    """The Fly app of ``user_id``'s machine: ``<prefix>-<32 hex digits>`` (a valid, unique app name)."""
    return f"{prefix}-{user_id.hex}"


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
    binance_ws_api_url: str = "wss://ws-api.binance.com:443/ws-api/v3"


class Provisioner:
    """Provision and destroy users' machines through the Fly Machines API.

    Args:
        pool: control-plane database pool.
        fly: the Fly client (real Fly or the local engine; one code path); its ``app_name``
            prefixes every subscriber's app name.
        env: settings passed to machines.
        image: machine image.
        region: Fly region.
        token_for: user id -> the machine's bearer token.
        org_slug: the Fly organization the subscribers' apps are created in.
        db_roles: give each machine a database role of its own, limited to its subscriber's
            rows (``control_plane.db._roles``; needs CREATEROLE); False hands machines
            ``env.database_url`` itself.
        exchange_keys: the subscribers' Binance keys; a subscriber with keys gets them sealed
            as app secrets (``EXCHANGE_CREDENTIALS``/``_KEY``). None: machines get no keys.
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
        org_slug: str = "personal",
        db_roles: bool = True,
        exchange_keys: ExchangeKeyStore | None = None,
    ) -> None:
        self._pool = pool
        self._exchange_keys = exchange_keys
        self._db_roles = db_roles
        self._fly = fly
        self.org_slug = org_slug
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
        return await self.create(user_id, user["tier"], wait_timeout_s=wait_timeout_s)

    async def create(self, user_id: UUID, tier: str, *, wait_timeout_s: float = 60.0) -> dict[str, Any]:
        """Create ``user_id``'s machine of ``tier`` and wait (up to ``wait_timeout_s``) until it started.

        A ``fly_machines`` row (``provisioning``) is written before Fly is called, so a
        crash leaves a trace the reconcile loop resolves by the machine's ``user_id``
        metadata tag. The create is tagged, so an unknown outcome never makes a second
        machine (``FlyClient.create_machine``). Returns the live row (``running``, or
        ``starting`` when the wait timed out).

        Raises:
            ProvisioningError: a live row exists already (created concurrently), or Fly refused.
        """
        memory_mb = TIER_MEMORY_MB[tier]
        placeholder = f"pending-{uuid.uuid4().hex}"
        try:
            row_id = await self._pool.fetchval(
                "INSERT INTO fly_machines (user_id, machine_id, status, region, memory_mb, image) "
                "VALUES ($1, $2, 'provisioning', $3, $4, $5) RETURNING id",
                user_id, placeholder, self._region, memory_mb, self._image,
            )
        except asyncpg.UniqueViolationError:
            raise ProvisioningError(f"user {user_id} has a machine already (created concurrently)") from None
        app = self.app_for(user_id)
        try:
            secrets = await self._secrets(user_id)
        except asyncpg.PostgresError as exc:
            await self._close_row(row_id, f"database role failed: {exc}")
            raise ProvisioningError(f"cannot create the machine's database role: {exc}") from exc
        try:
            await self._ensure_app(app)
            version = await app.set_secrets(secrets)
            machine = await app.create_machine(
                self.machine_config(user_id, tier), name=f"user-{user_id.hex[:12]}", region=self._region,
                tag=("user_id", str(user_id)), min_secrets_version=version,
            )
        except FlyError as exc:
            # No machine was created: the row is closed so the user can be provisioned again
            # (an app made before the failure is reused then, or deleted by the fleet).
            await self._close_row(row_id, f"create failed: {exc}")
            raise ProvisioningError(f"Fly refused to create the machine: {exc}") from exc
        await self._pool.execute(
            "UPDATE fly_machines SET machine_id = $2, status = 'starting', ip_address = $3, region = $4, "
            "http_url = $5, app_name = $6, updated_at = NOW() WHERE id = $1",
            row_id, machine.id, machine.private_ip, machine.region or self._region, _http_url(machine), app.app_name,
        )
        log.info("machine_created", user_id=str(user_id), machine_id=machine.id, memory_mb=memory_mb)
        try:
            await app.wait(machine.id, "started", timeout_s=wait_timeout_s)
        except FlyError as exc:
            log.warning("machine_not_started_yet", user_id=str(user_id), machine_id=machine.id, error=str(exc))
        else:
            await self._pool.execute(
                "UPDATE fly_machines SET status = 'running', updated_at = NOW() WHERE id = $1 AND status = 'starting'",
                row_id,
            )
        return await self.live_machine(user_id)  # type: ignore[return-value]

    def app_for(self, user_id: UUID) -> FlyClient:
        """The Fly client of ``user_id``'s own app."""
        return self._fly.for_app(app_name_for(self._fly.app_name, user_id))

    async def _ensure_app(self, app: FlyClient) -> None:
        """Create the app on a network of its own unless it exists (Fly spec ``Apps_create``; a
        taken name is ours when we can read it, ``Apps_show``). Raises FlyError otherwise."""
        try:
            await app.create_app(self.org_slug, network=app.app_name)
        except FlyNameTaken:
            await app.get_app()  # it exists (an earlier create, another replica): ours if we can read it
            return
        log.info("app_created", app=app.app_name)

    async def _close_row(self, row_id: Any, reason: str) -> None:
        """Mark a ``fly_machines`` row destroyed with ``reason``."""
        await self._pool.execute(
            "UPDATE fly_machines SET status = 'destroyed', destroy_reason = $2, destroyed_at = NOW(), updated_at = NOW() "
            "WHERE id = $1", row_id, reason,
        )

    async def _secrets(self, user_id: UUID) -> dict[str, str]:
        """The app secrets of ``user_id``'s machine (SECRET_ENV), exposed to it as environment
        variables; with ``db_roles`` its database URL names its own role with a new password."""
        database_url = self._env.database_url
        if self._db_roles:
            password = await ensure_machine_role(self._pool, user_id)
            database_url = role_database_url(database_url, machine_role(user_id), password)
        secrets = {
            "MACHINE_TOKEN": self._token_for(str(user_id)),
            "DATABASE_URL": database_url,
            "ANALYSIS_TOKEN": self._env.analysis_token,
        }
        credentials = await self._exchange_keys.get(user_id) if self._exchange_keys is not None else None
        if credentials is not None:
            secrets.update(sealed_secrets(credentials))
        return secrets

    def _machine_env(self, user_id: UUID, tier: str) -> dict[str, str]:
        return {
            "USER_ID": str(user_id),
            "ANALYSIS_URL": self._env.analysis_url,
            "BINANCE_WS_URL": self._env.binance_ws_url,
            "BINANCE_REST_URL": self._env.binance_rest_url,
            "BINANCE_WS_API_URL": self._env.binance_ws_api_url,
            "SANDBOX_WORKERS": str(TIER_SANDBOX_WORKERS[tier]),
            **(self._env.extra or {}),
        }

    def machine_config(self, user_id: UUID, tier: str) -> Any:
        """The config ``user_id``'s machine of ``tier`` is created with (``MachineConfig``)."""
        return machine_config_for(str(user_id), tier, self._image, self._machine_env(user_id, tier))

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
        final_state = await self.retire(user_id, row["machine_id"], reason, row=row,
                                        shutdown_timeout_s=shutdown_timeout_s)
        return {"machineId": row["machine_id"], "finalState": final_state}

    async def retire(
        self,
        user_id: UUID,
        machine_id: str,
        reason: str,
        *,
        row: Mapping[str, Any] | None = None,
        shutdown_timeout_s: float = 30.0,
    ) -> dict[str, Any] | None:
        """Shut ``machine_id`` down gracefully (``POST /shutdown`` when ``row`` knows its URL: the
        machine saves its final state and exits), then destroy it; ``row`` is closed as destroyed.

        Returns ``{"openPositions", "watchingSignals"}`` as the machine reported them, or None
        when it did not answer ``/shutdown``. Raises FlyError when Fly refuses the destroy.
        """
        if row is not None:
            await self._pool.execute(
                "UPDATE fly_machines SET status = 'stopping', updated_at = NOW() WHERE id = $1", row["id"]
            )
        final_state = None
        if row is not None and row["http_url"] and row["machine_id"] == machine_id:
            final_state = await self._shutdown(user_id, row["http_url"], reason, shutdown_timeout_s)
        app = self.app_for(user_id)
        if not machine_id.startswith("pending-"):
            if final_state is not None:
                try:
                    await app.wait(machine_id, "stopped", timeout_s=shutdown_timeout_s)
                except FlyError:
                    pass
            try:
                await app.destroy(machine_id, force=True)
            except FlyNotFound:
                pass
        await self.delete_app_if_empty(user_id)
        if row is not None:
            await self._close_row(row["id"], reason)
        log.info("machine_destroyed", user_id=str(user_id), machine_id=machine_id, reason=reason)
        return final_state

    async def delete_app_if_empty(self, user_id: UUID) -> bool:
        """Delete ``user_id``'s app (and with it its secrets) when no machine is left in it, and
        its machine's database role.

        False when it still has machines (Fly answers 412 while one is being destroyed; the
        fleet deletes it on a later pass); True when it is gone. Raises FlyError otherwise."""
        app = self.app_for(user_id)
        try:
            await app.delete_app()
        except FlyNotFound:
            pass
        except FlyConflict as exc:
            log.info("app_not_empty", app=app.app_name, error=str(exc))
            return False
        else:
            log.info("app_deleted", app=app.app_name)
        if self._db_roles:
            try:
                await drop_machine_role(self._pool, user_id)
            except asyncpg.PostgresError as exc:  # it can no longer be used by anyone: logged, kept going
                log.warning("machine_role_not_dropped", user_id=str(user_id), error=str(exc))
        return True

    async def _shutdown(self, user_id: UUID, http_url: str, reason: str, timeout_s: float) -> dict[str, Any] | None:
        """``POST /shutdown``; a machine still starting (connection refused) is asked again for up
        to a third of ``timeout_s``. None when it never answered 200."""
        retry = AsyncRetrying(
            retry=retry_if_exception_type(httpx.ConnectError),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            stop=stop_after_delay(timeout_s / 3),
            reraise=True,
        )
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as http:
                async for attempt in retry:
                    with attempt:
                        resp = await http.post(
                            http_url.rstrip("/") + "/shutdown",
                            json={"reason": reason},
                            headers={"Authorization": f"Bearer {self._token_for(str(user_id))}"},
                        )
        except httpx.HTTPError as exc:
            log.warning("machine_shutdown_unanswered", user_id=str(user_id), error=str(exc))
            return None
        if resp.status_code != 200:
            log.warning("machine_shutdown_refused", user_id=str(user_id), status=resp.status_code)
            return None
        body = resp.json()
        return {k: body.get(k) for k in ("openPositions", "watchingSignals")}

    async def list(self, include_destroyed: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT m.*, u.email, u.tier FROM fly_machines m JOIN users u ON u.id = m.user_id"
        if not include_destroyed:
            sql += " WHERE m.status <> 'destroyed'"
        return [dict(r) for r in await self._pool.fetch(sql + " ORDER BY m.created_at")]


def _http_url(machine: Any) -> str | None:
    """Where the machine's HTTP API listens (6PN address on Fly; loopback port on the local engine)."""
    return machine.http_base_url()
