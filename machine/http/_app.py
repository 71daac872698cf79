"""aiohttp routes. Handlers are thin: they validate the body against the OpenAPI description
(``_openapi``) and call the :class:`MachineControl` service and the control API
(``machine.control.ControlService``).

Public: ``GET /health``, ``GET /metrics``, ``GET /openapi.json``. Every other route needs
``Authorization: Bearer MACHINE_TOKEN`` (401 otherwise): ``GET /traders``, ``GET
/positions``, ``POST /traders/{traderId}/pause``, ``POST /traders/{traderId}/resume``,
``POST /stop-entries``, ``POST /resume-entries``, ``POST /force-exit``, ``POST
/reload-traders``, ``POST /shutdown``. Errors are ``{"success": false, "error": msg}``:
400 (the message names the field), 401, 404, 405, 409; an unexpected failure is a 500
that names no internals.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from uuid import UUID

import orjson
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from machine.control import Conflict, ControlService, NotFound
from machine.http._metrics import MetricsSnapshot, render_prometheus
from machine.http._openapi import OPENAPI, BadRequest, validate_body

__all__ = ["MachineControl", "create_app"]

log = structlog.get_logger(__name__)

_PUBLIC = frozenset({"/health", "/metrics", "/openapi.json"})


class MachineControl(Protocol):
    def health(self) -> dict[str, Any]: ...
    def metrics(self) -> MetricsSnapshot: ...
    async def reload_traders(self) -> dict[str, Any]: ...
    async def shutdown(self, reason: str) -> dict[str, Any]: ...


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"success": False, "error": message}, status=status)


def _middleware(token: str) -> Callable[..., Any]:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path not in _PUBLIC:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _error(401, "missing or invalid bearer token")
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))
        except Conflict as exc:
            return _error(409, str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _error(exc.status, exc.reason or "error")
        except Exception as exc:  # never a traceback or an internal detail to the caller
            log.error("http_handler_failed", path=request.path, error=type(exc).__name__)
            return _error(500, "internal error")

    return middleware


def _trader_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["traderId"])
    except ValueError:
        raise BadRequest("traderId: not a UUID") from None


def create_app(control: MachineControl, token: str, api: ControlService | None = None) -> web.Application:
    """The machine's HTTP application; ``api`` serves the control routes (absent: 404)."""
    app = web.Application(middlewares=[_middleware(token)], client_max_size=64 * 1024)

    async def body(request: web.Request, schema: str) -> dict[str, Any]:
        return validate_body(schema, await request.read())

    def need_api() -> ControlService:
        if api is None:
            raise web.HTTPNotFound(reason="the control API is not served by this machine")
        return api

    async def health(_: web.Request) -> web.Response:
        payload = control.health()
        return _json(payload, status=200 if payload.get("status") != "unhealthy" else 503)

    async def metrics(request: web.Request) -> web.Response:
        snap = control.metrics()
        if "text/plain" in request.headers.get("Accept", ""):
            return web.Response(body=render_prometheus(snap), headers={"Content-Type": CONTENT_TYPE_LATEST})
        return _json(snap.to_json())

    async def openapi(_: web.Request) -> web.Response:
        return _json(OPENAPI)

    async def reload_traders(request: web.Request) -> web.Response:
        await body(request, "ReasonBody")
        return _json(await control.reload_traders())

    async def shutdown(request: web.Request) -> web.Response:
        payload = await body(request, "ReasonBody")
        return _json(await control.shutdown(payload.get("reason", "requested")))

    async def traders(_: web.Request) -> web.Response:
        return _json(await need_api().traders())

    async def positions(_: web.Request) -> web.Response:
        return _json(await need_api().positions())

    async def pause(request: web.Request) -> web.Response:
        trader_id = _trader_id(request)
        payload = await body(request, "ReasonBody")
        return _json(await need_api().pause(trader_id, payload.get("reason")))

    async def resume(request: web.Request) -> web.Response:
        trader_id = _trader_id(request)
        payload = await body(request, "ReasonBody")
        return _json(await need_api().resume(trader_id, payload.get("reason")))

    async def stop_entries(request: web.Request) -> web.Response:
        payload = await body(request, "ReasonBody")
        return _json(await need_api().stop_entries(payload.get("reason")))

    async def resume_entries(request: web.Request) -> web.Response:
        payload = await body(request, "ReasonBody")
        return _json(await need_api().resume_entries(payload.get("reason")))

    async def force_exit(request: web.Request) -> web.Response:
        payload = await body(request, "ForceExit")  # exactly one key (minProperties/maxProperties)
        return _json(await need_api().force_exit(
            position_id=UUID(payload["positionId"]) if "positionId" in payload else None,
            trader_id=UUID(payload["traderId"]) if "traderId" in payload else None,
            everything=payload.get("all") is True))

    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/traders", traders)
    app.router.add_get("/positions", positions)
    app.router.add_post("/traders/{traderId}/pause", pause)
    app.router.add_post("/traders/{traderId}/resume", resume)
    app.router.add_post("/stop-entries", stop_entries)
    app.router.add_post("/resume-entries", resume_entries)
    app.router.add_post("/force-exit", force_exit)
    app.router.add_post("/reload-traders", reload_traders)
    app.router.add_post("/shutdown", shutdown)
    return app
