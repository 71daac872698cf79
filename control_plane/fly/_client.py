"""Async client of the Fly Machines API (httpx), used against real Fly and the local engine.

Every method names its spec operation (``../shared/specs/fly-machines-openapi.json``).
Requests are rate limited per operation and identifier (Fly's documented limits, see
``_ratelimit``), retried per ``_retry``, and non-2xx answers become :class:`FlyError`
subclasses carrying the status code and Fly's ``error`` message.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from typing import Any

import httpx
import structlog

from ._errors import FlyBadRequest, FlyError, FlyNameTaken, FlyNotFound, FlyTimeout, FlyUnavailable, error_from_response
from ._models import App, Lease, Machine, MachineConfig, MachineEvent, WaitResult
from ._ratelimit import RateLimiter
from ._retry import RetryPolicy, retrying

__all__ = ["FLY_API_BASE_URL", "FlyClient", "NONCE_HEADER"]

log = structlog.get_logger("control_plane.fly")

#: Public endpoint of the Machines API (inside Fly's network: ``http://_api.internal:4280``).
FLY_API_BASE_URL = "https://api.machines.dev"
#: Header carrying a held lease's nonce on mutating calls.
NONCE_HEADER = "fly-machine-lease-nonce"
#: ``Machines_wait`` blocks for at most 60 s per request; longer waits are chained.
MAX_WAIT_PER_REQUEST_S = 60
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
DEFAULT_RETRY = RetryPolicy()


def _duration(seconds: float) -> str:
    """A Go duration string (``"10s"``, ``"0.5s"``) as ``StopRequest.timeout`` expects."""
    return f"{seconds:g}s"


def _authorization(token: str) -> str:
    """``Bearer <token>``; macaroon tokens printed as ``FlyV1 fm2_...`` are sent as they are."""
    token = token.strip()
    return token if token.startswith("FlyV1 ") else f"Bearer {token}"


class FlyClient:
    """Client for one Fly app's Machines.

    Args:
        base_url: ``https://api.machines.dev`` or the local engine's base URL.
        token: Fly API token (sent as ``Authorization: Bearer <token>``, or as it is when it
            is a ``FlyV1 ...`` macaroon token from ``fly tokens create``).
        app_name: the app whose Machines this client manages.
        timeout_s: per-request timeout in seconds (waits get their wait time on top).
        transport: an httpx transport (tests).
        retry: retry policy (see ``_retry``).
        rate_limiter: True for Fly's documented limits, False to disable, or a
            :class:`RateLimiter` with other limits.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        app_name: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        rate_limiter: RateLimiter | bool = True,
    ) -> None:
        self.app_name = app_name
        self._timeout_s = timeout_s
        self._retry = retry
        self._limiter = RateLimiter() if rate_limiter is True else (rate_limiter or None)
        self._owns_http = True
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": _authorization(token), "User-Agent": "trader-runtime-control-plane"},
            timeout=timeout_s,
            transport=transport,
        )

    def for_app(self, app_name: str) -> FlyClient:
        """A client of another app sharing this one's connection pool, retry policy and rate
        limiter (one subscriber's app of many). Closing it leaves the shared pool open."""
        clone = object.__new__(FlyClient)
        clone.__dict__.update(self.__dict__)
        clone.app_name = app_name
        clone._owns_http = False
        return clone

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> FlyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport -----------------------------------------------------------------------

    async def _send_once(
        self, operation: str, identifier: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        slot = self._limiter.slot(operation, identifier) if self._limiter is not None else nullcontext()
        async with slot:
            try:
                response = await self._http.request(method, path, **kwargs)
            except _NOT_SENT as exc:
                raise FlyUnavailable(operation, None, f"cannot connect: {exc!r}", request_sent=False) from exc
            except httpx.TransportError as exc:
                raise FlyUnavailable(operation, None, f"transport error: {exc!r}") from exc
        request_id = response.headers.get("fly-request-id")
        if response.is_success:
            log.debug("fly request", operation=operation, method=method, path=path, status=response.status_code,
                      fly_request_id=request_id)
            return response
        error = error_from_response(operation, response)
        error.request_id = request_id
        log.info("fly request failed", operation=operation, method=method, path=path, status=response.status_code,
                 fly_request_id=request_id, error=error.message[:300])
        raise error

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        identifier: str,
        idempotent: bool,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        nonce: str | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        kwargs: dict[str, Any] = {}
        if json is not None:
            kwargs["json"] = json
        if params:
            kwargs["params"] = params
        if nonce:
            kwargs["headers"] = {NONCE_HEADER: nonce}
        if timeout_s is not None:
            kwargs["timeout"] = timeout_s
        async for attempt in retrying(self._retry, idempotent=idempotent,
                                      retry_timeouts=operation != "Machines_wait"):
            with attempt:
                return await self._send_once(operation, identifier, method, path, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    def _machine_path(self, machine_id: str, suffix: str = "") -> str:
        return f"/v1/apps/{self.app_name}/machines/{machine_id}{suffix}"

    # -- apps ----------------------------------------------------------------------------

    async def create_app(self, org_slug: str = "personal", *, network: str | None = None) -> None:
        """Fly spec operation ``Apps_create`` for this client's app.

        Raises FlyNameTaken (422) when the name is taken, FlyBadRequest, FlyAuthError.
        """
        body: dict[str, Any] = {"name": self.app_name, "org_slug": org_slug}
        if network:
            body["network"] = network
        await self._call("Apps_create", "POST", "/v1/apps", identifier=self.app_name, idempotent=False, json=body)

    async def list_apps(self, org_slug: str = "personal") -> list[App]:
        """Fly spec operation ``Apps_list``: the org's apps."""
        response = await self._call(
            "Apps_list", "GET", "/v1/apps", identifier=org_slug, idempotent=True, params={"org_slug": org_slug}
        )
        return [App.model_validate(item) for item in (response.json() or {}).get("apps") or []]

    async def delete_app(self) -> None:
        """Fly spec operation ``Apps_delete`` (202). Raises FlyNotFound; FlyConflict while it has Machines."""
        await self._call(
            "Apps_delete", "DELETE", f"/v1/apps/{self.app_name}", identifier=self.app_name, idempotent=False
        )

    async def list_secrets(self) -> dict[str, str]:
        """Fly spec operation ``Secrets_list``: secret name -> digest (values are never returned)."""
        response = await self._call(
            "Secrets_list", "GET", f"/v1/apps/{self.app_name}/secrets", identifier=self.app_name, idempotent=True
        )
        return {item["name"]: item.get("digest", "") for item in (response.json() or {}).get("secrets") or []}

    async def set_secrets(self, values: Mapping[str, str | None]) -> int:
        """Fly spec operation ``Secrets_update``: set each secret (None unsets it); returns the new
        secrets version (a Machine created with ``min_secrets_version`` at least this sees them).
        Values are never logged."""
        response = await self._call(
            "Secrets_update", "POST", f"/v1/apps/{self.app_name}/secrets", identifier=self.app_name,
            idempotent=True, json={"values": dict(values)},
        )
        return int((response.json() or {}).get("version") or 0)

    async def delete_secret(self, name: str) -> int:
        """Fly spec operation ``Secret_delete``; returns the new secrets version. Raises FlyNotFound."""
        response = await self._call(
            "Secret_delete", "DELETE", f"/v1/apps/{self.app_name}/secrets/{name}", identifier=self.app_name,
            idempotent=False,
        )
        return int((response.json() or {}).get("version") or 0)

    async def get_app(self) -> App:
        """Fly spec operation ``Apps_show``. Raises FlyNotFound."""
        response = await self._call(
            "Apps_show", "GET", f"/v1/apps/{self.app_name}", identifier=self.app_name, idempotent=True
        )
        return App.model_validate(response.json())

    # -- machines ------------------------------------------------------------------------

    async def create_machine(
        self,
        config: MachineConfig,
        name: str | None = None,
        region: str | None = None,
        *,
        skip_launch: bool = False,
        lease_ttl_s: int | None = None,
        tag: tuple[str, str] | None = None,
        min_secrets_version: int | None = None,
    ) -> Machine:
        """Fly spec operation ``Machines_create``; the Machine boots unless ``skip_launch``.

        With ``lease_ttl_s`` the Machine comes leased and ``Machine.nonce`` holds the nonce.
        ``min_secrets_version`` (from :meth:`set_secrets`) makes it start with at least
        those app secrets.

        Create is not idempotent at Fly. ``tag`` (a metadata key and value the
        config carries, unique to this Machine, e.g. ``("user_id", ...)``) makes
        it safe to retry: after an answer that leaves the outcome unknown (408,
        5xx or a connection lost after the request was sent) or a name already
        taken, the client first lists Machines with ``metadata.{key}={value}``
        (``Machines_list``) and returns the one found; only when there is none
        does it send the create again. So no failure makes a second Machine.
        Without ``tag`` an unknown outcome is raised, never retried.

        Raises FlyBadRequest (invalid config, or ``tag`` not in its metadata),
        FlyNameTaken, FlyNotFound (app), FlyAuthError, and the last FlyTimeout /
        FlyUnavailable when every attempt's outcome stayed unknown and no tagged
        Machine appeared.
        """
        if tag is not None and (config.metadata or {}).get(tag[0]) != tag[1]:
            raise FlyBadRequest("Machines_create", None, f"tag {tag[0]}={tag[1]} is not in the config's metadata")
        body: dict[str, Any] = {"config": config.to_api()}
        if name:
            body["name"] = name
        if region:
            body["region"] = region
        if skip_launch:
            body["skip_launch"] = True
        if lease_ttl_s:
            body["lease_ttl"] = lease_ttl_s
        if min_secrets_version is not None:
            body["min_secrets_version"] = min_secrets_version
        last: FlyError | None = None
        for attempt in range(1, (self._retry.attempts if tag is not None else 1) + 1):
            try:
                response = await self._call(
                    "Machines_create", "POST", f"/v1/apps/{self.app_name}/machines",
                    identifier=self.app_name, idempotent=False, json=body,
                )
                return Machine.model_validate(response.json())
            except (FlyTimeout, FlyUnavailable, FlyNameTaken) as exc:
                if tag is None or (isinstance(exc, FlyUnavailable) and not exc.request_sent):
                    raise
                last = exc
            existing = await self.list_machines(metadata={tag[0]: tag[1]})
            if existing:
                log.warning("fly create outcome unknown; found the tagged machine", tag=f"{tag[0]}={tag[1]}",
                            machine_id=existing[0].id, error=str(last))
                return existing[0]
            if isinstance(last, FlyNameTaken):
                raise last
            log.warning("fly create outcome unknown; no tagged machine, creating again", attempt=attempt,
                        tag=f"{tag[0]}={tag[1]}", error=str(last))
        assert last is not None
        raise last

    async def get_machine(self, machine_id: str) -> Machine:
        """Fly spec operation ``Machines_show``. Raises FlyNotFound."""
        response = await self._call(
            "Machines_show", "GET", self._machine_path(machine_id), identifier=machine_id, idempotent=True
        )
        return Machine.model_validate(response.json())

    async def list_machines(
        self,
        *,
        metadata: Mapping[str, str] | None = None,
        region: str | None = None,
        states: Sequence[str] | None = None,
        include_deleted: bool = False,
    ) -> list[Machine]:
        """Fly spec operation ``Machines_list``; ``metadata`` filters by exact key/value
        (``metadata.{key}`` query parameters), ``states`` by state."""
        params: dict[str, str] = {f"metadata.{k}": v for k, v in (metadata or {}).items()}
        if region:
            params["region"] = region
        if states:
            params["state"] = ",".join(states)
        if include_deleted:
            params["include_deleted"] = "true"
        response = await self._call(
            "Machines_list", "GET", f"/v1/apps/{self.app_name}/machines",
            identifier=self.app_name, idempotent=True, params=params,
        )
        return [Machine.model_validate(item) for item in response.json() or []]

    async def wait(
        self,
        machine_id: str,
        state: str = "started",
        timeout_s: float = 60.0,
        *,
        instance_id: str | None = None,
        from_event_id: str | None = None,
        version: str | None = None,
    ) -> WaitResult:
        """Fly spec operation ``Machines_wait``: until the Machine is in ``state``
        (``started``, ``stopped``, ``suspended``, ``destroyed``, ``failed``, ``settled``).

        ``version`` (or its older name ``instance_id``) waits on that version of the
        Machine (Fly wants it for ``stopped``; an older version counts as stopped once
        replaced). Fly caps one wait at 60 s: longer waits are chained requests until
        ``timeout_s`` seconds. Raises FlyTimeout after ``timeout_s``, FlyNotFound, FlyBadRequest.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            chunk = max(1, min(MAX_WAIT_PER_REQUEST_S, math.ceil(deadline - time.monotonic())))
            params: dict[str, Any] = {"state": state, "timeout": chunk}
            if version:
                params["version"] = version
            if instance_id:
                params["instance_id"] = instance_id
            if from_event_id:
                params["from_event_id"] = from_event_id
            try:
                response = await self._call(
                    "Machines_wait", "GET", self._machine_path(machine_id, "/wait"),
                    identifier=machine_id, idempotent=True, params=params, timeout_s=chunk + self._timeout_s,
                )
            except FlyTimeout:
                if time.monotonic() >= deadline - 0.5:
                    raise
                continue
            return WaitResult.model_validate(response.json() if response.content else {})

    async def stop(
        self,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout_s: float | None = None,
        lease_nonce: str | None = None,
    ) -> None:
        """Fly spec operation ``Machines_stop``: ``signal`` (default: the config's
        ``stop_config``), SIGKILL after ``timeout_s`` seconds. Returns before the Machine
        has stopped: ``wait(machine_id, "stopped")``. Raises FlyNotFound, LeaseHeld, FlyConflict."""
        body: dict[str, Any] = {}
        if signal:
            body["signal"] = signal
        if timeout_s is not None:
            body["timeout"] = _duration(timeout_s)
        await self._call(
            "Machines_stop", "POST", self._machine_path(machine_id, "/stop"),
            identifier=machine_id, idempotent=False, json=body or None, nonce=lease_nonce,
        )

    async def start(self, machine_id: str, *, lease_nonce: str | None = None) -> str | None:
        """Fly spec operation ``Machines_start``; the previous state when Fly reports it.
        Raises FlyConflict (412) when the Machine is already running, FlyNotFound, LeaseHeld."""
        response = await self._call(
            "Machines_start", "POST", self._machine_path(machine_id, "/start"),
            identifier=machine_id, idempotent=False, nonce=lease_nonce,
        )
        body = response.json() if response.content else {}
        return body.get("previous_state") if isinstance(body, dict) else None

    async def restart(
        self, machine_id: str, *, signal: str | None = None, timeout_s: float | None = None,
        lease_nonce: str | None = None,
    ) -> None:
        """Fly spec operation ``Machines_restart``: stop with ``signal`` (SIGKILL after ``timeout_s``),
        then start the same version. Raises FlyConflict (412) when it is not running, FlyNotFound, LeaseHeld."""
        params: dict[str, str] = {}
        if signal:
            params["signal"] = signal
        if timeout_s is not None:
            params["timeout"] = _duration(timeout_s)
        await self._call(
            "Machines_restart", "POST", self._machine_path(machine_id, "/restart"),
            identifier=machine_id, idempotent=False, params=params, nonce=lease_nonce,
        )

    async def get_metadata(self, machine_id: str) -> dict[str, str]:
        """Fly spec operation ``Machines_show_metadata``: the Machine's metadata. Raises FlyNotFound."""
        response = await self._call(
            "Machines_show_metadata", "GET", self._machine_path(machine_id, "/metadata"),
            identifier=machine_id, idempotent=True,
        )
        body = response.json() if response.content else {}
        return {str(k): str(v) for k, v in (body or {}).items()}

    async def set_metadata(self, machine_id: str, key: str, value: str, *, lease_nonce: str | None = None) -> None:
        """Fly spec operation ``Machines_upsert_metadata`` (idempotent: the same value twice is one state)."""
        await self._call(
            "Machines_upsert_metadata", "POST", self._machine_path(machine_id, f"/metadata/{key}"),
            identifier=machine_id, idempotent=True, json={"value": value}, nonce=lease_nonce,
        )

    async def delete_metadata(self, machine_id: str, key: str, *, lease_nonce: str | None = None) -> None:
        """Fly spec operation ``Machines_delete_metadata``. Raises FlyNotFound for a missing key."""
        await self._call(
            "Machines_delete_metadata", "DELETE", self._machine_path(machine_id, f"/metadata/{key}"),
            identifier=machine_id, idempotent=False, nonce=lease_nonce,
        )

    async def update_machine(
        self,
        machine_id: str,
        config: MachineConfig,
        *,
        skip_launch: bool = False,
        current_version: str | None = None,
        lease_nonce: str | None = None,
        min_secrets_version: int | None = None,
    ) -> Machine:
        """Fly spec operation ``Machines_update``: replace the whole config (new
        ``instance_id``); a running Machine restarts with it (with at least
        ``min_secrets_version`` of the app's secrets when given). Raises FlyBadRequest,
        FlyConflict (stale ``current_version``), LeaseHeld, FlyNotFound."""
        body: dict[str, Any] = {"config": config.to_api()}
        if skip_launch:
            body["skip_launch"] = True
        if min_secrets_version is not None:
            body["min_secrets_version"] = min_secrets_version
        if current_version:
            body["current_version"] = current_version
        response = await self._call(
            "Machines_update", "POST", self._machine_path(machine_id),
            identifier=machine_id, idempotent=False, json=body, nonce=lease_nonce,
        )
        return Machine.model_validate(response.json())

    async def destroy(self, machine_id: str, *, force: bool = False, lease_nonce: str | None = None) -> None:
        """Fly spec operation ``Machines_delete``. A running Machine needs ``force``
        (killed) or raises FlyConflict (412). Raises FlyNotFound, LeaseHeld."""
        await self._call(
            "Machines_delete", "DELETE", self._machine_path(machine_id),
            identifier=machine_id, idempotent=False, params={"force": "true"} if force else None, nonce=lease_nonce,
        )

    async def list_events(self, machine_id: str, limit: int = 20) -> list[MachineEvent]:
        """Fly spec operation ``Machines_list_events``: newest ``limit`` (max 50) events first."""
        response = await self._call(
            "Machines_list_events", "GET", self._machine_path(machine_id, "/events"),
            identifier=machine_id, idempotent=True, params={"limit": limit},
        )
        return [MachineEvent.model_validate(e) for e in response.json() or []]

    # -- leases --------------------------------------------------------------------------

    @staticmethod
    def _lease(response: httpx.Response) -> Lease:
        body = response.json()
        # Fly's servers wrap it as {"status": "success", "data": {...}}; the spec's Lease is flat.
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"]
        return Lease.model_validate(body)

    async def acquire_lease(
        self, machine_id: str, *, ttl_s: int = 30, description: str | None = None, nonce: str | None = None
    ) -> Lease:
        """Fly spec operation ``Machines_create_lease`` (``nonce`` refreshes a held lease).
        Raises LeaseHeld when someone else holds it, FlyNotFound."""
        body: dict[str, Any] = {"ttl": ttl_s}
        if description:
            body["description"] = description
        response = await self._call(
            "Machines_create_lease", "POST", self._machine_path(machine_id, "/lease"),
            identifier=machine_id, idempotent=False, json=body, nonce=nonce,
        )
        return self._lease(response)

    async def get_lease(self, machine_id: str) -> Lease:
        """Fly spec operation ``Machines_show_lease``. Raises FlyNotFound when none is held."""
        response = await self._call(
            "Machines_show_lease", "GET", self._machine_path(machine_id, "/lease"),
            identifier=machine_id, idempotent=True,
        )
        return self._lease(response)

    async def release_lease(self, machine_id: str, nonce: str) -> None:
        """Fly spec operation ``Machines_release_lease``. Raises FlyNotFound (no lease,
        e.g. expired), LeaseHeld (another nonce)."""
        await self._call(
            "Machines_release_lease", "DELETE", self._machine_path(machine_id, "/lease"),
            identifier=machine_id, idempotent=False, nonce=nonce,
        )

    @asynccontextmanager
    async def lease(self, machine_id: str, *, ttl_s: int = 30, description: str | None = None) -> AsyncIterator[Lease]:
        """``async with client.lease(id) as lease:`` pass ``lease_nonce=lease.nonce`` to
        mutating calls inside; released on exit (a failed release is logged: the lease
        expires after ``ttl_s`` anyway). Raises LeaseHeld when someone else holds it."""
        held = await self.acquire_lease(machine_id, ttl_s=ttl_s, description=description)
        try:
            yield held
        finally:
            try:
                await self.release_lease(machine_id, held.nonce)
            except FlyNotFound:
                pass
            except FlyError as exc:
                log.warning("lease release failed", machine_id=machine_id, error=str(exc))
