"""``POST /generate-trader`` on the control plane's HTTP service.

Request: ``Authorization: Bearer <ADMIN_TOKEN>`` (the SaaS backend's token, not the
machines' analysis token) and ``{"userId": uuid, "description": str (1..2000 chars)}``.

Answers (``{"success": false, "error": msg}`` on every error):

* 201 ``{"success": true, "traderId", "generationId", "status": "paused", "trader": spec,
  "check": {"outcome", "detail", "symbols", "matches"}, "generation": {"model",
  "promptVersion", "rounds", "usage", "costUsd", "latencyMs", "repairs"}}``; ``spec`` in
  the shape of ``examples/traders/*.json``.
* 400 malformed body (the message names the field); 401 missing/wrong token; 404 unknown
  user; 409 a generation for this user is already running; 422 no valid trader within the
  repair rounds, or the model refused (with ``generation``: what it cost); 502 the LLM
  failed (timeout, errors after the retries); 503 generation is not configured.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from control_plane.generation._generator import GenerationFailed, TraderGenerator
from control_plane.generation._prompt import MAX_DESCRIPTION_CHARS
from control_plane.generation._store import UnknownUser, generate_and_save, spec_json
from control_plane.logs import register_secret

__all__ = ["GENERATE_PATH", "GenerationRoute", "add_generation_route"]

GENERATE_PATH = "/generate-trader"

log = structlog.get_logger("control_plane.generation")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    userId: UUID  # noqa: N815 - wire name
    description: str = Field(min_length=1, max_length=MAX_DESCRIPTION_CHARS)


def _json(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json(status, {"success": False, "error": message, **extra})


@dataclass
class GenerationRoute:
    """The route's state: ``generator`` and ``admin_token`` None answer 503 (``unconfigured`` says why)."""

    pool: asyncpg.Pool
    generator: TraderGenerator | None
    admin_token: str | None
    unconfigured: str = "trader generation needs LLM_BASE_URL, LLM_MODEL_STANDARD and ADMIN_TOKEN"
    _running: set[UUID] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.admin_token:
            register_secret(self.admin_token)

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        return bool(self.admin_token) and scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), (self.admin_token or "").encode())

    async def handle(self, request: web.Request) -> web.Response:
        if self.generator is None or not self.admin_token:
            return _error(503, self.unconfigured)
        if not self._authorised(request):
            return web.Response(status=401, body=orjson.dumps({"success": False, "error": "missing or invalid bearer token"}),
                                content_type="application/json", headers={"WWW-Authenticate": "Bearer"})
        try:
            payload = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return _error(400, f"request body is not valid JSON: {exc}")
        if not isinstance(payload, dict):
            return _error(400, "request body must be a JSON object")
        try:
            body = _Body.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _error(400, f"invalid request: {where}: {first['msg']}")
        if body.userId in self._running:
            return _error(409, "a trader generation for this user is already running")
        self._running.add(body.userId)
        try:
            saved = await generate_and_save(self.pool, self.generator, body.userId, body.description)
        except UnknownUser:
            return _error(404, f"no user {body.userId}")
        except ValueError as exc:
            return _error(400, f"invalid request: description: {exc}")
        except GenerationFailed as exc:
            status = 502 if exc.kind == "llm" else 422
            return _error(status, exc.reason, generation=exc.meta.to_dict())
        finally:
            self._running.discard(body.userId)
        generated = saved.generated
        log.info("trader_generation_saved", user_id=str(body.userId), trader_id=str(saved.trader_id),
                 rounds=generated.meta.rounds)
        check = generated.check
        return _json(201, {
            "success": True, "traderId": str(saved.trader_id), "generationId": str(saved.generation_id),
            "status": "paused", "trader": spec_json(generated),
            "check": {"outcome": check.outcome, "detail": check.detail, "symbols": check.symbols,
                      "matches": check.matches},
            "generation": generated.meta.to_dict(),
        })


def add_generation_route(app: web.Application, route: GenerationRoute) -> None:
    """Serve ``POST /generate-trader`` on ``app`` (the analysis service's application)."""
    app.router.add_post(GENERATE_PATH, route.handle)
