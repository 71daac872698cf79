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

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import base64
import uuid
import zlib

import orjson
from aiohttp import web

from ._accounts import Accounts
from ._errors import BinanceAPIError
from ._matching import NewOrder, Order, Trade
from ._params import decimal_param
from ._signing import authenticate

__all__ = ["TradingApi"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _n(value: Decimal) -> str:
    return f"{value:.8f}"


def _order_json(order: Order) -> dict[str, Any]:
    return {
        "symbol": order.symbol, "orderId": order.order_id, "orderListId": -1, "clientOrderId": order.client_order_id,
        "price": _n(order.price), "origQty": _n(order.orig_qty), "executedQty": _n(order.executed_qty),
        "cummulativeQuoteQty": _n(order.cummulative_quote_qty), "status": order.status,
        "timeInForce": order.time_in_force or "GTC", "type": order.type, "side": order.side,
        "stopPrice": _n(order.stop_price), "icebergQty": _n(Decimal(0)), "time": order.time,
        "updateTime": order.update_time, "isWorking": order.working_time >= 0,
        "workingTime": order.working_time, "origQuoteOrderQty": _n(Decimal(0)),
        "selfTradePreventionMode": order.stp_mode,
        **({"preventedMatchId": order.prevented_match_id, "preventedQuantity": _n(order.prevented_quantity)}
           if order.prevented_match_id is not None else {}),
    }  # fmt: skip


def _generated_id() -> str:
    """A client order id for a request that sent none (22 characters, as Binance's are)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _fill_json(trade: Trade) -> dict[str, Any]:
    return {"price": _n(trade.price), "qty": _n(trade.qty), "commission": _n(trade.commission),
            "commissionAsset": trade.commission_asset, "tradeId": trade.trade_id}


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

    _WEIGHTS = {"cancel_replace": 1, "new_order": 1, "test_order": 1, "query_order": 4, "cancel": 1, "all_orders": 20,
                "my_trades": 20, "account": 20, "rate_limit_order": 40}

    def __init__(self, accounts: Accounts, now_ms: Callable[[], int], symbols: set[str], weights: Any) -> None:
        self._accounts = accounts
        self._now = now_ms
        self._symbols = symbols
        self._weights = weights

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
        ]

    def _wrap(self, handler: Callable[[str, dict[str, str], int], object]) -> Handler:
        name = handler.__name__
        async def handle(request: web.Request) -> web.StreamResponse:
            now = self._now()
            headers: dict[str, str] = {}
            weight = self._WEIGHTS.get(name, 1)
            try:
                body = (await request.read()).decode() if request.can_read_body else ""
                key, params = authenticate(self._accounts.keys, request.headers.get("X-MBX-APIKEY"),
                                           request.rel_url.raw_query_string, body, now)
                if name == "open_orders":
                    weight = 6 if params.get("symbol") else 80
                result = handler(key.account, params, now)
                if name in ("new_order", "cancel_replace"):
                    headers = self._accounts.order_count.headers(key.account)
            except BinanceAPIError as exc:
                error: dict[str, Any] = {"code": exc.code, "msg": exc.msg}
                if isinstance(exc, CancelReplaceFailed):
                    error["data"] = exc.data
                response = web.Response(body=orjson.dumps(error), status=exc.status,
                                        content_type="application/json", headers=headers)
            else:
                if name in ("new_order", "cancel"):
                    weight = 0  # successful order placement and cancels weigh nothing (2026-03-27)
                response = web.Response(body=orjson.dumps(result), content_type="application/json", headers=headers)
            used = self._weights.add(request.remote or "?", weight)
            response.headers["X-MBX-USED-WEIGHT"] = response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
            return response

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
            symbol, params["side"], params["type"], params.get("newClientOrderId") or _generated_id(),
            quantity=decimal_param(params, "quantity"), quote_order_qty=decimal_param(params, "quoteOrderQty"),
            price=decimal_param(params, "price"), stop_price=decimal_param(params, "stopPrice"),
            time_in_force=params.get("timeInForce") or None, stp_mode=params.get("selfTradePreventionMode") or None,
        )  # fmt: skip

    # ------------------------------------------------------------ endpoints
    def new_order(self, account: str, params: dict[str, str], now: int) -> object:
        order = self._new_order(params, now)
        placed = self._accounts.place(account, order, now)
        default = "FULL" if order.type in ("MARKET", "LIMIT") else "ACK"
        kind = params.get("newOrderRespType") or default
        if kind not in ("ACK", "RESULT", "FULL"):
            raise BinanceAPIError(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
        o = placed.order
        body: dict[str, Any] = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1,
                                "clientOrderId": o.client_order_id, "transactTime": now}
        if kind == "ACK":
            return body
        full = _order_json(o)
        for name in ("price", "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status",
                     "timeInForce", "type", "side", "workingTime", "selfTradePreventionMode"):
            body[name] = full[name]
        if o.stop_price:
            body["stopPrice"] = full["stopPrice"]
        if kind == "FULL":
            body["fills"] = [_fill_json(t) for t in placed.trades]
        return body

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
        return _order_json(self._find(account, params, now))

    def cancel(self, account: str, params: dict[str, str], now: int) -> object:
        try:
            order = self._find(account, params, now)
        except BinanceAPIError as exc:
            if exc.code == -2013:
                raise BinanceAPIError(-2011, "Unknown order sent.") from None
            raise
        done = self._accounts.cancel(account, order.order_id, now)
        body = _order_json(done)
        return {"symbol": done.symbol, "origClientOrderId": done.client_order_id, "orderId": done.order_id,
                "orderListId": -1, "clientOrderId": params.get("newClientOrderId") or _generated_id(),
                "transactTime": now, **{k: body[k] for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty",
                                                             "status", "timeInForce", "type", "side",
                                                             "selfTradePreventionMode")}}

    def open_orders(self, account: str, params: dict[str, str], now: int) -> object:
        symbol = self._symbol(params) if params.get("symbol") else None
        if symbol:
            self._accounts.cross_due(symbol, now)
        else:
            self._accounts.cross_all(now)
        return [_order_json(o) for o in sorted(self._accounts.books[account].open_orders(symbol),
                                               key=lambda o: o.order_id)]

    def all_orders(self, account: str, params: dict[str, str], now: int) -> object:
        symbol = self._symbol(params)
        self._accounts.cross_due(symbol, now)
        orders = [o for o in self._accounts.books[account].orders.values() if o.symbol == symbol]
        return [_order_json(o) for o in sorted(orders, key=lambda o: o.order_id)]

    def my_trades(self, account: str, params: dict[str, str], now: int) -> object:
        symbol = self._symbol(params)
        self._accounts.cross_due(symbol, now)
        from_id = int(params["fromId"]) if params.get("fromId", "").isdigit() else None
        trades = [t for t in self._accounts.trades[account] if t.symbol == symbol
                  and (from_id is None or t.trade_id >= from_id)]
        return [{"symbol": t.symbol, "id": t.trade_id, "orderId": t.order_id, "orderListId": -1, "price": _n(t.price),
                 "qty": _n(t.qty), "quoteQty": _n(t.quote_qty), "commission": _n(t.commission),
                 "commissionAsset": t.commission_asset, "time": t.time, "isBuyer": t.side == "BUY",
                 "isMaker": t.is_maker, "isBestMatch": True} for t in trades]

    def account(self, account: str, params: dict[str, str], now: int) -> object:
        self._accounts.cross_all(now)
        fees = self._accounts.fees
        return {
            "makerCommission": int(fees.maker * 10_000), "takerCommission": int(fees.taker * 10_000),
            "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": _n(fees.maker), "taker": _n(fees.taker), "buyer": _n(Decimal(0)),
                                "seller": _n(Decimal(0))},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now, "accountType": "SPOT",
            "balances": [{"asset": a, "free": _n(f), "locked": _n(lk)}
                         for a, (f, lk) in sorted(self._accounts.books[account].balances.items())],
            "permissions": ["SPOT"], "uid": zlib.crc32(account.encode()),
        }  # fmt: skip

    def rate_limit_order(self, account: str, params: dict[str, str], now: int) -> object:
        """``GET /api/v3/rateLimit/order``: the account's unfilled order count per ``ORDERS`` limit."""
        return self._accounts.order_count.report(account)
