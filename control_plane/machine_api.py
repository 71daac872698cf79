"""The control plane's client of a subscriber's machine control API (``machine/http``).

The machine is found by its live ``fly_machines`` row (``http_url``) and authenticated with
its ``MACHINE_TOKEN`` (``HMAC-SHA256(MACHINE_TOKEN_SECRET, user id)``,
:func:`control_plane.settings.machine_token`). Routes and answers: the machine's
``GET /openapi.json``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import httpx

from control_plane.logs import register_secret
from control_plane.settings import machine_token

__all__ = ["MachineApi", "MachineApiError", "machine_api_for"]


class MachineApiError(RuntimeError):
    """The machine cannot be reached or refused the request; the message says which and why."""


class MachineApi:
    """One machine's control API at ``base_url`` with its bearer ``token``."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        register_secret(token)
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport,
                                       headers={"Authorization": f"Bearer {token}"})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise MachineApiError(f"the machine did not answer {method} {path}: {type(exc).__name__}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text[:200]}
        if response.status_code >= 400:
            error = payload.get("error") if isinstance(payload, dict) else payload
            raise MachineApiError(f"{method} {path}: HTTP {response.status_code}: {error}")
        return payload

    async def traders(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/traders")

    async def positions(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/positions")

    async def pause(self, trader_id: UUID, reason: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"/traders/{trader_id}/pause", {"reason": reason} if reason else {})

    async def resume(self, trader_id: UUID, reason: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"/traders/{trader_id}/resume", {"reason": reason} if reason else {})

    async def reload_traders(self) -> dict[str, Any]:
        return await self._call("POST", "/reload-traders", {})

    async def force_exit(self, *, position_id: UUID | None = None, trader_id: UUID | None = None,
                         everything: bool = False) -> dict[str, Any]:
        """Close one position, a trader's positions, or all of them (exactly one must be given)."""
        chosen = [k for k, v in (("positionId", position_id), ("traderId", trader_id), ("all", everything or None))
                  if v is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of a position, a trader, or all")
        body: dict[str, Any] = {"all": True} if everything else {chosen[0]: str(position_id or trader_id)}
        return await self._call("POST", "/force-exit", body)


async def machine_api_for(pool: asyncpg.Pool, user_id: UUID, secret: str) -> MachineApi:
    """The client of ``user_id``'s live machine.

    Raises:
        MachineApiError: the user has no live machine, or it has no HTTP address yet.
    """
    row = await pool.fetchrow(
        "SELECT http_url, status FROM fly_machines WHERE user_id = $1 AND status <> 'destroyed'", user_id)
    if row is None:
        raise MachineApiError(f"user {user_id} has no machine")
    if not row["http_url"]:
        raise MachineApiError(f"the machine of user {user_id} has no HTTP address yet (status {row['status']})")
    return MachineApi(row["http_url"], machine_token(secret, str(user_id)))
