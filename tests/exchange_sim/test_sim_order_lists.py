"""OCO order lists as pure functions on the real BTCUSDT entry: one lock for both legs, the
first leg to trigger or fill expires the other and takes its lock, a cancel ends both, and
Binance's refusals (leg types, price relation, duplicates, funds, self-trade prevention)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from exchange_sim._errors import BinanceAPIError
from exchange_sim._filters import SymbolSpec
from exchange_sim._book import Book, Fees, NewOrder
from exchange_sim._matching import cancel_order, cross_orders, place_order
from exchange_sim._order_lists import Leg, NewOco, cancel_list, place_oco

FEES = Fees(maker=D("0.001"), taker=D("0.002"))
T = 1_620_000_000_000
LAST = D("50000.00")


@pytest.fixture(scope="module")
def spec(btcusdt_spec) -> SymbolSpec:
    return btcusdt_spec


def sell_oco(b: Book, spec, *, take="51000.00", stop="49000.00", limit="48900.00", qty="0.10000", cid="oco-1",
             **kw):
    oco = NewOco("BTCUSDT", "SELL", D(qty), cid, Leg("LIMIT_MAKER", f"{cid}-tp", price=D(take)),
                 Leg("STOP_LOSS_LIMIT", f"{cid}-sl", price=D(limit), stop_price=D(stop), time_in_force="GTC"), **kw)
    return place_oco(b, oco, spec, FEES, last=LAST, avg_price=LAST, now_ms=T)


def cross(b, spec, low, high, last=None, t=T + 1):
    return cross_orders(b, "BTCUSDT", spec, FEES, low=D(low), high=D(high), last=D(last or high), now_ms=t)


def test_a_sell_oco_locks_once_and_its_take_profit_fill_expires_the_stop_loss(spec):
    placed = sell_oco(Book({"BTC": (D("1"), D(0)), "USDT": (D(0), D(0))}), spec)
    stop_leg, take_leg = placed.orders  # the stop-loss leg first, as Binance reports them
    assert (stop_leg.type, take_leg.type) == ("STOP_LOSS_LIMIT", "LIMIT_MAKER")
    assert stop_leg.order_list_id == take_leg.order_list_id == placed.order_list.list_id == 1
    assert placed.book.balances["BTC"] == (D("0.9"), D("0.1"))  # one lock for both legs
    assert (placed.order_list.status, placed.order_list.status_type) == ("EXECUTING", "EXEC_STARTED")
    b, changed = cross(placed.book, spec, "50500.00", "51000.00")
    assert [(o.order_id, o.status, t is not None) for o, t in changed] == [(1, "EXPIRED", False), (2, "FILLED", True)]
    trade = changed[1][1]
    assert (trade.price, trade.is_maker, trade.commission) == (D("51000.00"), True, D("5.1"))
    assert b.balances["BTC"] == (D("0.9"), D(0)) and b.balances["USDT"] == (D("5100") - D("5.1"), D(0))
    assert (b.lists[1].status, b.lists[1].status_type) == ("ALL_DONE", "ALL_DONE") and not b.open_orders()


def test_the_stop_loss_leg_triggers_expires_the_take_profit_and_rests_with_the_whole_lock(spec):
    placed = sell_oco(Book({"BTC": (D("1"), D(0))}), spec, limit="49100.00")  # a limit above its stop
    b, changed = cross(placed.book, spec, "48950.00", "48990.00")  # the stop is hit, the limit not reached
    assert [(o.order_id, o.status) for o, _ in changed] == [(2, "EXPIRED"), (1, "NEW")]
    working = b.orders[1]
    assert working.triggered and working.locked == D("0.1") and b.balances["BTC"] == (D("0.9"), D("0.1"))
    b, changed = cross(b, spec, "48990.00", "49150.00", t=T + 2)
    assert [(o.order_id, o.status, t.price) for o, t in changed] == [(1, "FILLED", D("49100.00"))]
    assert b.balances["BTC"] == (D("0.9"), D(0)) and b.balances["USDT"][0] == D("4910") - D("4.91")


def test_a_buy_oco_locks_its_dearer_leg_and_cancelling_one_leg_cancels_the_list(spec):
    oco = NewOco("BTCUSDT", "BUY", D("0.10000"), "buy-oco", Leg("STOP_LOSS_LIMIT", "b-sl", price=D("51100.00"),
                                                               stop_price=D("51000.00"), time_in_force="GTC"),
                 Leg("LIMIT_MAKER", "b-tp", price=D("49000.00")))
    placed = place_oco(Book({"USDT": (D("20000"), D(0))}), oco, spec, FEES, last=LAST, avg_price=LAST, now_ms=T)
    assert [o.type for o in placed.orders] == ["STOP_LOSS_LIMIT", "LIMIT_MAKER"]
    assert placed.book.balances["USDT"] == (D("20000") - D("5110"), D("5110"))
    b, changed = cross(placed.book, spec, "49000.00", "50000.00", last="49500.00")  # the limit maker fills
    assert [(o.type, o.status) for o, _ in changed] == [("STOP_LOSS_LIMIT", "EXPIRED"), ("LIMIT_MAKER", "FILLED")]
    assert b.balances["USDT"] == (D("20000") - D("4900"), D(0)) and b.balances["BTC"] == (D("0.0999"), D(0))
    again = place_oco(b, oco, spec, FEES, last=LAST, avg_price=LAST, now_ms=T + 5)  # the list's id is free again
    canceled, leg = cancel_order(again.book, again.orders[1].order_id, T + 6)
    assert leg.status == "CANCELED" and canceled.orders[again.orders[0].order_id].status == "CANCELED"
    assert canceled.lists[2].status == "ALL_DONE" and canceled.balances == b.balances
    with pytest.raises(BinanceAPIError) as err:
        cancel_list(canceled, 2, T + 7)
    assert (err.value.code, err.value.msg) == (-2011, "Unknown order sent.")
    listed = place_oco(b, replace(oco, list_client_order_id="third"), spec, FEES, last=LAST, avg_price=LAST,
                       now_ms=T + 8)
    done = cancel_list(listed.book, listed.order_list.list_id, T + 9)
    assert [o.status for o in done.orders] == ["CANCELED", "CANCELED"] and done.book.balances == b.balances


@pytest.mark.parametrize(("kw", "code", "msg"), [
    ({"take": "49990.00"}, -2010, "The relationship of the prices for the orders is not correct."),
    ({"stop": "50010.00", "limit": "50000.00"}, -2010, "The relationship of the prices for the orders is not correct."),
    ({"qty": "2.00000"}, -2010, "Account has insufficient balance for requested action."),
    ({"qty": "0.00001"}, -1013, "Filter failure: NOTIONAL"),
    ({"stp_mode": "DECREMENT"}, -1100, "Illegal characters found in parameter 'selfTradePreventionMode'; legal range "
                                       "is 'NONE|EXPIRE_TAKER|EXPIRE_MAKER|EXPIRE_BOTH'."),
])
def test_refusals_change_nothing(spec, kw, code, msg):
    b = Book({"BTC": (D("1"), D(0))})
    with pytest.raises(BinanceAPIError) as err:
        sell_oco(b, spec, **kw)
    assert (err.value.code, err.value.msg) == (code, msg)


def test_leg_types_duplicates_and_symbols_without_oco_are_refused(spec):
    b = sell_oco(Book({"BTC": (D("1"), D(0))}), spec).book
    with pytest.raises(BinanceAPIError) as err:
        sell_oco(b, spec, cid="oco-1")  # the list client id of an executing list
    assert (err.value.code, err.value.msg) == (-2010, "Duplicate order sent.")
    bad = NewOco("BTCUSDT", "SELL", D("0.1"), "x", Leg("STOP_LOSS_LIMIT", "a", price=D("51000"), stop_price=D("51000"),
                                                       time_in_force="GTC"), Leg("LIMIT_MAKER", "b", price=D("49000")))
    for s, code in ((spec, -1158), (replace(spec, oco_allowed=False), -2010)):
        with pytest.raises(BinanceAPIError) as err:
            place_oco(b, bad, s, FEES, last=LAST, avg_price=LAST, now_ms=T)
        assert err.value.code == code


def test_the_own_market_buy_expires_the_resting_take_profit_leg_and_ends_the_list(spec):
    placed = sell_oco(Book({"BTC": (D("1"), D(0)), "USDT": (D("10000"), D(0))}), spec, take="50030.00")
    bought = place_order(placed.book, NewOrder("BTCUSDT", "BUY", "MARKET", "buy", quantity=D("0.01")), spec, FEES,
                         last=LAST, avg_price=LAST, now_ms=T + 1, slippage_bps=D(10))  # fills at 50050
    assert bought.order.status == "FILLED"
    assert [(o.type, o.status) for o in bought.expired] == [("LIMIT_MAKER", "EXPIRED_IN_MATCH"),
                                                            ("STOP_LOSS_LIMIT", "EXPIRED")]
    assert bought.book.lists[1].status == "ALL_DONE" and not bought.book.open_orders()
    assert bought.book.balances["BTC"] == (D("1") + D("0.01") - D("0.00002"), D(0))
