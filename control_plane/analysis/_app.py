"""The aiohttp application serving ``POST /analyze-signal`` (seed 002 "2. Analyze Signal").

Routes:

* ``POST /analyze-signal`` (alias ``POST /functions/v1/analyze-signal``, seed 002's
  Supabase path): requires ``Authorization: Bearer <token>``; body as in
  ``control_plane.analysis._schemas``. Answers ``200 {"success": true, "analysis":
  {"decision", "reasoning", "confidence", "metadata": {"stopLoss", "takeProfit",
  "positionSize", ...}}}``. Prices are JSON numbers written from their Decimal value
  digit for digit (no float rounding).
* ``GET /healthz``: no auth; ``{"status": "ok", "backend": name, "analyses": n,
  "errors": n}``.

Every error is ``{"success": false, "error": "<message>"}`` with: 400 malformed body,
401 missing/wrong token (with ``WWW-Authenticate: Bearer``), 404/405 unknown route or
method, 413 body above ``max_body_bytes``, 422 the backend lacks data, 500 internal
error or the ``on_analysis`` hook failed, 502 backend failure (or an answer above
``MAX_RESPONSE_BYTES``), 503 backend unavailable, 504 backend timeout. The machine's
client retries 429 and 5xx only. The bearer token is registered with
``control_plane.logs`` and never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import structlog
from aiohttp import web
from pydantic import ValidationError

from control_plane.analysis._backend import AnalysisBackend
from control_plane.logs import plain_traceback, register_secret
from control_plane.analysis._errors import (
    AnalysisServiceError,
    BackendFailed,
    BackendTimeout,
    InvalidAnalysisRequest,
)
from control_plane.analysis._schemas import (
    AnalysisResult,
    AnalyzeSignalRequest,
    format_validation_error,
)

__all__ = [
    "ANALYSIS_PATH",
    "AnalysisServer",
    "OnAnalysis",
    "create_analysis_app",
    "dumps",
    "serve_analysis",
]

ANALYSIS_PATH = "/analyze-signal"
#: Largest answer sent; a decision is a few hundred bytes.
MAX_RESPONSE_BYTES = 64 * 1024
SEED_ANALYSIS_PATH = "/functions/v1/analyze-signal"

#: Called after a successful analysis, before the answer is sent; sync or async.
#: An exception turns the answer into 500 so nothing unrecorded is acted on.
OnAnalysis = Callable[[AnalyzeSignalRequest, AnalysisResult], Awaitable[None] | None]

log = structlog.get_logger("control_plane.analysis")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"cannot serialise non-finite Decimal {value}")
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    """orjson with Decimals written as exact JSON numbers (``format(d, "f")``)."""
    return orjson.dumps(payload, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=dumps(payload), content_type="application/json", headers=headers
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(status, {"success": False, "error": message}, headers)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = exc.headers.get("Allow")
        return _error(exc.status, exc.reason or "error", {"Allow": allow} if allow else None)
    except Exception as exc:
        log.error("analysis_internal_error", path=request.path, error=type(exc).__name__,
                  traceback=plain_traceback(exc))
        return _error(500, "internal error")


@dataclass
class _Service:
    backend: AnalysisBackend
    token: bytes
    on_analysis: OnAnalysis | None
    backend_timeout_s: float
    analyses: int = 0
    errors: int = 0

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self.token)

    async def _parse(self, request: web.Request) -> AnalyzeSignalRequest:
        body = await request.read()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidAnalysisRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise InvalidAnalysisRequest("request body must be a JSON object")
        try:
            return AnalyzeSignalRequest.model_validate(payload)
        except ValidationError as exc:
            raise InvalidAnalysisRequest(format_validation_error(exc)) from None

    async def _run_backend(self, analysis_request: AnalyzeSignalRequest) -> AnalysisResult:
        try:
            result = await asyncio.wait_for(
                self.backend.analyze(analysis_request), timeout=self.backend_timeout_s
            )
        except AnalysisServiceError:
            raise
        except TimeoutError:
            raise BackendTimeout(
                f"analysis backend {self.backend.name!r} timed out after {self.backend_timeout_s}s"
            ) from None
        except Exception as exc:
            # The traceback without local variables: a backend's locals may hold credentials.
            log.error("analysis_backend_failed", backend=self.backend.name, error=type(exc).__name__,
                      traceback=plain_traceback(exc))
            raise BackendFailed(
                f"analysis backend {self.backend.name!r} failed: {type(exc).__name__}"
            ) from exc
        if not isinstance(result, AnalysisResult):
            raise BackendFailed(f"analysis backend {self.backend.name!r} returned no AnalysisResult")
        return result

    async def analyze(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            self.errors += 1
            return _error(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})
        started = time.perf_counter()
        try:
            analysis_request = await self._parse(request)
            result = await self._run_backend(analysis_request)
        except AnalysisServiceError as exc:
            self.errors += 1
            log.warning("analysis_rejected", status=exc.status, error=exc.message)
            return _error(exc.status, exc.message)
        if self.on_analysis is not None:
            try:
                outcome = self.on_analysis(analysis_request, result)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:
                self.errors += 1
                log.error("analysis_hook_failed", signal_id=analysis_request.signal_id, error=type(exc).__name__,
                          traceback=plain_traceback(exc))
                return _error(500, "failed to record the analysis")
        self.analyses += 1
        log.info(
            "analysis",
            backend=self.backend.name,
            trader_id=analysis_request.trader_id,
            signal_id=analysis_request.signal_id,
            symbol=analysis_request.market_data.symbol,
            decision=result.decision.value,
            confidence=result.confidence,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        body = dumps({"success": True, "analysis": result.to_wire()})
        if len(body) > MAX_RESPONSE_BYTES:
            self.errors += 1
            log.error("analysis_answer_too_large", backend=self.backend.name, bytes=len(body))
            return _error(502, f"analysis backend {self.backend.name!r} answered more than {MAX_RESPONSE_BYTES} bytes")
        return web.Response(status=200, body=body, content_type="application/json")

    async def healthz(self, request: web.Request) -> web.Response:
        return _json(
            200,
            {"status": "ok", "backend": self.backend.name, "analyses": self.analyses, "errors": self.errors},
        )


def create_analysis_app(
    backend: AnalysisBackend,
    token: str,
    *,
    on_analysis: OnAnalysis | None = None,
    backend_timeout_s: float = 30.0,
    max_body_bytes: int = 8 * 1024 * 1024,
) -> web.Application:
    """Build the analysis service application (routes and errors: module docstring).

    Args:
        backend: decides on each request (e.g. ``RulesBackend()``).
        token: the bearer token clients must send; compared in constant time.
        on_analysis: optional hook ``(request, result)`` run before answering, e.g. to
            persist the analysis server-side; if it raises, the answer is 500.
        backend_timeout_s: the backend's time budget per request (504 beyond it).
        max_body_bytes: largest accepted body (413 beyond it); 8 MiB fits several
            intervals of 1000 klines.

    Raises:
        ValueError: empty token or non-positive timeout.
    """
    if not token:
        raise ValueError("the analysis token must not be empty")
    register_secret(token)
    if backend_timeout_s <= 0:
        raise ValueError("backend_timeout_s must be positive")
    service = _Service(backend, token.encode(), on_analysis, backend_timeout_s)
    app = web.Application(middlewares=[_json_errors], client_max_size=max_body_bytes)
    app.router.add_post(ANALYSIS_PATH, service.analyze)
    app.router.add_post(SEED_ANALYSIS_PATH, service.analyze)
    app.router.add_get("/healthz", service.healthz)
    return app


@dataclass
class AnalysisServer:
    """A running analysis service; ``url`` is its base URL (``http://host:port``)."""

    runner: web.AppRunner
    url: str

    @property
    def analyze_url(self) -> str:
        """Full URL of ``POST /analyze-signal`` (the machine's ANALYSIS_URL)."""
        return self.url + ANALYSIS_PATH

    async def close(self) -> None:
        """Stop listening and finish in-flight requests."""
        await self.runner.cleanup()


async def serve_analysis(
    host: str,
    port: int,
    backend: AnalysisBackend,
    token: str,
    *,
    on_analysis: OnAnalysis | None = None,
    backend_timeout_s: float = 30.0,
) -> AnalysisServer:
    """Start the service on ``host:port`` (``port=0`` picks a free one) in this loop.

    Returns once it is listening; call ``await server.close()`` to stop it.
    Raises ``OSError`` when the address cannot be bound.
    """
    app = create_analysis_app(
        backend, token, on_analysis=on_analysis, backend_timeout_s=backend_timeout_s
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    log.info("analysis_service_started", url=f"http://{shown}:{bound_port}", backend=backend.name)
    return AnalysisServer(runner=runner, url=f"http://{shown}:{bound_port}")
