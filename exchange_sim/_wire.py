"""Binance's JSON shapes of orders, fills and order lists (Binance spot API docs, ``rest-api.md``
"New order", "Query order", "Cancel order", "New Order list - OCO"), shared by the REST and the
WebSocket API. Numbers are strings with 8 decimals, as Binance prints them; times in ms since
the Unix epoch (UTC).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ._errors import BinanceAPIError
from ._book import Order, OrderList, Trade

__all__ = ["cancel_json", "fill_json", "generated_id", "list_json", "n", "order_json", "order_result",
           "response_type", "trade_json"]

_RESULT_FIELDS = ("price", "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status",
                  "timeInForce", "type", "side", "workingTime", "selfTradePreventionMode")


def n(value: Decimal) -> str:
    """A decimal as Binance prints it (8 decimals)."""
    return f"{value:.8f}"


def generated_id() -> str:
    """A client order id for a request that sent none (22 characters, as Binance's are)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def order_json(order: Order) -> dict[str, Any]:
    """``GET /api/v3/order``."""
    return {
        "symbol": order.symbol, "orderId": order.order_id, "orderListId": order.order_list_id,
        "clientOrderId": order.client_order_id, "price": n(order.price), "origQty": n(order.orig_qty),
        "executedQty": n(order.executed_qty), "cummulativeQuoteQty": n(order.cummulative_quote_qty),
        "status": order.status, "timeInForce": order.time_in_force or "GTC", "type": order.type, "side": order.side,
        "stopPrice": n(order.stop_price), "icebergQty": n(Decimal(0)), "time": order.time,
        "updateTime": order.update_time, "isWorking": order.working_time >= 0, "workingTime": order.working_time,
        "origQuoteOrderQty": n(Decimal(0)), "selfTradePreventionMode": order.stp_mode,
        **({"preventedMatchId": order.prevented_match_id, "preventedQuantity": n(order.prevented_quantity)}
           if order.prevented_match_id is not None else {}),
    }  # fmt: skip


def fill_json(trade: Trade) -> dict[str, Any]:
    """One entry of a FULL response's ``fills``."""
    return {"price": n(trade.price), "qty": n(trade.qty), "commission": n(trade.commission),
            "commissionAsset": trade.commission_asset, "tradeId": trade.trade_id}


def trade_json(trade: Trade, order_list_id: int) -> dict[str, Any]:
    """One entry of ``GET /api/v3/myTrades``."""
    return {"symbol": trade.symbol, "id": trade.trade_id, "orderId": trade.order_id, "orderListId": order_list_id,
            "price": n(trade.price), "qty": n(trade.qty), "quoteQty": n(trade.quote_qty),
            "commission": n(trade.commission), "commissionAsset": trade.commission_asset, "time": trade.time,
            "isBuyer": trade.side == "BUY", "isMaker": trade.is_maker, "isBestMatch": True}


def response_type(params: dict[str, str], default: str) -> str:
    """``newOrderRespType`` (ACK, RESULT or FULL). Raises BinanceAPIError -1100 for another value."""
    kind = params.get("newOrderRespType") or default
    if kind not in ("ACK", "RESULT", "FULL"):
        raise BinanceAPIError(-1100, "Illegal characters found in parameter 'newOrderRespType'; legal range is "
                                     "'ACK|RESULT|FULL'.")
    return kind


def order_result(order: Order, now: int, kind: str, trades: Iterable[Trade] = ()) -> dict[str, Any]:
    """A new order's response of ``newOrderRespType`` ``kind``."""
    body: dict[str, Any] = {"symbol": order.symbol, "orderId": order.order_id, "orderListId": order.order_list_id,
                            "clientOrderId": order.client_order_id, "transactTime": now}
    if kind == "ACK":
        return body
    full = order_json(order)
    body.update((name, full[name]) for name in _RESULT_FIELDS)
    if order.stop_price:
        body["stopPrice"] = full["stopPrice"]
    if order.prevented_match_id is not None:
        body["preventedMatchId"], body["preventedQuantity"] = full["preventedMatchId"], full["preventedQuantity"]
    if kind == "FULL":
        body["fills"] = [fill_json(t) for t in trades]
    return body


def cancel_json(order: Order, now: int, client_order_id: str) -> dict[str, Any]:
    """``DELETE /api/v3/order``: ``client_order_id`` is the cancel's own (``newClientOrderId``)."""
    full = order_json(order)
    return {"symbol": order.symbol, "origClientOrderId": order.client_order_id, "orderId": order.order_id,
            "orderListId": order.order_list_id, "clientOrderId": client_order_id, "transactTime": now,
            **{k: full[k] for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty", "status", "timeInForce",
                                    "type", "side", "selfTradePreventionMode")}}


def list_json(order_list: OrderList, orders: Iterable[Order], reports: list[dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """An order list (``GET /api/v3/orderList``); ``reports`` adds ``orderReports`` (new and cancel)."""
    body: dict[str, Any] = {
        "orderListId": order_list.list_id, "contingencyType": order_list.contingency,
        "listStatusType": order_list.status_type, "listOrderStatus": order_list.status,
        "listClientOrderId": order_list.list_client_order_id, "transactionTime": order_list.transaction_time,
        "symbol": order_list.symbol,
        "orders": [{"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id} for o in orders],
    }  # fmt: skip
    if reports is not None:
        body["orderReports"] = reports
    return body
