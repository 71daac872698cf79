"""aiohttp routes. Handlers are thin: they call the :class:`MachineControl` service.

Public: ``GET /health``, ``GET /metrics``. Authenticated (``Authorization:
Bearer MACHINE_TOKEN``, 401 otherwise): ``POST /reload-traders``, ``POST /shutdown``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from machine.http._metrics import MetricsSnapshot, render_prometheus

__all__ = ["MachineControl", "create_app"]


class MachineControl(Protocol):
    def health(self) -> dict[str, Any]: ...
    def metrics(self) -> MetricsSnapshot: ...
    async def reload_traders(self) -> dict[str, Any]: ...
    async def shutdown(self, reason: str) -> dict[str, Any]: ...


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _auth(token: str) -> Callable[..., Any]:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.method == "POST":
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _json({"success": False, "error": "missing or invalid bearer token"}, status=401)
        return await handler(request)

    return middleware


def create_app(control: MachineControl, token: str) -> web.Application:
    """The machine's HTTP application."""
    app = web.Application(middlewares=[_auth(token)], client_max_size=64 * 1024)

    async def health(_: web.Request) -> web.Response:
        body = control.health()
        return _json(body, status=200 if body.get("status") != "unhealthy" else 503)

    async def metrics(request: web.Request) -> web.Response:
        snap = control.metrics()
        if "text/plain" in request.headers.get("Accept", ""):
            return web.Response(body=render_prometheus(snap), headers={"Content-Type": CONTENT_TYPE_LATEST})
        return _json(snap.to_json())

    async def reload_traders(_: web.Request) -> web.Response:
        return _json(await control.reload_traders())

    async def shutdown(request: web.Request) -> web.Response:
        reason = "requested"
        if request.can_read_body:
            try:
                body = orjson.loads(await request.read())
                reason = str(body.get("reason") or reason)[:200] if isinstance(body, dict) else reason
            except orjson.JSONDecodeError:
                return _json({"success": False, "error": "body must be JSON like {\"reason\": \"...\"}"}, status=400)
        return _json(await control.shutdown(reason))

    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/reload-traders", reload_traders)
    app.router.add_post("/shutdown", shutdown)
    return app
