"""The simulator's trading accounts: API keys, one book per account, and the replayed prices
orders fill against.

Prices: the last price of a symbol is the close of its forming minute as the replay
stands (:func:`~._candles.partial_row`: open, first extreme, second extreme, close, by
thirds of the minute); :meth:`Accounts.cross_due` applies to the resting orders every
price the path reached since the previous call (the minutes and thirds in between),
so a wick through a level fills it. ``avgPrice`` is the mean close of the last 5
closed minutes (``GET /api/v3/avgPrice``), used by the NOTIONAL and PERCENT_PRICE_BY_SIDE
filters.

Each account's unfilled order count (:mod:`._order_count`) is kept here: a placed order
counts, its first fill (at once or when the replay reaches it) takes it off again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from ._candles import partial_row
from ._errors import BinanceAPIError
from ._history import MarketHistory
from ._book import Book, Fees, NewOrder, Order, Placed, Trade
from ._matching import cancel_order, cross_orders, place_order
from ._order_count import OrderLimit, UnfilledOrderCount
from ._order_lists import NewOco, PlacedList, cancel_list, place_oco
from ._exchange_log import ExchangeLog
from ._faults import FaultPlan
from ._signing import ApiKey
from ._wire import order_json, trade_json
from ._user_events import account_events, balance_update
from ._filters import SymbolSpec

__all__ = ["Accounts"]

MINUTE_MS = 60_000
_CLOSE, _HIGH, _LOW = 4, 2, 3


def _price(value: float) -> Decimal:
    return Decimal(repr(float(value)))


class Accounts:
    """Every account of the simulator and the prices they trade at.

    Args:
        keys: the API keys (several keys may share an account).
        balances: each account's starting balances (asset -> amount).
        fees: maker/taker commission rates.
        slippage_bps: how far a MARKET order fills from the last price, against the taker.
        specs: symbol -> its ``exchangeInfo`` entry as a :class:`SymbolSpec`.
        order_limits: the ``ORDERS`` rate limits (unfilled order count per account).
        log: where every order state and fill is appended (``_exchange_log``).
        faults: the faults in force (``fill_delay_ms`` is applied here).
    """

    def __init__(self, keys: Iterable[ApiKey], balances: Mapping[str, Decimal], fees: Fees, slippage_bps: Decimal,
                 history: MarketHistory, specs: Mapping[str, SymbolSpec],
                 order_limits: Sequence[OrderLimit] = (), log: ExchangeLog | None = None,
                 faults: FaultPlan | None = None) -> None:
        self.keys = {k.api_key: k for k in keys}
        start = {asset: (Decimal(amount), Decimal(0)) for asset, amount in balances.items()}
        self.books: dict[str, Book] = {k.account: Book(dict(start)) for k in self.keys.values()}
        self.trades: dict[str, list[Trade]] = {account: [] for account in self.books}
        self.fees = fees
        self.slippage_bps = slippage_bps
        self._history = history
        self._specs = specs
        self._crossed_to: dict[str, int] = {}  # symbol -> replay time prices were applied up to
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        self.log = log if log is not None else ExchangeLog()
        self.faults = faults if faults is not None else FaultPlan()
        self.order_count = UnfilledOrderCount(order_limits or OrderLimit.from_rate_limits([]))

    def spec(self, symbol: str) -> SymbolSpec:
        return self._specs[symbol]

    # ------------------------------------------------------------ prices
    def _price_at(self, symbol: str, t: int) -> tuple[Decimal, Decimal, Decimal] | None:
        """(last, low, high) of the minute containing ``t`` as it stood at ``t``."""
        minute = t - t % MINUTE_MS
        row = self._history.minute_row(symbol, minute)
        if row is None:
            before = self._history.last_row_before(symbol, t)
            if before is None:
                return None
            close = _price(before[_CLOSE])
            return close, close, close
        elapsed = t - minute
        part = partial_row(row, elapsed) if 0 < elapsed < MINUTE_MS else (row if elapsed else partial_row(row, 1))
        return _price(part[_CLOSE]), _price(part[_LOW]), _price(part[_HIGH])

    def last_price(self, symbol: str, now: int) -> Decimal | None:
        at = self._price_at(symbol, now)
        return None if at is None else at[0]

    def avg_price(self, symbol: str, now: int) -> Decimal | None:
        rows = self._history.closed_rows(symbol, now - now % MINUTE_MS - 5 * MINUTE_MS, now - now % MINUTE_MS)
        if not rows.shape[0]:
            return self.last_price(symbol, now)
        return sum((_price(r[_CLOSE]) for r in rows), Decimal(0)) / rows.shape[0]

    def _range(self, symbol: str, since: int, now: int) -> tuple[Decimal, Decimal, Decimal] | None:
        """(low, high, last) of every price the replay path reached in (since, now]."""
        at_now = self._price_at(symbol, now)
        if at_now is None:
            return None
        last = at_now[0]
        low = high = last
        start_minute = since - since % MINUTE_MS
        now_minute = now - now % MINUTE_MS
        if start_minute == now_minute:
            before = self._price_at(symbol, since)
            # a new extreme of the minute since the last look was reached in between
            if before is not None:
                if at_now[1] < before[1]:
                    low = at_now[1]
                if at_now[2] > before[2]:
                    high = at_now[2]
                low, high = min(low, before[0]), max(high, before[0])
            return low, high, last
        before = self._price_at(symbol, since)
        if before is not None:
            row = self._history.minute_row(symbol, start_minute)
            if row is not None:  # the rest of the minute it was in
                low, high = min(low, _price(row[_LOW]), before[0]), max(high, _price(row[_HIGH]), before[0])
        rows = self._history.closed_rows(symbol, start_minute + MINUTE_MS, now_minute)
        for r in rows:
            low, high = min(low, _price(r[_LOW])), max(high, _price(r[_HIGH]))
        low, high = min(low, at_now[1]), max(high, at_now[2])
        return low, high, last

    # ------------------------------------------------------------ orders
    def place(self, account: str, order: NewOrder, now: int, *, commit: bool = True) -> Placed:
        """Place an order at the replay's prices now (``place_order``); raises BinanceAPIError
        (-1015, HTTP 429, over the unfilled order count).

        ``commit`` False (``/order/test``): checked and matched like a real order, the book kept as it is
        (resting orders still meet the prices since the last look first: those fills are real), not counted."""
        if commit:
            self.order_count.check(account)
        last, avg = self._prices(order.symbol, now)
        placed = place_order(self.books[account], order, self._specs[order.symbol], self.fees, last=last,
                             avg_price=avg, now_ms=now, slippage_bps=self.slippage_bps)
        if not commit:
            return placed
        self._commit(account, placed.book, placed.trades, now)
        self.trades[account].extend(placed.trades)
        self.order_count.placed(account)
        for _ in placed.trades:
            self.order_count.filled(account)
        return placed

    # ------------------------------------------------------------ user data stream
    def subscribe(self, account: str, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``listener`` with every user data stream event of ``account`` (``_user_events``), in
        order, synchronously; returns the function that unsubscribes it."""
        listeners = self._listeners.setdefault(account, [])
        listeners.append(listener)
        return lambda: listeners.remove(listener) if listener in listeners else None

    def _send(self, account: str, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            for listener in list(self._listeners.get(account, ())):
                listener(event)

    def _commit(self, account: str, book: Book, trades: Iterable[Trade], now: int, *,
                cancel_client_id: str | None = None) -> None:
        before = self.books[account]
        self.books[account] = book
        for order_id, order in sorted(book.orders.items()):
            if before.orders.get(order_id) != order:
                self.log.append("order", now, account, order_json(order))
        for trade in trades:
            self.log.append("fill", now, account, trade_json(trade, book.orders[trade.order_id].order_list_id))
        if self._listeners.get(account):
            self._send(account, account_events(before, book, trades, now, cancel_client_id=cancel_client_id))

    def deposit(self, account: str, asset: str, amount: Decimal, now: int) -> None:
        """Credit (or, negative, debit) ``amount`` of ``asset`` to the free balance: ``balanceUpdate``
        then ``outboundAccountPosition``. Raises ValueError when the free balance would go negative."""
        book = self.books[account]
        free, locked = book.balances.get(asset, (Decimal(0), Decimal(0)))
        if free + amount < 0:
            raise ValueError(f"{account} holds {free} {asset} free, cannot withdraw {-amount}")
        self._send(account, [balance_update(asset, amount, now)])
        self._commit(account, replace(book, balances={**book.balances, asset: (free + amount, locked)}), (), now)

    def _prices(self, symbol: str, now: int) -> tuple[Decimal, Decimal]:
        """(last, average) price after applying the prices due; raises -1013 "Market is closed." without."""
        self.cross_due(symbol, now)
        last = self.last_price(symbol, now)
        avg = self.avg_price(symbol, now)
        if last is None or avg is None:
            raise BinanceAPIError(-1013, "Market is closed.")
        return last, avg

    def place_list(self, account: str, oco: NewOco, now: int) -> PlacedList:
        """Place an OCO list (``place_oco``; counts two orders); raises BinanceAPIError."""
        self.order_count.check(account, 2)
        last, avg = self._prices(oco.symbol, now)
        placed = place_oco(self.books[account], oco, self._specs[oco.symbol], self.fees, last=last, avg_price=avg,
                           now_ms=now)
        self._commit(account, placed.book, (), now)
        self.order_count.placed(account, 2)
        return placed

    def cancel_list(self, account: str, list_id: int, now: int, cancel_client_id: str | None = None) -> PlacedList:
        """Cancel an executing order list; raises BinanceAPIError -2011."""
        placed = cancel_list(self.books[account], list_id, now)
        self._commit(account, placed.book, (), now, cancel_client_id=cancel_client_id)
        return placed

    def cancel(self, account: str, order_id: int, now: int, cancel_client_id: str | None = None) -> Order:
        """Cancel an open order (a list leg cancels its list); ``cancel_client_id`` is the cancel's own
        client order id (``c`` of its executionReport). Raises BinanceAPIError -2011."""
        book, order = cancel_order(self.books[account], order_id, now)
        self._commit(account, book, (), now, cancel_client_id=cancel_client_id)
        return order

    def cross_due(self, symbol: str, now: int) -> list[tuple[str, Order, Trade | None]]:
        """Apply the prices reached since the last call to every account's resting orders of ``symbol``
        (up to ``now`` less the ``fill_delay_ms`` fault)."""
        now -= self.faults.fill_delay_ms
        since = self._crossed_to.get(symbol)
        self._crossed_to[symbol] = now
        if since is None or since >= now:
            return []
        if not any(b.open_orders(symbol) for b in self.books.values()):
            return []
        span = self._range(symbol, since, now)
        if span is None:
            return []
        low, high, last = span
        changed: list[tuple[str, Order, Trade | None]] = []
        for account, book in self.books.items():
            if not book.open_orders(symbol):
                continue
            new_book, events = cross_orders(book, symbol, self._specs[symbol], self.fees, low=low, high=high,
                                            last=last, now_ms=now)
            self._commit(account, new_book, [t for _, t in events if t is not None], now)
            for order, trade in events:
                if trade is not None:
                    self.trades[account].append(trade)
                    self.order_count.filled(account)
                changed.append((account, order, trade))
        return changed

    def cross_all(self, now: int) -> list[tuple[str, Order, Trade | None]]:
        """:meth:`cross_due` for every symbol with resting orders."""
        symbols = {o.symbol for b in self.books.values() for o in b.open_orders()}
        return [event for symbol in sorted(symbols) for event in self.cross_due(symbol, now)]
