"""User data stream events as a pure function of an account's change (Binance spot API docs,
``user-data-stream.md``: "Order Update", "Account Update", "Balance Update", "Event Stream
Terminated").

:func:`account_events` compares an account's book before and after one action (a new order
or list, a cancel, a price update) and returns the events Binance would send, in this order:

1. ``executionReport`` NEW for every order placed (order id order);
2. for orders that were already open (a prevented match first): ``CANCELED`` (``c`` the cancel's own client id, ``C``
   the order's), ``EXPIRED`` (the other leg of a list, an unaffordable stop) and
   ``TRADE_PREVENTION`` (status ``EXPIRED_IN_MATCH``, with ``v`` the prevented match id);
3. ``TRADE`` for every fill, in trade id order;
4. a new order that ended without a fill: ``EXPIRED`` (IOC/FOK) or ``TRADE_PREVENTION``;
5. ``listStatus`` for every order list placed or changed;
6. ``outboundAccountPosition`` with the assets whose free or locked balance changed.

Times are the replay clock in ms; quantities and prices are 8-decimal strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ._book import Book, Order, OrderList, Trade
from ._wire import n

__all__ = ["account_events", "balance_update", "execution_report", "stream_terminated"]

_ZERO = Decimal(0)


def execution_report(order: Order, now: int, execution: str, *, trade: Trade | None = None,
                     client_order_id: str | None = None, executed: Decimal | None = None,
                     quote: Decimal | None = None) -> dict[str, Any]:
    """One ``executionReport``: ``execution`` is ``x`` (NEW, CANCELED, EXPIRED, TRADE,
    TRADE_PREVENTION); ``client_order_id`` the cancel's own id on a cancel (the order's is
    then in ``C``); ``executed``/``quote`` the cumulative filled base and quote quantity."""
    canceled = execution == "CANCELED"
    status = order.status if execution != "NEW" else "NEW"
    cumulative = order.executed_qty if executed is None else executed
    cumulative_quote = order.cummulative_quote_qty if quote is None else quote
    report: dict[str, Any] = {
        "e": "executionReport", "E": now, "s": order.symbol,
        "c": client_order_id if canceled and client_order_id else order.client_order_id,
        "S": order.side, "o": order.type, "f": order.time_in_force or "GTC", "q": n(order.orig_qty),
        "p": n(order.price), "P": n(order.stop_price), "F": n(_ZERO), "g": order.order_list_id,
        "C": order.client_order_id if canceled else "", "x": execution, "X": status, "r": "NONE",
        "i": order.order_id, "l": n(trade.qty if trade else _ZERO), "z": n(cumulative),
        "L": n(trade.price if trade else _ZERO), "n": n(trade.commission if trade else _ZERO),
        "N": trade.commission_asset if trade else None, "T": trade.time if trade else now,
        "t": trade.trade_id if trade else -1, "I": order.order_id * 2 + (trade is not None),
        "w": order.is_open and order.working_time >= 0,  # on the book (a stop once triggered)
        "m": trade.is_maker if trade else False, "M": False, "O": order.time, "Z": n(cumulative_quote),
        "Y": n(trade.quote_qty if trade else _ZERO), "Q": n(_ZERO), "W": order.working_time,
        "V": order.stp_mode,
    }  # fmt: skip
    if execution == "TRADE_PREVENTION" and order.prevented_match_id is not None:
        report["v"] = order.prevented_match_id
        report["A"] = n(order.prevented_quantity)
        report["B"] = n(_ZERO)
        report["u"] = 1  # Binance's tradeGroupId: one per account here
    return report


def _list_status(order_list: OrderList, orders: Iterable[Order], now: int) -> dict[str, Any]:
    return {"e": "listStatus", "E": now, "s": order_list.symbol, "g": order_list.list_id,
            "c": order_list.contingency, "l": order_list.status_type, "L": order_list.status, "r": "NONE",
            "C": order_list.list_client_order_id, "T": order_list.transaction_time,
            "O": [{"s": o.symbol, "i": o.order_id, "c": o.client_order_id} for o in orders]}


def _ending(order: Order) -> str:
    return "TRADE_PREVENTION" if order.status == "EXPIRED_IN_MATCH" else order.status


def account_events(before: Book, after: Book, trades: Iterable[Trade], now: int, *,
                   cancel_client_id: str | None = None) -> list[dict[str, Any]]:
    """The events of one change of an account (module doc); ``cancel_client_id`` the cancel
    request's ``newClientOrderId`` (or the one generated for it)."""
    trades = sorted(trades, key=lambda t: t.trade_id)
    new = [o for i, o in sorted(after.orders.items()) if i not in before.orders]
    changed = [o for i, o in sorted(after.orders.items()) if i in before.orders and before.orders[i] != o]
    traded = {t.order_id for t in trades}
    events: list[dict[str, Any]] = [execution_report(o, now, "NEW", executed=_ZERO, quote=_ZERO) for o in new]
    for order in sorted(changed, key=lambda o: o.status != "EXPIRED_IN_MATCH"):  # a prevented match, then its list
        if order.order_id not in traded and not order.is_open:
            events.append(execution_report(order, now, _ending(order), client_order_id=cancel_client_id))
    by_id = after.orders
    for trade in trades:  # whole fills: one trade per order
        events.append(execution_report(by_id[trade.order_id], now, "TRADE", trade=trade))
    for order in new:
        if order.order_id not in traded and not order.is_open:
            events.append(execution_report(order, now, _ending(order)))
    for list_id, order_list in sorted(after.lists.items()):
        if before.lists.get(list_id) != order_list:
            events.append(_list_status(order_list, [after.orders[i] for i in order_list.order_ids], now))
    moved = {a: b for a, b in after.balances.items() if before.balances.get(a) != b}
    if moved:
        events.append({"e": "outboundAccountPosition", "E": now, "u": now,
                       "B": [{"a": a, "f": n(f), "l": n(lk)} for a, (f, lk) in sorted(moved.items())]})
    return events


def balance_update(asset: str, delta: Decimal, now: int) -> dict[str, Any]:
    """``balanceUpdate`` (a deposit or withdrawal of ``delta``)."""
    return {"e": "balanceUpdate", "E": now, "a": asset, "d": n(delta), "T": now}


def stream_terminated(now: int) -> dict[str, Any]:
    """``eventStreamTerminated``: the subscription ended (a logout, or a fault)."""
    return {"e": "eventStreamTerminated", "E": now}
