"""The simulator's admin endpoints under ``/sim`` (not Binance's; no authentication: a local test
tool): faults (``_faults``), the exchange log (``_exchange_log``), user stream faults and deposits.

* ``POST /sim/faults`` a :class:`~._faults.Fault` as JSON (``kind``, ``target``, ``count``, ``code``,
  ``msg``, ``status``, ``delay``, ``retry_after``) -> the rule with its ``id``;
  ``GET /sim/faults`` -> the rules and settings; ``DELETE /sim/faults`` clears them;
  ``PUT /sim/faults/settings`` ``{"clock_offset_ms", "fill_delay_ms", "event_delay"}`` (any of them).
* ``POST /sim/user-streams/terminate`` / ``/drop`` ``{"api_key"}`` -> ``{"streams": N}``.
* ``POST /sim/deposit`` ``{"api_key", "asset", "amount"}`` (amount a decimal string; negative withdraws).
* ``GET /sim/log?since=SEQ&kind=request|order|fill&account=A`` -> ``{"entries": [...]}``.

A malformed body or parameter is answered 400 ``{"error": "..."}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from aiohttp import web

from ._accounts import Accounts
from ._faults import Fault

__all__ = ["AdminApi"]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


class _BadRequest(Exception):
    pass


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


class AdminApi:
    """The ``/sim`` handlers. ``terminate``/``drop``: the WebSocket API's stream faults, by account;
    ``now_ms``: the replay clock."""

    def __init__(self, accounts: Accounts, terminate: Callable[[str], int], drop: Callable[[str], int],
                 now_ms: Callable[[], int]) -> None:
        self._accounts = accounts
        self._terminate = terminate
        self._drop = drop
        self._now = now_ms

    def routes(self) -> list[web.RouteDef]:
        wrap = self._wrap
        return [
            web.post("/sim/faults", wrap(self.add_fault)), web.get("/sim/faults", wrap(self.faults)),
            web.delete("/sim/faults", wrap(self.clear_faults)), web.put("/sim/faults/settings", wrap(self.settings)),
            web.post("/sim/user-streams/terminate", wrap(self.terminate)),
            web.post("/sim/user-streams/drop", wrap(self.drop)), web.post("/sim/deposit", wrap(self.deposit)),
            web.get("/sim/log", wrap(self.log)),
        ]  # fmt: skip

    @staticmethod
    def _wrap(handler: Callable[[web.Request], Awaitable[Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            try:
                return _json(await handler(request))
            except (_BadRequest, ValueError, TypeError, KeyError) as exc:
                return _json({"error": f"{type(exc).__name__}: {exc}"}, 400)

        return handle

    def _account(self, body: dict[str, Any]) -> str:
        key = self._accounts.keys.get(str(body.get("api_key")))
        if key is None:
            raise _BadRequest("unknown api_key")
        return key.account

    async def add_fault(self, request: web.Request) -> Any:
        return self._accounts.faults.add(Fault.from_json(await _body(request))).to_json()

    async def faults(self, request: web.Request) -> Any:
        plan = self._accounts.faults
        return {"rules": [f.to_json() for f in plan.rules], "clock_offset_ms": plan.clock_offset_ms,
                "fill_delay_ms": plan.fill_delay_ms, "event_delay": plan.event_delay}

    async def clear_faults(self, request: web.Request) -> Any:
        self._accounts.faults.clear()
        return {}

    async def settings(self, request: web.Request) -> Any:
        body = await _body(request)
        unknown = set(body) - {"clock_offset_ms", "fill_delay_ms", "event_delay"}
        if unknown:
            raise _BadRequest(f"unknown settings {sorted(unknown)}")
        plan = self._accounts.faults
        for name in ("clock_offset_ms", "fill_delay_ms"):
            if name in body:
                if not isinstance(body[name], int) or isinstance(body[name], bool):
                    raise _BadRequest(f"{name} must be an integer")
                setattr(plan, name, body[name])
        if "event_delay" in body:
            if not isinstance(body["event_delay"], (int, float)) or body["event_delay"] < 0:
                raise _BadRequest("event_delay must be a number of seconds >= 0")
            plan.event_delay = float(body["event_delay"])
        return await self.faults(request)

    async def terminate(self, request: web.Request) -> Any:
        return {"streams": self._terminate(self._account(await _body(request)))}

    async def drop(self, request: web.Request) -> Any:
        return {"streams": self._drop(self._account(await _body(request)))}

    async def deposit(self, request: web.Request) -> Any:
        body = await _body(request)
        account = self._account(body)
        try:
            amount = Decimal(str(body.get("amount")))
        except InvalidOperation:
            raise _BadRequest("amount must be a decimal string") from None
        if not amount.is_finite() or not isinstance(body.get("asset"), str) or not body["asset"]:
            raise _BadRequest("asset and a finite amount are required")
        self._accounts.deposit(account, body["asset"], amount, self._now())
        return {}

    async def log(self, request: web.Request) -> Any:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            raise _BadRequest("since must be an integer") from None
        kind = request.query.get("kind")
        if kind not in (None, "request", "order", "fill"):
            raise _BadRequest("kind is request, order or fill")
        entries = self._accounts.log.entries(kind, max(0, since), request.query.get("account"))
        return {"entries": [e.to_json() for e in entries]}
