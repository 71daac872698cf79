"""The simulated spot account's matching and balances: pure functions over (book, order, price).

There is no order book depth: the market is the replayed price. So every fill is
whole, and the rules (Binance spot API docs, ``rest-api.md`` "New order" and
``filters.md``; the fill prices are the simulator's own model) are:

* ``MARKET`` fills at once at the last price moved by ``slippage_bps`` against the
  taker (a BUY up, a SELL down, to the tick size), taker commission. A BUY may give
  ``quoteOrderQty`` instead of ``quantity`` (the quantity is then what it buys, down
  to the step size).
* ``LIMIT`` whose price is marketable (a BUY at or above the last price, a SELL at or
  below) fills at once at the last price, as taker; otherwise ``GTC`` rests and
  ``IOC``/``FOK`` expire (``EXPIRED``). A resting BUY fills at its price, as maker,
  when the replay's low reaches it (a SELL when the high does).
* ``LIMIT_MAKER`` that would fill at once is rejected (-2010 "Order would immediately
  match and take."); otherwise it rests like a ``GTC`` limit.
* ``STOP_LOSS`` / ``TAKE_PROFIT`` (market on trigger) and their ``_LIMIT`` forms rest
  untriggered. A stop-loss SELL triggers when the low reaches its stop price (a BUY
  when the high does); a take-profit SELL when the high reaches it (a BUY when the
  low does). An order that would trigger at once is rejected (-2010 "Order would
  trigger immediately."). On trigger the market form fills at the stop price when the
  update's range contains it, else (a gap) at the last price, as taker; the limit form
  becomes a limit order at its price (filled in the same update when the range
  reaches the price, as maker).

Funds: a resting order locks what it may spend (a BUY its price, or stop price for a
market stop, times the quantity in the quote asset; a SELL its quantity of the base
asset); a fill releases the lock and moves the funds. Commission is charged in the
asset received (a BUY's in the base asset, a SELL's in the quote asset), rounded down
to the commission precision. An order the free balance cannot cover is rejected
(-2010 "Account has insufficient balance for requested action."). A ``newClientOrderId``
equal to one of the account's **open** orders' is rejected (-2010 "Duplicate order
sent."); the id of a finished order may be used again.

Self-trade prevention (``faqs/stp_faq.md``): an order that takes at once (a MARKET, a
marketable LIMIT) would match the account's own resting orders of the other side that sit
in the book (LIMIT, LIMIT_MAKER, a triggered stop-limit) at a price it reaches (a BUY those
at or below its fill price, or its limit price; a SELL those at or above). The taker's
``selfTradePreventionMode`` (the symbol's default when not sent) decides: ``EXPIRE_MAKER``
expires those resting orders, ``EXPIRE_TAKER`` the new order, ``EXPIRE_BOTH`` both, each
with status ``EXPIRED_IN_MATCH``, a ``preventedMatchId`` and its lock released; the new order
otherwise fills as usual. ``NONE``: as there is no depth, the new order fills from the market
and the resting orders stay (on Binance they would trade with each other).

Open orders per symbol (``filters.md``): ``MAX_NUM_ORDERS`` caps the account's open orders
of the symbol, ``MAX_NUM_ALGO_ORDERS`` its open stop-loss / take-profit orders; the order
that would go over is rejected -1013 "Filter failure: MAX_NUM_ORDERS" (or ``_ALGO_``).

Amounts are ``Decimal``: prices in the quote asset, quantities in the base asset,
times in ms since the Unix epoch (UTC).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from ._book import ORDER_TYPES, STOPS, STP_MODES, Book, Fees, NewOrder, Order, OrderList, Placed, Trade
from ._errors import BinanceAPIError
from ._filters import SymbolSpec, check_open_orders, check_order_filters

__all__ = ["cancel_order", "cross_orders", "place_leg", "place_order"]

_INSUFFICIENT = "Account has insufficient balance for requested action."
_ZERO = Decimal(0)


# ---------------------------------------------------------------------------- helpers


def _add(balances: dict[str, tuple[Decimal, Decimal]], asset: str, free: Decimal = _ZERO, locked: Decimal = _ZERO) -> None:
    f, lk = balances.get(asset, (_ZERO, _ZERO))
    balances[asset] = (f + free, lk + locked)


def _to_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    if tick == 0:
        return price
    return (price / tick).to_integral_value(rounding=rounding) * tick


def _commission(amount: Decimal, rate: Decimal, precision: int) -> Decimal:
    return (amount * rate).quantize(Decimal(1).scaleb(-precision), rounding=ROUND_DOWN)


def _stop_hit(kind: str, side: str, stop: Decimal, low: Decimal, high: Decimal) -> bool:
    """Whether prices spanning [low, high] trigger a stop order (module doc)."""
    falling = (kind.startswith("STOP_LOSS") and side == "SELL") or (kind.startswith("TAKE_PROFIT") and side == "BUY")
    return low <= stop if falling else high >= stop


def _marketable(side: str, price: Decimal, last: Decimal) -> bool:
    return price >= last if side == "BUY" else price <= last


def _required(order: NewOrder) -> list[str]:
    need = {"MARKET": [], "LIMIT": ["timeInForce", "quantity", "price"], "LIMIT_MAKER": ["quantity", "price"],
            "STOP_LOSS": ["quantity", "stopPrice"], "TAKE_PROFIT": ["quantity", "stopPrice"],
            "STOP_LOSS_LIMIT": ["timeInForce", "quantity", "price", "stopPrice"],
            "TAKE_PROFIT_LIMIT": ["timeInForce", "quantity", "price", "stopPrice"]}[order.type]
    given = {"timeInForce": order.time_in_force, "quantity": order.quantity, "price": order.price,
             "stopPrice": order.stop_price}
    return [name for name in need if given[name] is None]


def _validate(order: NewOrder, spec: SymbolSpec) -> None:
    if order.side not in ("BUY", "SELL"):
        raise BinanceAPIError(-1100, "Illegal characters found in parameter 'side'; legal range is 'BUY|SELL'.")
    if order.type not in ORDER_TYPES:
        raise BinanceAPIError(-1116, "Invalid orderType.")
    if spec.order_types and order.type not in spec.order_types:
        raise BinanceAPIError(-1013, "Order type not supported for this symbol.")
    missing = _required(order)
    if missing:
        raise BinanceAPIError(-1102, f"Mandatory parameter '{missing[0]}' was not sent, was empty/null, or malformed.")
    if order.type == "MARKET":
        if (order.quantity is None) == (order.quote_order_qty is None):
            raise BinanceAPIError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
                                  if order.quantity is None else
                                  "Parameter 'quoteOrderQty' sent when not required.")
    elif order.quote_order_qty is not None:
        raise BinanceAPIError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
    if order.time_in_force is not None and order.time_in_force not in ("GTC", "IOC", "FOK"):
        raise BinanceAPIError(-1115, "Invalid timeInForce.")
    if order.stp_mode is not None:
        if order.stp_mode not in STP_MODES:
            raise BinanceAPIError(-1100, "Illegal characters found in parameter 'selfTradePreventionMode'; legal "
                                         "range is 'NONE|EXPIRE_TAKER|EXPIRE_MAKER|EXPIRE_BOTH'.")
        if order.stp_mode not in spec.allowed_stp:
            raise BinanceAPIError(-2010, "This symbol does not allow the specified self-trade prevention mode.")
    for name, value in (("quantity", order.quantity), ("quoteOrderQty", order.quote_order_qty),
                        ("price", order.price), ("stopPrice", order.stop_price)):
        if value is not None and value <= 0:
            raise BinanceAPIError(-1013, f"Invalid {name}." if name != "quantity" else "Invalid quantity.")


# ---------------------------------------------------------------------------- fills


def _fill(balances: dict[str, tuple[Decimal, Decimal]], order: Order, spec: SymbolSpec, price: Decimal,
          quantity: Decimal, rate: Decimal, trade_id: int, now_ms: int, maker: bool) -> tuple[Order, Trade]:
    """Move the funds of a whole fill (releasing what the order locked) and finish the order."""
    quote_qty = price * quantity
    if order.side == "BUY":
        commission = _commission(quantity, rate, spec.base_commission_precision)
        _add(balances, spec.quote_asset, free=order.locked - quote_qty, locked=-order.locked)
        _add(balances, spec.base_asset, free=quantity - commission)
        asset = spec.base_asset
    else:
        commission = _commission(quote_qty, rate, spec.quote_commission_precision)
        _add(balances, spec.base_asset, free=order.locked - quantity, locked=-order.locked)
        _add(balances, spec.quote_asset, free=quote_qty - commission)
        asset = spec.quote_asset
    trade = Trade(trade_id, order.order_id, order.symbol, order.side, price, quantity, quote_qty, commission, asset,
                  now_ms, maker)
    done = replace(order, status="FILLED", executed_qty=quantity, cummulative_quote_qty=quote_qty, update_time=now_ms,
                   locked=_ZERO, working_time=order.working_time if order.working_time >= 0 else now_ms)
    return done, trade


def _end_list(orders: dict[int, Order], balances: dict[str, tuple[Decimal, Decimal]], lists: dict[int, OrderList],
              leg: Order, now_ms: int, *, status: str, keep_lock: bool) -> tuple[Order, list[Order]]:
    """End the order list ``leg`` belongs to (if any): its other open legs get ``status``
    (EXPIRED or CANCELED); their locks move to ``leg`` when it goes on working (``keep_lock``),
    else are released. Returns ``leg`` (with the locks it took) and the legs ended."""
    if leg.order_list_id < 0:
        return leg, []
    order_list = lists[leg.order_list_id]
    ended = []
    for order_id in order_list.order_ids:
        other = orders[order_id]
        if order_id == leg.order_id or not other.is_open:
            continue
        if keep_lock:
            leg = replace(leg, locked=leg.locked + other.locked)
        else:
            _add(balances, other.locked_asset, free=other.locked, locked=-other.locked)
        orders[order_id] = gone = replace(other, status=status, locked=_ZERO, update_time=now_ms)
        ended.append(gone)
    lists[order_list.list_id] = replace(order_list, status="ALL_DONE", transaction_time=now_ms)
    return leg, ended


def _lock(balances: dict[str, tuple[Decimal, Decimal]], asset: str, amount: Decimal) -> None:
    if balances.get(asset, (_ZERO, _ZERO))[0] < amount:
        raise BinanceAPIError(-2010, _INSUFFICIENT)
    _add(balances, asset, free=-amount, locked=amount)


# ---------------------------------------------------------------------------- public


def place_order(
    book: Book, order: NewOrder, spec: SymbolSpec, fees: Fees, *, last: Decimal, avg_price: Decimal, now_ms: int,
    slippage_bps: Decimal = _ZERO,
) -> Placed:
    """Place ``order`` at the last price ``last`` (module doc); nothing changes when it is rejected.

    Raises:
        BinanceAPIError: -1013 a filter failure or invalid amount, -1102/-1106 a missing or
            extra parameter, -1115/-1116 an unknown time in force or type, -2010 a duplicate
            client order id, insufficient balance, a LIMIT_MAKER that would take, a stop
            that would trigger at once, or a self-trade prevention mode the symbol does not
            allow; -1013 ``MAX_NUM_ORDERS`` / ``MAX_NUM_ALGO_ORDERS`` over the open-order caps.
    """
    return place_leg(book, order, spec, fees, last=last, avg_price=avg_price, now_ms=now_ms, slippage_bps=slippage_bps)


def place_leg(
    book: Book, order: NewOrder, spec: SymbolSpec, fees: Fees, *, last: Decimal, avg_price: Decimal, now_ms: int,
    slippage_bps: Decimal = _ZERO, order_list_id: int = -1, lock: Decimal | None = None,
) -> Placed:
    """:func:`place_order` for a leg of order list ``order_list_id``, locking ``lock`` (in the
    asset it spends) instead of what the order alone would; for :mod:`._order_lists`."""
    _validate(order, spec)
    if any(o.client_order_id == order.client_order_id for o in book.open_orders()):
        raise BinanceAPIError(-2010, "Duplicate order sent.")
    open_here = book.open_orders(order.symbol)
    check_open_orders(spec, open_orders=len(open_here), open_algo=sum(o.type in STOPS for o in open_here),
                      algo=order.type in STOPS)
    tick = spec.tick_size
    quantity = order.quantity
    if order.type == "MARKET" and quantity is None:
        step_filter = spec.filters.get("LOT_SIZE")
        step = Decimal(str(step_filter["stepSize"])) if step_filter else _ZERO
        estimate = _to_tick(last * (1 + slippage_bps / 10_000), tick, ROUND_CEILING)
        quantity = order.quote_order_qty / estimate
        if step:
            quantity = (quantity / step).to_integral_value(rounding=ROUND_FLOOR) * step
    assert quantity is not None
    check_order_filters(spec, side=order.side, market=order.type == "MARKET", quantity=quantity,
                        price=order.price, stop_price=order.stop_price, avg_price=avg_price)
    if order.type == "LIMIT_MAKER" and _marketable(order.side, order.price, last):  # type: ignore[arg-type]
        raise BinanceAPIError(-2010, "Order would immediately match and take.")
    if order.type in STOPS and _stop_hit(order.type, order.side, order.stop_price, last, last):  # type: ignore[arg-type]
        raise BinanceAPIError(-2010, "Order would trigger immediately.")

    balances = dict(book.balances)
    market_price = None
    if order.type == "MARKET":
        moved = last * (1 + slippage_bps / 10_000) if order.side == "BUY" else last * (1 - slippage_bps / 10_000)
        market_price = _to_tick(moved, tick, ROUND_CEILING if order.side == "BUY" else ROUND_FLOOR)
    if order.side == "BUY":
        lock_price = market_price if market_price is not None else (order.price if order.price is not None
                                                                     else order.stop_price)
        lock_asset, lock_amount = spec.quote_asset, lock_price * quantity  # type: ignore[operator]
    else:
        lock_asset, lock_amount = spec.base_asset, quantity
    lock_amount = lock_amount if lock is None else lock
    _lock(balances, lock_asset, lock_amount)
    mode = order.stp_mode or spec.default_stp
    placed = Order(book.next_order_id, order.client_order_id, order.symbol, order.side, order.type,
                   order.time_in_force, order.price or _ZERO, quantity, order.stop_price or _ZERO, "NEW", now_ms,
                   now_ms, locked_asset=lock_asset, locked=lock_amount,
                   working_time=-1 if order.type in STOPS else now_ms, stp_mode=mode, order_list_id=order_list_id)
    trades: tuple[Trade, ...] = ()
    next_trade = book.next_trade_id
    orders = dict(book.orders)
    lists = dict(book.lists)
    taking = market_price is not None or (order.type == "LIMIT" and _marketable(order.side, order.price, last))  # type: ignore[arg-type]
    reach = market_price if market_price is not None else order.price
    makers = _self_matches(open_here, placed, reach) if taking and mode != "NONE" else []  # type: ignore[arg-type]
    match_id = book.next_prevented_match_id
    expired: list[Order] = []
    if makers:  # the taker meets its own orders in price order; each meeting is one prevented match
        hit = makers if mode == "EXPIRE_MAKER" else makers[:1] if mode == "EXPIRE_BOTH" else []
        for maker in hit:
            maker = orders[maker.order_id]
            if not maker.is_open:  # the other leg of a list already ended here
                continue
            _add(balances, maker.locked_asset, free=maker.locked, locked=-maker.locked)
            gone = replace(maker, status="EXPIRED_IN_MATCH", locked=_ZERO, update_time=now_ms,
                           prevented_match_id=match_id, prevented_quantity=min(maker.orig_qty, quantity))
            orders[maker.order_id] = gone
            expired.append(gone)
            expired.extend(_end_list(orders, balances, lists, gone, now_ms, status="EXPIRED", keep_lock=False)[1])
            match_id += mode == "EXPIRE_MAKER"
        if mode != "EXPIRE_MAKER":
            _add(balances, lock_asset, free=lock_amount, locked=-lock_amount)
            placed = replace(placed, status="EXPIRED_IN_MATCH", locked=_ZERO, prevented_match_id=match_id,
                             prevented_quantity=min(makers[0].orig_qty, quantity))
            match_id += 1
            taking = False
    if taking and market_price is not None:
        placed, trade = _fill(balances, placed, spec, market_price, quantity, fees.taker, next_trade, now_ms, False)
        trades = (trade,)
    elif taking:
        placed, trade = _fill(balances, placed, spec, last, quantity, fees.taker, next_trade, now_ms, False)
        trades = (trade,)
    elif placed.status == "NEW" and order.type == "LIMIT" and order.time_in_force in ("IOC", "FOK"):
        _add(balances, lock_asset, free=lock_amount, locked=-lock_amount)
        placed = replace(placed, status="EXPIRED", locked=_ZERO)
    orders[placed.order_id] = placed
    book = replace(book, balances=balances, orders=orders, next_order_id=book.next_order_id + 1,
                   next_trade_id=next_trade + len(trades), next_prevented_match_id=match_id, lists=lists)
    return Placed(book, placed, trades, tuple(expired))


def _self_matches(open_here: list[Order], taker: Order, reach: Decimal) -> list[Order]:
    """The account's resting orders a taker reaching ``reach`` would trade with (module doc)."""
    met = [o for o in open_here if o.side != taker.side and o.in_book
           and (o.price <= reach if taker.side == "BUY" else o.price >= reach)]
    return sorted(met, key=lambda o: (o.price if taker.side == "BUY" else -o.price, o.order_id))


def cancel_order(book: Book, order_id: int, now_ms: int) -> tuple[Book, Order]:
    """Cancel an open order, releasing its lock; a leg of an order list cancels the whole list
    (its other open legs CANCELED too, the list ALL_DONE).

    Raises:
        BinanceAPIError: -2011 "Unknown order sent." when it is not open (unknown or finished).
    """
    order = book.orders.get(order_id)
    if order is None or not order.is_open:
        raise BinanceAPIError(-2011, "Unknown order sent.")
    balances, orders, lists = dict(book.balances), dict(book.orders), dict(book.lists)
    _add(balances, order.locked_asset, free=order.locked, locked=-order.locked)
    orders[order_id] = done = replace(order, status="CANCELED", locked=_ZERO, update_time=now_ms)
    _end_list(orders, balances, lists, done, now_ms, status="CANCELED", keep_lock=False)
    return replace(book, balances=balances, orders=orders, lists=lists), done


def cross_orders(
    book: Book, symbol: str, spec: SymbolSpec, fees: Fees, *, low: Decimal, high: Decimal, last: Decimal, now_ms: int,
) -> tuple[Book, list[tuple[Order, Trade | None]]]:
    """Apply a price update of ``symbol`` that spanned [``low``, ``high``] and ended at ``last``.

    Returns the book and, in order id order, every order that changed: ``(order, trade)``
    for a fill, ``(order, None)`` for a stop-limit order that triggered without filling.
    """
    balances, orders, lists = dict(book.balances), dict(book.orders), dict(book.lists)
    changed: list[tuple[Order, Trade | None]] = []
    trade_id = book.next_trade_id
    for order in sorted(book.open_orders(symbol), key=lambda o: o.order_id):
        current = orders[order.order_id]
        if not current.is_open:  # the other leg of its list ended it in this update
            continue
        if current.type in STOPS and not current.triggered:
            if not _stop_hit(current.type, current.side, current.stop_price, low, high):
                continue
            current = replace(current, triggered=True, working_time=now_ms, update_time=now_ms)
            current, ended = _end_list(orders, balances, lists, current, now_ms, status="EXPIRED", keep_lock=True)
            changed.extend((o, None) for o in ended)
            if current.type in ("STOP_LOSS", "TAKE_PROFIT"):
                price = current.stop_price if low <= current.stop_price <= high else last
                if current.side == "BUY":  # the lock was at the stop price: what the fill costs more is checked
                    extra = price * current.orig_qty - current.locked
                    if extra > 0 and balances.get(spec.quote_asset, (_ZERO, _ZERO))[0] < extra:
                        expired = replace(current, status="EXPIRED", locked=_ZERO)
                        _add(balances, current.locked_asset, free=current.locked, locked=-current.locked)
                        orders[order.order_id] = expired
                        changed.append((expired, None))
                        continue
                done, trade = _fill(balances, current, spec, price, current.orig_qty, fees.taker, trade_id, now_ms,
                                    False)
                trade_id += 1
                orders[order.order_id] = done
                changed.append((done, trade))
                continue
        if current.side == "BUY" and low <= current.price or current.side == "SELL" and high >= current.price:
            current, ended = _end_list(orders, balances, lists, current, now_ms, status="EXPIRED", keep_lock=True)
            changed.extend((o, None) for o in ended)
            done, trade = _fill(balances, current, spec, current.price, current.orig_qty, fees.maker, trade_id,
                                now_ms, True)
            trade_id += 1
            orders[order.order_id] = done
            changed.append((done, trade))
        elif current is not order:  # a stop-limit triggered and now rests as a limit order
            orders[order.order_id] = current
            changed.append((current, None))
    return replace(book, balances=balances, orders=orders, next_trade_id=trade_id, lists=lists), changed
