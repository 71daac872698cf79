"""SIGNED order list endpoints under ``/api/v3`` (Binance spot API docs, ``rest-api.md`` "New Order
list - OCO", "New OCO - Deprecated", "Cancel Order list", "Query Order list", "Query all Order
lists", "Query Open Order lists"): ``POST /orderList/oco``, ``POST /order/oco`` (the deprecated
form older clients still send), ``DELETE /orderList``, ``GET /orderList``, ``GET /allOrderList``,
``GET /openOrderList``. The handlers take (account, parameters, replay time in ms) and are
served, authenticated and weighed by :class:`~._trading_api.TradingApi`; the lists themselves
are :mod:`._order_lists`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._accounts import Accounts
from ._errors import BinanceAPIError
from ._book import Order
from ._order_lists import Leg, NewOco, PlacedList
from ._params import decimal_param
from ._wire import cancel_json, generated_id, list_json, order_result, response_type

__all__ = ["OrderListApi"]


def _mandatory(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise BinanceAPIError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


class OrderListApi:
    """The order list handlers; ``symbol`` checks a ``symbol`` parameter (-1102 / -1121)."""

    def __init__(self, accounts: Accounts, symbol: Callable[[dict[str, str]], str]) -> None:
        self._accounts = accounts
        self._symbol = symbol

    def _leg(self, params: dict[str, str], prefix: str) -> Leg:
        return Leg(_mandatory(params, f"{prefix}Type"), params.get(f"{prefix}ClientOrderId") or generated_id(),
                   price=decimal_param(params, f"{prefix}Price"), stop_price=decimal_param(params, f"{prefix}StopPrice"),
                   time_in_force=params.get(f"{prefix}TimeInForce") or None)

    def _placed(self, account: str, oco: NewOco, params: dict[str, str], now: int) -> dict[str, Any]:
        kind = response_type(params, "FULL")
        placed = self._accounts.place_list(account, oco, now)
        return list_json(placed.order_list, placed.orders, [order_result(o, now, kind) for o in placed.orders])

    def new_oco(self, account: str, params: dict[str, str], now: int) -> object:
        """``POST /api/v3/orderList/oco``: ``aboveType``/``belowType`` legs (module doc of ``_order_lists``)."""
        oco = NewOco(self._symbol(params), _mandatory(params, "side"), _quantity(params),
                     params.get("listClientOrderId") or generated_id(), self._leg(params, "above"),
                     self._leg(params, "below"), stp_mode=params.get("selfTradePreventionMode") or None)
        return self._placed(account, oco, params, now)

    def new_oco_legacy(self, account: str, params: dict[str, str], now: int) -> object:
        """``POST /api/v3/order/oco`` (deprecated): a ``LIMIT_MAKER`` at ``price`` and a ``STOP_LOSS`` at
        ``stopPrice`` (``STOP_LOSS_LIMIT`` at ``stopLimitPrice`` when sent); a SELL's limit leg is above."""
        side = _mandatory(params, "side")
        _mandatory(params, "price")
        _mandatory(params, "stopPrice")
        stop_limit = decimal_param(params, "stopLimitPrice")
        limit = Leg("LIMIT_MAKER", params.get("limitClientOrderId") or generated_id(),
                    price=decimal_param(params, "price"))
        stop = Leg("STOP_LOSS_LIMIT" if stop_limit is not None else "STOP_LOSS",
                   params.get("stopClientOrderId") or generated_id(), price=stop_limit,
                   stop_price=decimal_param(params, "stopPrice"),
                   time_in_force=params.get("stopLimitTimeInForce") or None)
        above, below = (limit, stop) if side == "SELL" else (stop, limit)
        oco = NewOco(self._symbol(params), side, _quantity(params), params.get("listClientOrderId") or generated_id(),
                     above, below, stp_mode=params.get("selfTradePreventionMode") or None)
        return self._placed(account, oco, params, now)

    def _find(self, account: str, params: dict[str, str], by_client_id: str) -> int:
        book = self._accounts.books[account]
        if params.get("orderListId"):
            try:
                list_id = int(params["orderListId"])
            except ValueError:
                raise BinanceAPIError(-1100, "Illegal characters found in parameter 'orderListId'; legal range is "
                                             "'^[0-9]{1,20}$'.") from None
            if list_id in book.lists:
                return list_id
        elif params.get(by_client_id):
            found = [ol.list_id for ol in book.lists.values() if ol.list_client_order_id == params[by_client_id]]
            if found:
                return max(found)
        else:
            raise BinanceAPIError(-1102, f"Param '{by_client_id}' or 'orderListId' must be sent, but both were "
                                         "empty/null!")
        raise BinanceAPIError(-2013, "Order list does not exist.")

    def _view(self, account: str, list_id: int) -> tuple[Any, list[Order]]:
        book = self._accounts.books[account]
        order_list = book.lists[list_id]
        return order_list, [book.orders[i] for i in order_list.order_ids]

    def cancel_list(self, account: str, params: dict[str, str], now: int) -> object:
        """``DELETE /api/v3/orderList`` (``orderListId`` or ``listClientOrderId``): every leg CANCELED."""
        symbol = self._symbol(params)
        self._accounts.cross_due(symbol, now)
        try:
            list_id = self._find(account, params, "listClientOrderId")
        except BinanceAPIError as exc:
            if exc.code == -2013:
                raise BinanceAPIError(-2011, "Order list does not exist.") from None
            raise
        if self._accounts.books[account].lists[list_id].symbol != symbol:
            raise BinanceAPIError(-2011, "Order list does not exist.")
        cancel_id = params.get("newClientOrderId") or generated_id()
        placed: PlacedList = self._accounts.cancel_list(account, list_id, now, cancel_id)
        return list_json(placed.order_list, placed.orders, [cancel_json(o, now, cancel_id) for o in placed.orders])

    def order_list(self, account: str, params: dict[str, str], now: int) -> object:
        """``GET /api/v3/orderList`` (``orderListId`` or ``origClientOrderId``, the list's client id)."""
        self._accounts.cross_all(now)
        return list_json(*self._view(account, self._find(account, params, "origClientOrderId")))

    def all_order_lists(self, account: str, params: dict[str, str], now: int) -> object:
        """``GET /api/v3/allOrderList``: every list, oldest first."""
        self._accounts.cross_all(now)
        return [list_json(*self._view(account, i)) for i in sorted(self._accounts.books[account].lists)]

    def open_order_lists(self, account: str, params: dict[str, str], now: int) -> object:
        """``GET /api/v3/openOrderList``: the executing lists."""
        self._accounts.cross_all(now)
        book = self._accounts.books[account]
        return [list_json(*self._view(account, i)) for i in sorted(book.lists) if book.lists[i].status == "EXECUTING"]


def _quantity(params: dict[str, str]) -> Any:
    _mandatory(params, "quantity")
    return decimal_param(params, "quantity")
