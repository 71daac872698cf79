"""The simulated spot account's state: orders, fills, order lists and balances, as frozen values
(Binance spot API docs, ``rest-api.md`` "Query order", "Account trade list", "Query Order list").
The functions that change it are :mod:`._matching` and :mod:`._order_lists`.

Amounts are ``Decimal``: prices in the quote asset, quantities in the base asset, times in ms
since the Unix epoch (UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = [
    "ORDER_TYPES", "STOPS", "STP_MODES", "Book", "Fees", "NewOrder", "Order", "OrderList", "Placed", "Trade",
]  # fmt: skip

ORDER_TYPES = frozenset({"MARKET", "LIMIT", "LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                         "TAKE_PROFIT_LIMIT"})
STOPS = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
STP_MODES = frozenset({"NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"})
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Fees:
    """Commission rates (fractions: 0.001 is 0.1 %)."""

    maker: Decimal = Decimal("0.001")
    taker: Decimal = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A new order's parameters as Binance names them (``quantity`` or, for a MARKET,
    ``quote_order_qty``; ``price`` for limit types; ``stop_price`` for stop types)."""

    symbol: str
    side: str
    type: str
    client_order_id: str
    quantity: Decimal | None = None
    quote_order_qty: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None
    stp_mode: str | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """An order as ``GET /api/v3/order`` shows it (``status``: NEW, FILLED, CANCELED, EXPIRED,
    EXPIRED_IN_MATCH)."""

    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str | None
    price: Decimal
    orig_qty: Decimal
    stop_price: Decimal
    status: str
    time: int
    update_time: int
    executed_qty: Decimal = _ZERO
    cummulative_quote_qty: Decimal = _ZERO
    triggered: bool = False
    locked_asset: str = ""
    locked: Decimal = _ZERO
    working_time: int = -1
    stp_mode: str = "NONE"
    order_list_id: int = -1
    prevented_match_id: int | None = None
    prevented_quantity: Decimal = _ZERO

    @property
    def in_book(self) -> bool:
        """Open and resting at its limit price (not an untriggered stop)."""
        return self.is_open and (self.type in ("LIMIT", "LIMIT_MAKER") or (self.type in STOPS and self.triggered
                                                                           and self.type.endswith("_LIMIT")))

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class Trade:
    """One fill (``GET /api/v3/myTrades``); ``commission`` in ``commission_asset``."""

    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_maker: bool


@dataclass(frozen=True, slots=True)
class OrderList:
    """An OCO order list (``GET /api/v3/orderList``): ``status`` EXECUTING or ALL_DONE (Binance's
    ``listOrderStatus``; ``listStatusType`` is EXEC_STARTED or ALL_DONE with it), its legs' order ids
    in placement order. The first leg holds the funds the list locks."""

    list_id: int
    list_client_order_id: str
    symbol: str
    order_ids: tuple[int, ...]
    transaction_time: int
    status: str = "EXECUTING"
    contingency: str = "OCO"

    @property
    def status_type(self) -> str:
        return "EXEC_STARTED" if self.status == "EXECUTING" else "ALL_DONE"


@dataclass(frozen=True, slots=True)
class Book:
    """One account: balances (asset -> (free, locked)), its orders and order lists by id, id counters."""

    balances: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    orders: Mapping[int, Order] = field(default_factory=dict)
    next_order_id: int = 1
    next_trade_id: int = 1
    next_prevented_match_id: int = 1
    lists: Mapping[int, OrderList] = field(default_factory=dict)
    next_order_list_id: int = 1

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, (_ZERO, _ZERO))[0]

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]


@dataclass(frozen=True, slots=True)
class Placed:
    """The book after an order, the order as it stands, the fills it made and the account's
    resting orders self-trade prevention expired."""

    book: Book
    order: Order
    trades: tuple[Trade, ...] = ()
    expired: tuple[Order, ...] = ()
