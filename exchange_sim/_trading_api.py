"""SIGNED trading endpoints under ``/api/v3`` (Binance spot API docs, ``rest-api.md``
"Trading endpoints" and "Account endpoints"): ``POST/GET/DELETE /order``,
``POST /order/test``, ``GET /openOrders``, ``GET /allOrders``, ``GET /myTrades``,
``GET /account``. Every request is authenticated (``_signing``); parameters come from
the query string and the form body. Orders go to the matching engine (``_matching``)
through :class:`~._accounts.Accounts`. Numbers are printed as Binance prints them
(8 decimals). ``newOrderRespType`` ACK/RESULT/FULL (MARKET and LIMIT default to FULL,
other types to ACK).

Rate limits: every response carries ``X-MBX-USED-WEIGHT-1M`` from the counter the market
data endpoints share (per client IP and wall-clock minute; weights from the docs: order
placement and cancel 1 (0 when successful, as since 2026-03-27), query order 4, open
orders 6 for a symbol and 80 for all, all orders, my trades and account 20, the unfilled
order count 40). A placed order answers ``X-MBX-ORDER-COUNT-10S`` and ``-1D``, the
account's unfilled order count (:mod:`._order_count`; HTTP 429 -1015 over a limit);
``GET /api/v3/rateLimit/order`` reports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import zlib

import orjson
from aiohttp import web

from ._accounts import Accounts
from ._errors import BinanceAPIError
from ._faults import Fault
from ._book import NewOrder, Order
from ._order_list_api import OrderListApi
from ._params import decimal_param
from ._wire import cancel_json, generated_id, n, order_json, order_result, response_type, trade_json
from ._signing import authenticate

__all__ = ["TradingApi"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A trading request's answer: HTTP status, body (result or error), the fault that hit it, headers."""

    status: int
    body: Any
    fault: Fault | None
    headers: dict[str, str]


class CancelReplaceFailed(BinanceAPIError):
    """-2021 (one half failed) or -2022 (the cancel failed, nothing placed), with both halves in ``data``."""

    def __init__(self, code: int, msg: str, data: dict[str, Any]) -> None:
        super().__init__(code, msg)
        self.data = data


class TradingApi:
    """The aiohttp handlers of the trading endpoints.

    Args:
        weights: the REST API's per-IP weight counter (``WeightCounter``), shared.
    """

    WEIGHTS = {"cancel_replace": 1, "new_order": 1, "test_order": 1, "query_order": 4, "cancel": 1, "all_orders": 20,
                "my_trades": 20, "account": 20, "rate_limit_order": 40, "order_list": 4, "all_order_lists": 20,
                "open_order_lists": 6}
    PLACING = frozenset({"new_order", "cancel_replace", "new_oco", "new_oco_legacy"})
    FREE_WHEN_DONE = frozenset({"new_order", "cancel", "new_oco", "new_oco_legacy", "cancel_list"})

    def __init__(self, accounts: Accounts, now_ms: Callable[[], int], symbols: set[str], weights: Any,
                 timing_scale: float = 1.0) -> None:
        self._accounts = accounts
        self.timing_scale = timing_scale  # replay ms per wall ms: the signed-request tolerances scale with it
        self._now = now_ms
        self._symbols = symbols
        self._weights = weights
        self.lists = OrderListApi(accounts, self._symbol)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v3/order", self._wrap(self.new_order)),
            web.post("/api/v3/order/test", self._wrap(self.test_order)),
            web.post("/api/v3/order/cancelReplace", self._wrap(self.cancel_replace)),
            web.get("/api/v3/order", self._wrap(self.query_order)),
            web.delete("/api/v3/order", self._wrap(self.cancel)),
            web.get("/api/v3/openOrders", self._wrap(self.open_orders)),
            web.get("/api/v3/allOrders", self._wrap(self.all_orders)),
            web.get("/api/v3/myTrades", self._wrap(self.my_trades)),
            web.get("/api/v3/account", self._wrap(self.account)),
            web.get("/api/v3/rateLimit/order", self._wrap(self.rate_limit_order)),
            web.post("/api/v3/orderList/oco", self._wrap(self.lists.new_oco)),
            web.post("/api/v3/order/oco", self._wrap(self.lists.new_oco_legacy)),
            web.delete("/api/v3/orderList", self._wrap(self.lists.cancel_list)),
            web.get("/api/v3/orderList", self._wrap(self.lists.order_list)),
            web.get("/api/v3/allOrderList", self._wrap(self.lists.all_order_lists)),
            web.get("/api/v3/openOrderList", self._wrap(self.lists.open_order_lists)),
            web.route("*", "/api/v3/userDataStream", self.listen_key_retired),
        ]

    @classmethod
    def weight(cls, name: str, params: dict[str, str]) -> int:
        """The request weight of handler ``name`` (module doc; open orders: 6 for a symbol, 80 for all)."""
        if name == "open_orders":
            return 6 if params.get("symbol") else 80
        return cls.WEIGHTS.get(name, 1)

    def run(self, name: str, account: str, params: dict[str, str], now: int, *, via: str, target: str
            ) -> Outcome:
        """Carry out one authenticated trading request under the faults in force (``_faults``) and
        log it: the handler ``name`` of this class or of :attr:`lists`, for ``account``, at replay
        time ``now``; ``target`` is what faults match (``"POST /api/v3/order"``, ``"order.place"``)."""
        fault = self._accounts.faults.take(target)
        status, body = 200, None
        if fault is not None and fault.kind in ("reject", "rate_limit"):
            status, body = fault.answer()
        else:
            handler = getattr(self, name, None) or getattr(self.lists, name)
            try:
                body = handler(account, params, now)
            except BinanceAPIError as exc:
                status, body = exc.status, {"code": exc.code, "msg": exc.msg}
                if isinstance(exc, CancelReplaceFailed):
                    body["data"] = exc.data
            if fault is not None and fault.kind == "error_after":
                status, body = fault.answer()
        logged = {k: v for k, v in params.items() if k != "signature"}
        self._accounts.log.append("request", now, account, {
            "via": via, "target": target, "method": name, "params": logged, "status": status,
            "code": body.get("code") if status != 200 and isinstance(body, dict) else None,
            "fault": fault.kind if fault is not None else None})
        headers: dict[str, str] = {}
        if name in self.PLACING and status == 200:
            headers = self._accounts.order_count.headers(account)
        if fault is not None and fault.kind == "rate_limit":
            headers["Retry-After"] = str(fault.retry_after)
        return Outcome(status, body, fault, headers)

    def server_time(self) -> int:
        """The replay clock plus the ``clock_offset_ms`` fault (wall ms, so ``timing_scale`` times as many
        replay ms): what the timing rule checks against."""
        return self._now() + int(self._accounts.faults.clock_offset_ms * self.timing_scale)

    def _wrap(self, handler: Callable[[str, dict[str, str], int], object]) -> Handler:
        name = handler.__name__

        async def handle(request: web.Request) -> web.StreamResponse:
            now = self._now()
            weight = self.WEIGHTS.get(name, 1)  # before the parameters are known
            outcome = None
            try:
                body = (await request.read()).decode() if request.can_read_body else ""
                key, params = authenticate(self._accounts.keys, request.headers.get("X-MBX-APIKEY"),
                                           request.rel_url.raw_query_string, body, self.server_time(),
                                           self.timing_scale)
            except BinanceAPIError as exc:
                status, answer, headers = exc.status, {"code": exc.code, "msg": exc.msg}, {}
            else:
                weight = self.weight(name, params)
                target = f"{request.method} {request.path}"
                outcome = self.run(name, key.account, params, now, via="rest", target=target)
                status, answer, headers = outcome.status, outcome.body, outcome.headers
                if status == 200 and name in self.FREE_WHEN_DONE:
                    weight = 0  # successful order placement and cancels weigh nothing (2026-03-27)
            used = self._weights.add(request.remote or "?", weight)
            headers = {**headers, "X-MBX-USED-WEIGHT": str(used), "X-MBX-USED-WEIGHT-1M": str(used)}
            if outcome is not None and outcome.fault is not None:
                if outcome.fault.kind == "timeout_after":
                    await asyncio.sleep(outcome.fault.delay)
                elif outcome.fault.kind == "drop_after" and request.transport is not None:
                    request.transport.abort()  # carried out, never answered
                    raise ConnectionResetError("fault: drop_after")
            return web.Response(body=orjson.dumps(answer), status=status, content_type="application/json",
                                headers=headers)

        return handle

    def _symbol(self, params: dict[str, str]) -> str:
        symbol = params.get("symbol", "")
        if not symbol:
            raise BinanceAPIError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if symbol not in self._symbols:
            raise BinanceAPIError(-1121, "Invalid symbol.")
        return symbol

    def _new_order(self, params: dict[str, str], now: int) -> NewOrder:
        symbol = self._symbol(params)
        for name in ("side", "type"):
            if not params.get(name):
                raise BinanceAPIError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return NewOrder(
            symbol, params["side"], params["type"], params.get("newClientOrderId") or generated_id(),
            quantity=decimal_param(params, "quantity"), quote_order_qty=decimal_param(params, "quoteOrderQty"),
            price=decimal_param(params, "price"), stop_price=decimal_param(params, "stopPrice"),
            time_in_force=params.get("timeInForce") or None, stp_mode=params.get("selfTradePreventionMode") or None,
        )  # fmt: skip

    # ------------------------------------------------------------ endpoints
    def new_order(self, account: str, params: dict[str, str], now: int) -> object:
        order = self._new_order(params, now)
        kind = response_type(params, "FULL" if order.type in ("MARKET", "LIMIT") else "ACK")
        placed = self._accounts.place(account, order, now)
        return order_result(placed.order, now, kind, placed.trades)

    def cancel_replace(self, account: str, params: dict[str, str], now: int) -> object:
        """``POST /api/v3/order/cancelReplace``: cancel one order, then place a new one.

        ``cancelReplaceMode`` STOP_ON_FAILURE (a failed cancel places nothing) or ALLOW_FAILURE
        (the new order is placed anyway). Both done: ``cancelResult``/``newOrderResult`` SUCCESS
        with both responses; otherwise -2022 "Order cancel-replace failed." (nothing placed) or
        -2021 "Order cancel-replace partially failed.", each half's error in ``data``.
        """
        self._accounts.order_count.check(account)  # counted as a new order, checked before the cancel
        mode = params.get("cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise BinanceAPIError(-1102, "Mandatory parameter 'cancelReplaceMode' was not sent, was empty/null, or "
                                         "malformed." if not mode else "Invalid cancelReplaceMode.")
        target = {k: v for k, v in params.items() if k not in ("orderId", "origClientOrderId", "newClientOrderId")}
        if params.get("cancelOrderId"):
            target["orderId"] = params["cancelOrderId"]
        if params.get("cancelOrigClientOrderId"):
            target["origClientOrderId"] = params["cancelOrigClientOrderId"]
        if params.get("cancelNewClientOrderId"):
            target["newClientOrderId"] = params["cancelNewClientOrderId"]
        cancel_result: dict[str, Any] | None = None
        try:
            cancel_response: Any = self.cancel(account, target, now)
            cancel_result = {"cancelResult": "SUCCESS", "cancelResponse": cancel_response}
        except BinanceAPIError as exc:
            cancel_result = {"cancelResult": "FAILURE", "cancelResponse": {"code": exc.code, "msg": exc.msg}}
            if mode == "STOP_ON_FAILURE":
                raise CancelReplaceFailed(-2022, "Order cancel-replace failed.", {
                    **cancel_result, "newOrderResult": "NOT_ATTEMPTED", "newOrderResponse": None}) from None
        try:
            new = self.new_order(account, params, now)
        except BinanceAPIError as exc:
            both = cancel_result["cancelResult"] == "FAILURE"
            raise CancelReplaceFailed(-2022 if both else -2021, "Order cancel-replace failed." if both else
                                      "Order cancel-replace partially failed.", {
                                          **cancel_result, "newOrderResult": "FAILURE",
                                          "newOrderResponse": {"code": exc.code, "msg": exc.msg}}) from None
        if cancel_result["cancelResult"] == "FAILURE":
            raise CancelReplaceFailed(-2021, "Order cancel-replace partially failed.", {
                **cancel_result, "newOrderResult": "SUCCESS", "newOrderResponse": new})
        return {**cancel_result, "newOrderResult": "SUCCESS", "newOrderResponse": new}

    def test_order(self, account: str, params: dict[str, str], now: int) -> object:
        """Validates like a new order and places nothing."""
        self._accounts.place(account, self._new_order(params, now), now, commit=False)
        return {}

    def _find(self, account: str, params: dict[str, str], now: int) -> Order:
        symbol = self._symbol(params)
        self._accounts.cross_due(symbol, now)
        book = self._accounts.books[account]
        if params.get("orderId"):
            try:
                order = book.orders.get(int(params["orderId"]))
            except ValueError:
                raise BinanceAPIError(-1100, "Illegal characters found in parameter 'orderId'; legal range is '^[0-9]{1,20}$'.")
        elif params.get("origClientOrderId"):
            matching = [o for o in book.orders.values() if o.client_order_id == params["origClientOrderId"]]
            order = max(matching, key=lambda o: o.order_id) if matching else None
        else:
            raise BinanceAPIError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if order is None or order.symbol != symbol:
            raise BinanceAPIError(-2013, "Order does not exist.")
        return order

    def query_order(self, account: str, params: dict[str, str], now: int) -> object:
        return order_json(self._find(account, params, now))

    def cancel(self, account: str, params: dict[str, str], now: int) -> object:
        try:
            order = self._find(account, params, now)
        except BinanceAPIError as exc:
            if exc.code == -2013:
                raise BinanceAPIError(-2011, "Unknown order sent.") from None
            raise
        cancel_id = params.get("newClientOrderId") or generated_id()
        done = self._accounts.cancel(account, order.order_id, now, cancel_id)
        return cancel_json(done, now, cancel_id)

    def open_orders(self, account: str, params: dict[str, str], now: int) -> object:
        symbol = self._symbol(params) if params.get("symbol") else None
        if symbol:
            self._accounts.cross_due(symbol, now)
        else:
            self._accounts.cross_all(now)
        return [order_json(o) for o in sorted(self._accounts.books[account].open_orders(symbol),
                                               key=lambda o: o.order_id)]

    def all_orders(self, account: str, params: dict[str, str], now: int) -> object:
        symbol = self._symbol(params)
        self._accounts.cross_due(symbol, now)
        orders = [o for o in self._accounts.books[account].orders.values() if o.symbol == symbol]
        return [order_json(o) for o in sorted(orders, key=lambda o: o.order_id)]

    def my_trades(self, account: str, params: dict[str, str], now: int) -> object:
        symbol = self._symbol(params)
        self._accounts.cross_due(symbol, now)
        from_id = int(params["fromId"]) if params.get("fromId", "").isdigit() else None
        order_id = int(params["orderId"]) if params.get("orderId", "").isdigit() else None
        trades = [t for t in self._accounts.trades[account] if t.symbol == symbol
                  and (from_id is None or t.trade_id >= from_id) and (order_id is None or t.order_id == order_id)]
        orders = self._accounts.books[account].orders
        return [trade_json(t, orders[t.order_id].order_list_id) for t in trades]

    def account(self, account: str, params: dict[str, str], now: int) -> object:
        self._accounts.cross_all(now)
        fees = self._accounts.fees
        return {
            "makerCommission": int(fees.maker * 10_000), "takerCommission": int(fees.taker * 10_000),
            "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": n(fees.maker), "taker": n(fees.taker), "buyer": n(Decimal(0)),
                                "seller": n(Decimal(0))},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now, "accountType": "SPOT",
            "balances": [{"asset": a, "free": n(f), "locked": n(lk)}
                         for a, (f, lk) in sorted(self._accounts.books[account].balances.items())],
            "permissions": ["SPOT"], "uid": zlib.crc32(account.encode()),
        }  # fmt: skip

    def rate_limit_order(self, account: str, params: dict[str, str], now: int) -> object:
        """``GET /api/v3/rateLimit/order``: the account's unfilled order count per ``ORDERS`` limit."""
        return self._accounts.order_count.report(account)

    async def listen_key_retired(self, request: web.Request) -> web.Response:
        """``/api/v3/userDataStream`` (listenKey streams): HTTP 410 Gone, as Binance answers since
        2026-02-20; the user data stream is on the WebSocket API (``_ws_api``)."""
        body = {"code": -1020, "msg": "The listenKey user data stream is retired; subscribe on the WebSocket API "
                                      "(userDataStream.subscribe.signature)."}
        return web.Response(body=orjson.dumps(body), status=410, content_type="application/json")
