"""The user data stream events of one account change, as a pure function of the books before and
after: Binance's order of executionReports, listStatus and outboundAccountPosition."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from exchange_sim._filters import SymbolSpec
from exchange_sim._book import Book, Fees, NewOrder
from exchange_sim._matching import cross_orders, place_order
from exchange_sim._order_lists import Leg, NewOco, place_oco
from exchange_sim._user_events import account_events

FEES = Fees(maker=D("0.001"), taker=D("0.001"))
T = 1_620_000_000_000
LAST = D("50000.00")


@pytest.fixture(scope="module")
def spec(btcusdt_spec) -> SymbolSpec:
    return btcusdt_spec


def oco(b: Book, spec):
    return place_oco(b, NewOco("BTCUSDT", "SELL", D("0.1"), "exit", Leg("LIMIT_MAKER", "tp", price=D("50030.00")),
                               Leg("STOP_LOSS_LIMIT", "sl", price=D("48900.00"), stop_price=D("49000.00"),
                                   time_in_force="GTC")), spec, FEES, last=LAST, avg_price=LAST, now_ms=T)


def test_a_take_profit_fill_reports_the_other_leg_expired_then_the_trade_then_the_list_then_balances(spec):
    placed = oco(Book({"BTC": (D("1"), D(0))}), spec)
    after, changed = cross_orders(placed.book, "BTCUSDT", spec, FEES, low=LAST, high=D("50100.00"),
                                  last=D("50100.00"), now_ms=T + 1)
    events = account_events(placed.book, after, [t for _, t in changed if t], T + 1)
    assert [(e["e"], e.get("x"), e.get("X"), e.get("c")) for e in events] == [
        ("executionReport", "EXPIRED", "EXPIRED", "sl"), ("executionReport", "TRADE", "FILLED", "tp"),
        ("listStatus", None, None, "OCO"), ("outboundAccountPosition", None, None, None)]
    trade = events[1]
    assert (trade["l"], trade["L"], trade["z"], trade["Z"], trade["m"], trade["g"]) == (
        "0.10000000", "50030.00000000", "0.10000000", "5003.00000000", True, 1)
    assert (events[2]["l"], events[2]["L"], events[2]["C"]) == ("ALL_DONE", "ALL_DONE", "exit")
    assert events[3]["B"] == [{"a": "BTC", "f": "0.90000000", "l": "0.00000000"},
                              {"a": "USDT", "f": "4997.99700000", "l": "0.00000000"}]


def test_a_self_trade_prevented_by_a_market_buy_reports_trade_prevention_with_the_match_id(spec):
    placed = oco(Book({"BTC": (D("1"), D(0)), "USDT": (D("10000"), D(0))}), spec)
    bought = place_order(placed.book, NewOrder("BTCUSDT", "BUY", "MARKET", "buy", quantity=D("0.01")), spec, FEES,
                         last=LAST, avg_price=LAST, now_ms=T + 2, slippage_bps=D(10))
    events = account_events(placed.book, bought.book, bought.trades, T + 2)
    assert [(e["e"], e.get("x"), e.get("X"), e.get("c")) for e in events] == [
        ("executionReport", "NEW", "NEW", "buy"), ("executionReport", "TRADE_PREVENTION", "EXPIRED_IN_MATCH", "tp"),
        ("executionReport", "EXPIRED", "EXPIRED", "sl"), ("executionReport", "TRADE", "FILLED", "buy"),
        ("listStatus", None, None, "OCO"), ("outboundAccountPosition", None, None, None)]
    assert (events[1]["v"], events[1]["A"]) == (1, "0.01000000")
    assert (events[0]["z"], events[0]["l"]) == ("0.00000000", "0.00000000")  # NEW before its fill


def test_an_expired_ioc_reports_new_then_expired_and_nothing_moves_no_position_event(spec):
    b = Book({"USDT": (D("10000"), D(0))})
    placed = place_order(b, NewOrder("BTCUSDT", "BUY", "LIMIT", "ioc", quantity=D("0.01"), price=D("49000.00"),
                                     time_in_force="IOC"), spec, FEES, last=LAST, avg_price=LAST, now_ms=T)
    events = account_events(b, placed.book, placed.trades, T)
    assert [(e["x"], e["X"]) for e in events] == [("NEW", "NEW"), ("EXPIRED", "EXPIRED")]
