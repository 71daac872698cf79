"""OCO order lists as pure functions over (book, list, price) (Binance spot API docs, ``rest-api.md``
"New Order list - OCO" and ``errors.md``).

An OCO has an above and a below leg of the same side and quantity. A SELL's above leg is
``LIMIT_MAKER``, ``TAKE_PROFIT`` or ``TAKE_PROFIT_LIMIT`` and its below leg ``STOP_LOSS`` or
``STOP_LOSS_LIMIT``; a BUY's the other way round (else -1158 "Order type not supported in
OCO."). The prices must straddle the last price: the above leg's price (its stop price for a
stop type) above it, the below leg's below it (else -2010 "The relationship of the prices for
the orders is not correct."). Each leg is then checked as an order of its own (filters,
open-order caps, a stop that would trigger at once). The list locks once what its dearer leg
may spend (a SELL its quantity of the base asset; a BUY the higher leg price times the
quantity of the quote asset), held by the first leg placed: the stop-loss leg, then the
other (Binance's order of ``orderReports``).

While the list executes, a leg that triggers or fills ends it: the other leg is ``EXPIRED``
and its lock goes to the working leg; cancelling a leg, or the list, cancels both. A
``listClientOrderId`` equal to an executing list's is rejected (-2010 "Duplicate order sent.").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from ._errors import BinanceAPIError
from ._filters import SymbolSpec
from ._book import Book, Fees, NewOrder, Order, OrderList
from ._matching import cancel_order, place_leg

__all__ = ["Leg", "NewOco", "PlacedList", "cancel_list", "place_oco"]

_TAKE = frozenset({"LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
_STOP = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT"})


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg's parameters (``abovePrice``, ``aboveStopPrice``, ... as Binance names them)."""

    type: str
    client_order_id: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None


@dataclass(frozen=True, slots=True)
class NewOco:
    """A new OCO list: ``quantity`` in the base asset for both legs."""

    symbol: str
    side: str
    quantity: Decimal
    list_client_order_id: str
    above: Leg
    below: Leg
    stp_mode: str | None = None


@dataclass(frozen=True, slots=True)
class PlacedList:
    """The book after a list change, the list and its legs (placement order)."""

    book: Book
    order_list: OrderList
    orders: tuple[Order, ...]


def _trigger(leg: Leg) -> Decimal | None:
    return leg.price if leg.type == "LIMIT_MAKER" else leg.stop_price


def place_oco(book: Book, oco: NewOco, spec: SymbolSpec, fees: Fees, *, last: Decimal, avg_price: Decimal,
              now_ms: int) -> PlacedList:
    """Place an OCO list at the last price ``last`` (module doc); nothing changes when it is rejected.

    Raises:
        BinanceAPIError: -1158 a leg type the side does not take, -2010 OCO not allowed for
            the symbol, prices that do not straddle ``last``, a duplicate list or order client
            id, insufficient balance, and what :func:`~._matching.place_order` raises per leg.
    """
    if not spec.oco_allowed:
        raise BinanceAPIError(-2010, "OCO orders are not supported for this symbol")
    above_types, below_types = (_TAKE, _STOP) if oco.side == "SELL" else (_STOP, _TAKE)
    if oco.side not in ("BUY", "SELL"):
        raise BinanceAPIError(-1100, "Illegal characters found in parameter 'side'; legal range is 'BUY|SELL'.")
    if oco.above.type not in above_types or oco.below.type not in below_types:
        raise BinanceAPIError(-1158, "Order type not supported in OCO.")
    up, down = _trigger(oco.above), _trigger(oco.below)
    if up is None or down is None:
        missing = "abovePrice" if oco.above.type == "LIMIT_MAKER" and up is None else \
            "aboveStopPrice" if up is None else "belowPrice" if oco.below.type == "LIMIT_MAKER" else "belowStopPrice"
        raise BinanceAPIError(-1102, f"Mandatory parameter '{missing}' was not sent, was empty/null, or malformed.")
    if not down < last < up:
        raise BinanceAPIError(-2010, "The relationship of the prices for the orders is not correct.")
    if any(ol.status == "EXECUTING" and ol.list_client_order_id == oco.list_client_order_id
           for ol in book.lists.values()):
        raise BinanceAPIError(-2010, "Duplicate order sent.")
    if oco.above.client_order_id == oco.below.client_order_id:
        raise BinanceAPIError(-2010, "Duplicate order sent.")
    legs = (oco.below, oco.above) if oco.below.type in _STOP else (oco.above, oco.below)
    if oco.side == "BUY":
        dearest = max((leg.price if leg.price is not None else leg.stop_price) for leg in legs)  # type: ignore[type-var]
        lock = dearest * oco.quantity
    else:
        lock = oco.quantity
    list_id = book.next_order_list_id
    current = book
    placed: list[Order] = []
    for n, leg in enumerate(legs):
        order = NewOrder(oco.symbol, oco.side, leg.type, leg.client_order_id, quantity=oco.quantity, price=leg.price,
                         stop_price=leg.stop_price, time_in_force=leg.time_in_force, stp_mode=oco.stp_mode)
        result = place_leg(current, order, spec, fees, last=last, avg_price=avg_price, now_ms=now_ms,
                           order_list_id=list_id, lock=lock if n == 0 else Decimal(0))
        current = result.book
        placed.append(result.order)
    order_list = OrderList(list_id, oco.list_client_order_id, oco.symbol, tuple(o.order_id for o in placed), now_ms)
    current = replace(current, lists={**current.lists, list_id: order_list}, next_order_list_id=list_id + 1)
    return PlacedList(current, order_list, tuple(placed))


def cancel_list(book: Book, list_id: int, now_ms: int) -> PlacedList:
    """Cancel an executing order list: every open leg CANCELED, its locks released.

    Raises:
        BinanceAPIError: -2011 "Order list does not exist." when unknown, -2011 "Unknown order
            sent." when it is no longer executing.
    """
    order_list = book.lists.get(list_id)
    if order_list is None:
        raise BinanceAPIError(-2011, "Order list does not exist.")
    open_legs = [i for i in order_list.order_ids if book.orders[i].is_open]
    if order_list.status != "EXECUTING" or not open_legs:
        raise BinanceAPIError(-2011, "Unknown order sent.")
    book, _ = cancel_order(book, open_legs[0], now_ms)
    return PlacedList(book, book.lists[list_id], tuple(book.orders[i] for i in order_list.order_ids))
