"""The WebSocket API at ``/ws-api/v3`` and the user data stream on it (Binance spot API docs,
``web-socket-api.md`` "Request format", "Response format", "Request security", "Session
Authentication", "User Data Stream requests"; ``user-data-stream.md``).

Requests are JSON text frames ``{"id": ..., "method": ..., "params": {...}}``; each answer is
``{"id", "status": 200, "result", "rateLimits"}`` or ``{"id", "status": 4xx, "error": {"code",
"msg"}, "rateLimits"}`` (``rateLimits``: the connection's IP's ``REQUEST_WEIGHT`` per minute,
shared with REST, and after a placed order the account's ``ORDERS`` counts; left out when the
connection URL has ``returnRateLimits=false``). A frame that is not a JSON request object is
answered ``{"id": null, "status": 400, "error": {"code": -1135, ...}}`` and counted.

Signed methods carry ``apiKey``, ``timestamp``, optional ``recvWindow`` and ``signature``: the
signature over every other parameter sorted by name as ``name=value`` joined by ``&``
(HMAC-SHA256 hex or Ed25519 base64; a payload with percent-encoded values, as python-binance
signs, is accepted too). After ``session.logon`` (Ed25519 keys only) a signed method may leave
out ``apiKey`` and ``signature``; ``timestamp`` is always checked (``_signing``).

Methods: ``ping``, ``time``, ``session.logon``, ``session.status``, ``session.logout``,
``userDataStream.subscribe`` (after logon), ``userDataStream.subscribe.signature``,
``userDataStream.unsubscribe`` (one ``subscriptionId`` or all), and the trading methods served by
the REST handlers: ``order.place``, ``order.test``, ``order.status``, ``order.cancel``,
``order.cancelReplace``, ``openOrders.status``, ``allOrders``, ``myTrades``, ``account.status``,
``account.rateLimits.orders``, ``orderList.place.oco``, ``orderList.status``,
``orderList.cancel``, ``openOrderLists.status``. Events arrive as ``{"subscriptionId": N,
"event": {...}}`` in the order :mod:`._user_events` gives; a logout ends the session's
subscriptions with ``eventStreamTerminated``. Everything a connection sends goes out in order
through one writer, so the events of an order come before the answer to ``order.place``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
import structlog
from aiohttp import WSMsgType, web

from ._accounts import Accounts
from ._errors import BinanceAPIError
from ._signing import ApiKey, check_timing
from ._trading_api import TradingApi
from ._user_events import stream_terminated

__all__ = ["WebSocketApi"]

_log = structlog.get_logger("exchange_sim.ws_api")

_SIGNED = {
    "order.place": "new_order", "order.test": "test_order", "order.status": "query_order", "order.cancel": "cancel",
    "order.cancelReplace": "cancel_replace", "openOrders.status": "open_orders", "allOrders": "all_orders",
    "myTrades": "my_trades", "account.status": "account", "account.rateLimits.orders": "rate_limit_order",
    "orderList.place.oco": "new_oco", "orderList.status": "order_list", "orderList.cancel": "cancel_list",
    "openOrderLists.status": "open_order_lists",
}  # fmt: skip


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(slots=True)
class _Subscription:
    account: str
    unsubscribe: Callable[[], None]
    via_logon: bool


class _Session:
    """One WebSocket API connection: its logon, subscriptions and outgoing frames."""

    def __init__(self, ws: web.WebSocketResponse, ip: str, connected: int, rate_limits: bool,
                 transport: asyncio.BaseTransport | None = None) -> None:
        self.ws = ws
        self.transport = transport
        self.ip = ip
        self.connected = connected
        self.authorized: int | None = None
        self.key: ApiKey | None = None
        self.rate_limits = rate_limits
        self.subscriptions: dict[int, _Subscription] = {}
        self.next_subscription = 0
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue()

    def send(self, message: dict[str, Any]) -> None:
        self.outbox.put_nowait(orjson.dumps(message))

    async def writer(self) -> None:
        while (frame := await self.outbox.get()) is not None:
            await self.ws.send_str(frame.decode())

    def end(self, subscription_id: int, now: int) -> None:
        self.subscriptions.pop(subscription_id).unsubscribe()
        self.send({"subscriptionId": subscription_id, "event": stream_terminated(now)})


class _Answered(Exception):
    """A trading request the REST handlers answered with an error (status and body as they are)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class WebSocketApi:
    """The ``/ws-api/v3`` handler.

    Args:
        accounts: the simulator's accounts (keys, books, event listeners).
        trading: the REST trading handlers the trading methods call.
        now_ms: the replay clock.
        weights: the per-IP request weight counter shared with REST.
        weight_limit: ``REQUEST_WEIGHT`` per minute (``exchangeInfo``).
    """

    def __init__(self, accounts: Accounts, trading: TradingApi, now_ms: Callable[[], int], weights: Any,
                 weight_limit: int = 6000) -> None:
        self._accounts = accounts
        self._trading = trading
        self._now = now_ms
        self._weights = weights
        self._weight_limit = weight_limit
        self.sessions: set[_Session] = set()
        self.malformed = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        session = _Session(ws, request.remote or "?", self._now(),
                           request.query.get("returnRateLimits", "true").lower() != "false", request.transport)
        self.sessions.add(session)
        writer = asyncio.create_task(session.writer(), name="exchange_sim.ws_api.writer")
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._request(session, message.data)
                elif message.type == WSMsgType.BINARY:
                    self._malformed(session, "Binary frames are not supported.")
        finally:
            for subscription in session.subscriptions.values():
                subscription.unsubscribe()
            session.subscriptions.clear()
            self.sessions.discard(session)
            session.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 1.0)
            writer.cancel()
        return ws

    async def close(self) -> None:
        """Close every connection (code 1001)."""
        for session in list(self.sessions):
            await session.ws.close(code=1001, message=b"server shutdown")

    # ------------------------------------------------------------ requests
    def _malformed(self, session: _Session, msg: str) -> None:
        self.malformed += 1
        session.send({"id": None, "status": 400, "error": {"code": -1135, "msg": msg}})

    def _request(self, session: _Session, text: str) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._malformed(session, "Invalid JSON Request")
            return
        if not isinstance(request, dict) or not isinstance(request.get("params", {}), dict):
            self._malformed(session, "Invalid JSON Request")
            return
        request_id = request.get("id")
        method = request.get("method")
        params = {k: _text(v) for k, v in (request.get("params") or {}).items() if v is not None}
        now = self._now()
        weight, orders_for, fault = 1, None, None
        try:
            if not isinstance(method, str) or not method:
                raise BinanceAPIError(-1102, "Mandatory parameter 'method' was not sent, was empty/null, or "
                                             "malformed.")
            name = _SIGNED.get(method)
            if name is not None:
                weight = TradingApi.weight(name, params)
                key = self._authenticate(session, params, now)
                call = {k: v for k, v in params.items() if k not in ("apiKey", "signature")}
                outcome = self._trading.run(name, key.account, call, now, via="ws-api", target=method)
                fault = outcome.fault
                if outcome.status != 200:
                    raise _Answered(outcome.status, outcome.body)
                result = outcome.body
                if name in TradingApi.FREE_WHEN_DONE:
                    weight = 0  # successful order placement and cancels weigh nothing (2026-03-27)
                if name in TradingApi.PLACING:
                    orders_for = key.account
            else:
                result = self._session_method(session, method, params, now)
        except BinanceAPIError as exc:
            answer: dict[str, Any] = {"id": request_id, "status": exc.status,
                                      "error": {"code": exc.code, "msg": exc.msg}}
        except _Answered as exc:
            answer = {"id": request_id, "status": exc.status, "error": exc.body}
        else:
            answer = {"id": request_id, "status": 200, "result": result}
        used = self._weights.add(session.ip, weight)
        if session.rate_limits:
            limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                       "limit": self._weight_limit, "count": used}]
            if orders_for is not None:
                limits += self._accounts.order_count.report(orders_for)
            answer["rateLimits"] = limits
        if fault is not None and fault.kind == "rate_limit":
            answer["error"]["data"] = {"retryAfter": fault.retry_after}
        if fault is not None and fault.kind == "drop_after":
            return  # carried out, never answered
        if fault is not None and fault.kind == "timeout_after":
            asyncio.get_running_loop().call_later(fault.delay, session.send, answer)
            return
        session.send(answer)

    def _authenticate(self, session: _Session, params: dict[str, str], now: int) -> ApiKey:
        """A signed method's key (module doc). Raises BinanceAPIError -2014/-2015/-1022/-1102/-1021."""
        api_key = params.get("apiKey")
        signature = params.get("signature")
        server_time = self._trading.server_time()
        if signature is None and session.key is not None and api_key in (None, session.key.api_key):
            check_timing(params, server_time, self._trading.timing_scale)
            return session.key
        if not api_key:
            raise BinanceAPIError(-1102, "Mandatory parameter 'apiKey' was not sent, was empty/null, or malformed.")
        key = self._accounts.keys.get(api_key)
        if key is None:
            raise BinanceAPIError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        if not signature:
            raise BinanceAPIError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        signed = sorted((k, v) for k, v in params.items() if k != "signature")
        payloads = ("&".join(f"{k}={v}" for k, v in signed), urlencode(signed))
        if not any(key.verify(payload, signature) for payload in payloads):
            raise BinanceAPIError(-1022, "Signature for this request is not valid.")
        check_timing(params, server_time, self._trading.timing_scale)
        return key

    def _session_method(self, session: _Session, method: str, params: dict[str, str], now: int) -> object:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self._trading.server_time()}
        if method == "session.logon":
            key = self._authenticate(session, params, now)
            if key.public_key is None:
                # web-socket-api.md: "Only Ed25519 keys are supported"; -1002 UNAUTHORIZED (errors.md)
                raise BinanceAPIError(-1002, "You are not authorized to execute this request.", status=401)
            session.key, session.authorized = key, now
            return self._status(session, now)
        if method == "session.status":
            return self._status(session, now)
        if method == "session.logout":
            for subscription_id, subscription in list(session.subscriptions.items()):
                if subscription.via_logon:
                    session.end(subscription_id, now)
            session.key, session.authorized = None, None
            return self._status(session, now)
        if method == "userDataStream.subscribe":
            if session.key is None:
                raise BinanceAPIError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
            return self._subscribe(session, session.key.account, via_logon=True)
        if method == "userDataStream.subscribe.signature":
            key = self._authenticate(session, params, now)
            return self._subscribe(session, key.account, via_logon=False)
        if method == "userDataStream.unsubscribe":
            if "subscriptionId" in params:  # one subscription; one that already ended is a no-op
                try:
                    chosen = [int(params["subscriptionId"])]
                except ValueError:
                    raise BinanceAPIError(-1130, "Data sent for parameter 'subscriptionId' is not valid.") from None
            else:
                chosen = list(session.subscriptions)
            for subscription_id in chosen:
                if subscription_id in session.subscriptions:
                    session.subscriptions.pop(subscription_id).unsubscribe()
            return {}
        raise BinanceAPIError(-1020, f"Unsupported method '{method}'.")

    def _subscribe(self, session: _Session, account: str, *, via_logon: bool) -> dict[str, int]:
        subscription_id = session.next_subscription
        session.next_subscription += 1
        def deliver(event: dict[str, Any]) -> None:
            message = {"subscriptionId": subscription_id, "event": event}
            delay = self._accounts.faults.event_delay
            if delay > 0:  # the event_delay fault: held, in order
                asyncio.get_running_loop().call_later(delay, session.send, message)
            else:
                session.send(message)

        unsubscribe = self._accounts.subscribe(account, deliver)
        session.subscriptions[subscription_id] = _Subscription(account, unsubscribe, via_logon)
        return {"subscriptionId": subscription_id}

    def _status(self, session: _Session, now: int) -> dict[str, Any]:
        return {"apiKey": session.key.api_key if session.key else None, "authorizedSince": session.authorized,
                "connectedSince": session.connected, "returnRateLimits": session.rate_limits, "serverTime": now,
                "userDataStream": bool(session.subscriptions)}

    def _subscribed(self, account: str) -> list[tuple[_Session, int]]:
        return [(session, i) for session in self.sessions for i, sub in session.subscriptions.items()
                if sub.account == account]

    def terminate(self, account: str) -> int:
        """End every subscription to ``account``'s events with ``eventStreamTerminated`` (a fault
        a test injects); the connections stay open. Returns how many ended."""
        now = self._now()
        ended = self._subscribed(account)
        for session, subscription_id in ended:
            session.end(subscription_id, now)
        return len(ended)

    def drop(self, account: str) -> int:
        """Cut every connection subscribed to ``account``'s events without a close frame or an
        event (a fault a test injects). Returns how many connections were cut."""
        cut = {session for session, _ in self._subscribed(account)}
        for session in cut:
            for subscription in session.subscriptions.values():
                subscription.unsubscribe()
            session.subscriptions.clear()
            if session.transport is not None:
                session.transport.abort()
        return len(cut)
