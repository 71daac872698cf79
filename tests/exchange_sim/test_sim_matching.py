"""The simulated account's matching and balances as pure functions, on the real BTCUSDT
``exchangeInfo`` entry: every order type, locks, commissions, filters, the duplicate rule,
and (hypothesis) that no sequence of orders and prices creates or loses funds."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exchange_sim._errors import BinanceAPIError
from exchange_sim._filters import SymbolSpec
from exchange_sim._order_lists import Leg, NewOco, place_oco
from exchange_sim._book import ORDER_TYPES, STP_MODES, Book, Fees, NewOrder
from exchange_sim._matching import cancel_order, cross_orders, place_order

FEES = Fees(maker=D("0.001"), taker=D("0.002"))
T = 1_620_000_000_000


@pytest.fixture(scope="module")
def real_spec(binance_data) -> SymbolSpec:
    info = json.loads((binance_data / "exchangeInfo.json").read_text())
    return SymbolSpec.from_exchange_info(next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT"))


@pytest.fixture(scope="module")
def spec(real_spec) -> SymbolSpec:
    return replace(real_spec, order_types=ORDER_TYPES)  # the stop-market types too


@pytest.fixture(scope="module")
def stp_spec(spec) -> SymbolSpec:
    """As the simulator serves it: EXPIRE_MAKER by default (the recorded file still says NONE)."""
    return replace(spec, default_stp="EXPIRE_MAKER", allowed_stp=STP_MODES)


def book(usdt="10000", btc="0") -> Book:
    return Book({"USDT": (D(usdt), D(0)), "BTC": (D(btc), D(0))})


def place(b, spec, last="50000.00", **kw):
    order = NewOrder(kw.pop("symbol", "BTCUSDT"), kw.pop("side"), kw.pop("type"), kw.pop("cid", "c1"),
                     **{k: D(v) if isinstance(v, str) and k not in ("time_in_force", "stp_mode") else v for k, v in kw.items()})
    return place_order(b, order, spec, FEES, last=D(last), avg_price=D(last), now_ms=T, slippage_bps=D(10))


def rejected(code: int, msg: str, *args, **kw) -> None:
    with pytest.raises(BinanceAPIError) as err:
        place(*args, **kw)
    assert (err.value.code, err.value.msg) == (code, msg)


def test_a_market_buy_fills_at_the_last_price_plus_slippage_with_the_commission_in_the_base_asset(spec):
    placed = place(book(), spec, side="BUY", type="MARKET", quantity="0.10000")
    [trade] = placed.trades
    assert (placed.order.status, trade.price, trade.is_maker) == ("FILLED", D("50050.00"), False)  # +10 bps, taker
    assert (trade.commission, trade.commission_asset) == (D("0.00020000"), "BTC")  # 0.2 % of 0.1 BTC
    assert placed.book.balances == {"USDT": (D("4995.00"), D(0)), "BTC": (D("0.09980000"), D(0))}
    by_quote = place(book(), spec, side="BUY", type="MARKET", quote_order_qty="1000")
    assert by_quote.order.orig_qty == D("0.01998")  # what 1000 USDT buys at 50050.00, down to the step size


def test_a_market_sell_gets_the_quote_less_commission_and_insufficient_funds_change_nothing(spec):
    placed = place(book(btc="1"), spec, side="SELL", type="MARKET", quantity="0.50000")
    [trade] = placed.trades
    assert trade.price == D("49950.00") and (trade.commission, trade.commission_asset) == (D("49.95000000"), "USDT")
    assert placed.book.balances == {"USDT": (D("10000") + D("24975.00") - D("49.95"), D(0)), "BTC": (D("0.5"), D(0))}
    rejected(-2010, "Account has insufficient balance for requested action.", book(), spec, side="SELL",
             type="MARKET", quantity="0.50000")


def test_a_resting_limit_locks_its_funds_and_fills_as_maker_when_the_low_reaches_it(spec):
    placed = place(book(), spec, side="BUY", type="LIMIT", quantity="0.10000", price="49000.00", time_in_force="GTC")
    assert placed.order.status == "NEW" and not placed.trades
    assert placed.book.balances["USDT"] == (D("5100.00"), D("4900.00"))
    same, changed = cross_orders(placed.book, "BTCUSDT", spec, FEES, low=D("49000.01"), high=D("50100"),
                                 last=D("49500"), now_ms=T + 1)
    assert changed == [] and same.balances == placed.book.balances
    after, [(order, trade)] = cross_orders(placed.book, "BTCUSDT", spec, FEES, low=D("48900"), high=D("49600"),
                                           last=D("49500"), now_ms=T + 2)
    assert (order.status, trade.price, trade.is_maker, trade.commission) == ("FILLED", D("49000.00"), True,
                                                                               D("0.00010000"))
    assert after.balances == {"USDT": (D("5100.00"), D(0)), "BTC": (D("0.09990000"), D(0))}
    assert after.open_orders() == []


def test_a_marketable_limit_takes_at_the_last_price_and_ioc_fok_expire_instead_of_resting(spec):
    taken = place(book(), spec, side="BUY", type="LIMIT", quantity="0.10000", price="51000.00", time_in_force="GTC")
    assert taken.trades[0].price == D("50000.00") and not taken.trades[0].is_maker
    assert taken.book.balances["USDT"] == (D("5000.00"), D(0))  # the lock at 51000 released to the fill
    for tif in ("IOC", "FOK"):
        expired = place(book(), spec, side="BUY", type="LIMIT", quantity="0.10000", price="49000.00",
                        time_in_force=tif)
        assert expired.order.status == "EXPIRED" and expired.book.balances["USDT"] == (D("10000"), D(0))


def test_a_limit_maker_that_would_take_is_rejected(spec):
    rejected(-2010, "Order would immediately match and take.", book(), spec, side="BUY", type="LIMIT_MAKER",
             quantity="0.10000", price="50000.00")
    resting = place(book(), spec, side="BUY", type="LIMIT_MAKER", quantity="0.10000", price="49999.99")
    assert resting.order.status == "NEW"


def test_a_stop_loss_sell_triggers_on_the_low_and_fills_at_its_stop_or_the_gap(spec):
    rejected(-2010, "Order would trigger immediately.", book(btc="1"), spec, side="SELL", type="STOP_LOSS",
             quantity="0.50000", stop_price="50000.00")
    placed = place(book(btc="1"), spec, side="SELL", type="STOP_LOSS", quantity="0.50000", stop_price="49000.00")
    assert placed.order.working_time == -1 and placed.book.balances["BTC"] == (D("0.5"), D("0.5"))
    _, [(order, trade)] = cross_orders(placed.book, "BTCUSDT", spec, FEES, low=D("48800"), high=D("49900"),
                                       last=D("49500"), now_ms=T + 1)
    assert (order.status, trade.price, trade.is_maker, order.working_time) == ("FILLED", D("49000.00"), False, T + 1)
    _, [(_, gapped)] = cross_orders(placed.book, "BTCUSDT", spec, FEES, low=D("47000"), high=D("48000"),
                                    last=D("47500"), now_ms=T + 1)
    assert gapped.price == D("47500")  # the whole range below the stop: filled at the price there was


def test_a_take_profit_limit_triggers_then_rests_as_a_limit_until_the_high_reaches_its_price(spec):
    placed = place(book(btc="1"), spec, side="SELL", type="TAKE_PROFIT_LIMIT", quantity="0.50000",
                   stop_price="51000.00", price="51500.00", time_in_force="GTC")
    triggered, [(order, trade)] = cross_orders(placed.book, "BTCUSDT", spec, FEES, low=D("50500"), high=D("51200"),
                                               last=D("51100"), now_ms=T + 1)
    assert trade is None and order.triggered and order.status == "NEW" and order.working_time == T + 1
    done, [(order, trade)] = cross_orders(triggered, "BTCUSDT", spec, FEES, low=D("51100"), high=D("51600"),
                                          last=D("51550"), now_ms=T + 2)
    assert (order.status, trade.price, trade.is_maker) == ("FILLED", D("51500.00"), True)
    assert done.balances["BTC"] == (D("0.5"), D(0))


def test_a_client_order_id_is_unique_among_open_orders_only(spec):
    resting = place(book(), spec, side="BUY", type="LIMIT", quantity="0.01000", price="49000.00",
                    time_in_force="GTC", cid="same")
    rejected(-2010, "Duplicate order sent.", resting.book, spec, side="BUY", type="MARKET", quantity="0.01000",
             cid="same")
    filled = place(book(), spec, side="BUY", type="MARKET", quantity="0.01000", cid="same")
    again = place(filled.book, spec, side="BUY", type="MARKET", quantity="0.01000", cid="same")  # filled: reusable
    assert again.order.order_id == filled.order.order_id + 1
    canceled_book, canceled = cancel_order(resting.book, resting.order.order_id, T + 1)
    assert canceled.status == "CANCELED" and canceled_book.balances["USDT"] == (D("10000"), D(0))
    assert place(canceled_book, spec, side="BUY", type="MARKET", quantity="0.01000", cid="same").order.status == "FILLED"
    with pytest.raises(BinanceAPIError) as err:
        cancel_order(canceled_book, resting.order.order_id, T + 2)  # finished
    assert (err.value.code, err.value.msg) == (-2011, "Unknown order sent.")


@pytest.mark.parametrize(("kw", "name"), [
    ({"price": "49000.005"}, "PRICE_FILTER"),           # off the 0.01 tick
    ({"quantity": "0.000015"}, "LOT_SIZE"),             # off the 0.00001 step
    ({"quantity": "0.00001"}, "NOTIONAL"),              # 0.49 USDT < 5
    ({"price": "9000.00"}, "PERCENT_PRICE_BY_SIDE"),    # a bid below 0.2 x the average price
])
def test_the_real_filters_refuse_with_their_name(spec, kw, name):
    params = {"side": "BUY", "type": "LIMIT", "quantity": "0.10000", "price": "49000.00", "time_in_force": "GTC", **kw}
    rejected(-1013, f"Filter failure: {name}", book(), spec, **params)


def test_the_symbol_s_order_types_are_enforced_and_parameters_checked(real_spec, spec):
    rejected(-1013, "Order type not supported for this symbol.", book(btc="1"), real_spec, side="SELL",
             type="STOP_LOSS", quantity="0.5", stop_price="49000.00")  # BTCUSDT lists only the _LIMIT stops
    rejected(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.", book(), spec,
             side="BUY", type="LIMIT", quantity="0.1", price="49000.00")
    rejected(-1116, "Invalid orderType.", book(), spec, side="BUY", type="TRAILING", quantity="0.1")


def _resting_sells(spec):
    """An account with two resting sells above 50000: 50020 (order 1) and 50040 (order 2)."""
    b = place(book(btc="1"), spec, side="SELL", type="LIMIT", quantity="0.20000", price="50040.00",
              time_in_force="GTC", cid="far").book
    return place(b, spec, side="SELL", type="LIMIT_MAKER", quantity="0.10000", price="50020.00", cid="near").book


def test_stp_expire_maker_by_default_expires_the_own_resting_orders_a_market_order_reaches(stp_spec):
    b = _resting_sells(stp_spec)
    # slippage 10 bps: the market buy fills at 50050, reaching both own sells
    placed = place(b, stp_spec, side="BUY", type="MARKET", quantity="0.05000", cid="buy")
    assert placed.order.status == "FILLED" and placed.order.stp_mode == "EXPIRE_MAKER"
    assert [(o.client_order_id, o.status, o.prevented_match_id, o.prevented_quantity) for o in placed.expired] == [
        ("near", "EXPIRED_IN_MATCH", 1, D("0.05")), ("far", "EXPIRED_IN_MATCH", 2, D("0.05"))]  # price order
    assert placed.book.balances["BTC"] == (D("1") + D("0.05") - D("0.0001"), D(0))  # both locks released
    assert placed.book.next_prevented_match_id == 3 and not placed.book.open_orders()


def test_stp_expire_taker_and_both_and_none(stp_spec):
    b = _resting_sells(stp_spec)
    taker = place(b, stp_spec, side="BUY", type="MARKET", quantity="0.05000", cid="buy", stp_mode="EXPIRE_TAKER")
    assert (taker.order.status, taker.trades, taker.expired) == ("EXPIRED_IN_MATCH", (), ())
    assert taker.order.prevented_match_id == 1 and taker.book.balances["USDT"] == (D("10000"), D(0))
    assert len(taker.book.open_orders()) == 2
    both = place(b, stp_spec, side="BUY", type="LIMIT", quantity="0.05000", price="50030.00", time_in_force="GTC",
                 cid="buy", stp_mode="EXPIRE_BOTH")  # reaches only the 50020 sell
    assert both.order.status == "EXPIRED_IN_MATCH" and [o.client_order_id for o in both.expired] == ["near"]
    assert both.order.prevented_match_id == both.expired[0].prevented_match_id == 1
    assert [o.client_order_id for o in both.book.open_orders()] == ["far"]
    assert both.book.balances["USDT"] == (D("10000"), D(0)) and both.book.balances["BTC"] == (D("0.8"), D("0.2"))
    none = place(b, stp_spec, side="BUY", type="MARKET", quantity="0.05000", cid="buy", stp_mode="NONE")
    assert none.order.status == "FILLED" and not none.expired and len(none.book.open_orders()) == 2
    away = place(b, stp_spec, side="BUY", type="LIMIT", quantity="0.05000", price="50010.00", time_in_force="GTC",
                 cid="buy")  # marketable (last 50000) but short of the own sells
    assert away.order.status == "FILLED" and not away.expired


def test_stp_modes_are_checked_against_the_symbol(spec, stp_spec):
    rejected(-2010, "This symbol does not allow the specified self-trade prevention mode.", book(),
             replace(spec, allowed_stp=frozenset({"NONE"})), side="BUY", type="MARKET", quantity="0.01000",
             stp_mode="EXPIRE_MAKER")
    rejected(-1100, "Illegal characters found in parameter 'selfTradePreventionMode'; legal range is "
             "'NONE|EXPIRE_TAKER|EXPIRE_MAKER|EXPIRE_BOTH'.", book(), stp_spec, side="BUY", type="MARKET",
             quantity="0.01000", stp_mode="DECREMENT")


def test_max_num_orders_and_max_num_algo_orders_cap_the_open_orders_of_a_symbol(real_spec, spec):
    assert real_spec.filters["MAX_NUM_ORDERS"]["maxNumOrders"] == 200  # the recorded BTCUSDT entry
    capped = replace(spec, filters={**spec.filters, "MAX_NUM_ORDERS": {"filterType": "MAX_NUM_ORDERS",
                                                                         "maxNumOrders": 3}})
    b = book(btc="1")
    for n in range(2):  # two stop-loss-limits (the recorded MAX_NUM_ALGO_ORDERS is 5) and a limit
        b = place(b, capped, side="SELL", type="STOP_LOSS_LIMIT", quantity="0.01000", price="40000.00",
                  stop_price="40100.00", time_in_force="GTC", cid=f"s{n}").book
    b = place(b, capped, side="BUY", type="LIMIT", quantity="0.01000", price="40000.00", time_in_force="GTC").book
    rejected(-1013, "Filter failure: MAX_NUM_ORDERS", b, capped, side="BUY", type="MARKET", quantity="0.01000",
             cid="m")
    assert place(b, capped, symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.01000", cid="m").order
    b = book(btc="1")
    for n in range(5):
        b = place(b, spec, side="SELL", type="STOP_LOSS_LIMIT", quantity="0.01000", price="40000.00",
                  stop_price="40100.00", time_in_force="GTC", cid=f"s{n}").book
    rejected(-1013, "Filter failure: MAX_NUM_ALGO_ORDERS", b, spec, side="SELL", type="TAKE_PROFIT_LIMIT",
             quantity="0.01000", price="60000.00", stop_price="59900.00", time_in_force="GTC", cid="t")
    assert place(b, spec, side="SELL", type="LIMIT", quantity="0.01000", price="60000.00", time_in_force="GTC",
                 cid="l").order.status == "NEW"  # a limit order is no algo order


def _totals(b: Book) -> dict[str, D]:
    return {a: f + lk for a, (f, lk) in b.balances.items()}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(
    st.sampled_from(["MARKET", "LIMIT", "LIMIT_MAKER", "STOP_LOSS", "TAKE_PROFIT", "STOP_LOSS_LIMIT",
                     "TAKE_PROFIT_LIMIT", "CROSS", "CANCEL", "OCO"]),
    st.sampled_from(["BUY", "SELL"]),
    st.integers(1, 40),           # quantity in 0.001 BTC
    st.integers(-300, 300),       # price offset from last, in 10 USDT
    st.integers(-300, 300),       # stop offset / price move, in 10 USDT
), max_size=25))
@example(steps=[("OCO", "SELL", 20, 3, 3), ("OCO", "BUY", 10, 2, 2), ("CROSS", "BUY", 1, 0, 5),
                ("CROSS", "BUY", 1, 0, -12), ("CANCEL", "BUY", 1, 0, 0)])
@example(steps=[("LIMIT", "BUY", 10, -5, 0), ("STOP_LOSS", "SELL", 10, 0, -20), ("CROSS", "BUY", 1, 0, -30),
                ("MARKET", "SELL", 5, 0, 0), ("TAKE_PROFIT_LIMIT", "SELL", 5, 30, 10), ("CROSS", "BUY", 1, 0, 40)])
def test_no_sequence_of_orders_and_prices_creates_or_loses_funds(stp_spec, steps):
    spec = stp_spec
    b = book(usdt="20000", btc="0.5")
    start = _totals(b)
    last = D("50000.00")
    bought = sold = paid_quote = got_quote = fee_base = fee_quote = D(0)
    for n, (kind, side, qty, off, stop_off) in enumerate(steps):
        trades = []
        try:
            if kind == "CROSS":
                new_last = max(D("1000.00"), last + D(10) * stop_off)
                low, high = min(last, new_last) - D(20), max(last, new_last) + D(20)
                b, changed = cross_orders(b, "BTCUSDT", spec, FEES, low=low, high=high, last=new_last, now_ms=T + n)
                last = new_last
                trades = [t for _, t in changed if t is not None]
            elif kind == "OCO":  # a take-profit and a stop-loss leg straddling the last price
                up, down = last + D(10) * (abs(off) + 1), last - D(10) * (abs(stop_off) + 1)
                take, stop = (("LIMIT_MAKER", up, None), ("STOP_LOSS_LIMIT", down - 10, down)) if side == "SELL" \
                    else (("LIMIT_MAKER", down, None), ("STOP_LOSS_LIMIT", up + 10, up))
                legs = [Leg(k, f"c{n}{k}", price=p, stop_price=sp, time_in_force="GTC" if sp else None)
                        for k, p, sp in (take, stop)]
                above, below = (legs[0], legs[1]) if side == "SELL" else (legs[1], legs[0])
                b = place_oco(b, NewOco("BTCUSDT", side, D(qty) / 1000, f"l{n}", above, below), spec, FEES,
                              last=last, avg_price=last, now_ms=T + n).book
            elif kind == "CANCEL":
                if b.open_orders():
                    b, _ = cancel_order(b, b.open_orders()[0].order_id, T + n)
            else:
                params = {"quantity": str(D(qty) / 1000)}
                if kind != "MARKET":
                    params["price"] = str(last + D(10) * off)
                if "STOP" in kind or "PROFIT" in kind:
                    params["stop_price"] = str(last + D(10) * stop_off)
                    if kind in ("STOP_LOSS", "TAKE_PROFIT"):
                        params.pop("price")
                if kind in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
                    params["time_in_force"] = "GTC"
                stp = [None, "NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"][n % 5]
                placed = place(b, spec, last=str(last), side=side, type=kind, cid=f"c{n}", stp_mode=stp, **params)
                b, trades = placed.book, list(placed.trades)
        except BinanceAPIError as exc:
            assert exc.code in (-1013, -2010, -2011)
            continue
        for t in trades:
            if t.side == "BUY":
                bought += t.qty
                paid_quote += t.quote_qty
                fee_base += t.commission
            else:
                sold += t.qty
                got_quote += t.quote_qty
                fee_quote += t.commission
        for asset, (free, locked) in b.balances.items():
            assert free >= 0 and locked >= 0, (asset, free, locked)
        locks = {"USDT": D(0), "BTC": D(0)}
        for o in b.open_orders():
            locks[o.locked_asset] += o.locked
        assert {a: lk for a, (_, lk) in b.balances.items()} == locks  # locked = what open orders hold
    totals = _totals(b)
    if steps and steps[0] == ("LIMIT", "BUY", 10, -5, 0):  # the explicit example: its orders did fill
        assert bought and sold and fee_base and fee_quote
    assert totals["BTC"] == start["BTC"] + bought - sold - fee_base
    assert totals["USDT"] == start["USDT"] - paid_quote + got_quote - fee_quote
