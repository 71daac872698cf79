from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machine.accounts import (
    close_fill_changes,
    close_quantity,
    commission,
    commission_asset,
    equity,
    open_fill_changes,
    open_reservation,
    realised_pnl,
)
from machine.money import notional, quantity_for_notional, round_to_tick, sl_tp_from_pct


def test_fee_is_rate_of_notional_quantized():
    assert notional(D("56637.56"), D("0.01765")) == D("999.65293400")
    assert commission("SELL", D("56637.56"), D("0.01765"), D("0.001")) == D("0.99965293")


def test_commission_is_charged_in_the_asset_received():
    assert commission("BUY", D("50000"), D("0.02"), D("0.001")) == D("0.00002")  # base
    assert commission("SELL", D("50000"), D("0.02"), D("0.001")) == D("1.00000000")  # quote
    assert commission_asset("BUY", "BTC", "USDT") == "BTC" and commission_asset("SELL", "BTC", "USDT") == "USDT"
    with pytest.raises(ValueError):
        commission("HOLD", D("1"), D("1"), D("0"))


def test_quantity_rounds_down_to_step_and_respects_min_qty():
    assert quantity_for_notional(D("1000"), D("56637.56"), D("0.00001")) == D("0.01765")
    assert quantity_for_notional(D("1"), D("56637.56"), D("0.001"), D("0.001")) == D(0)
    assert quantity_for_notional(D("100"), D("0"), D("0.001")) == D(0)


def test_levels_long_and_short_on_tick():
    sl, tp = sl_tp_from_pct("long", D("100.00"), D("2"), D("4"), D("0.01"))
    assert (sl, tp) == (D("98.00"), D("104.00"))
    sl, tp = sl_tp_from_pct("short", D("0.123456"), D("1"), D("2"), D("0.0001"))
    assert (sl, tp) == (D("0.1247"), D("0.1210"))
    assert round_to_tick(D("1.23456"), D("0.05")) == D("1.25")


def test_equity_values_every_asset_and_counts_a_debt():
    balances = {"USDT": (D("5000"), D("9995")), "BTC": (D("-0.1"), D(0)), "DOGE": (D(0), D(0))}
    assert equity(balances, "USDT", {"BTC": D("50000")}.get) == D("9995")
    with pytest.raises(LookupError, match="BTC"):
        equity(balances, "USDT", lambda asset: None)


@given(
    entry=st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4),
    exit_=st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4),
    size=st.decimals(min_value=D("0.001"), max_value=D("1000"), places=3),
    step=st.sampled_from([D("0.001"), D("0.01"), D("1")]),
    side=st.sampled_from(["long", "short"]),
)
def test_books_follow_the_fills_and_pnl_is_the_quote_flow(entry, exit_, size, step, side):
    """Every asset's total = start + bought - sold - commissions in it; nothing stays locked;
    the realised PnL is the quote flow of the two fills; a short's debt is repaid."""
    rate = D("0.001")
    size = max(step, (size / step).to_integral_value() * step)
    open_side, close_side = ("BUY", "SELL") if side == "long" else ("SELL", "BUY")
    reserved = open_reservation(entry, size)
    f_open = commission(open_side, entry, size, rate)
    changes, held, locked = open_fill_changes(side, "B", "Q", entry, size, f_open, reserved)
    books = {"Q": [D(10**9) - reserved, reserved], "B": [D(0), D(0)]}
    for c in changes:
        books[c.asset][0] += c.free
        books[c.asset][1] += c.locked
    qty = close_quantity(side, held, rate, step)
    f_close = commission(close_side, exit_, qty, rate)
    for c in close_fill_changes(side, "B", "Q", exit_, qty, f_close, locked):
        books[c.asset][0] += c.free
        books[c.asset][1] += c.locked
    assert books["Q"][1] == 0 and books["B"][1] == 0
    fills = [(open_side, entry, size, f_open), (close_side, exit_, qty, f_close)]
    base = sum((q if s == "BUY" else -q) - (f if s == "BUY" else 0) for s, _, q, f in fills)
    quote = sum((-notional(p, q) if s == "BUY" else notional(p, q)) - (f if s == "SELL" else 0) for s, p, q, f in fills)
    assert books["B"][0] == base and books["Q"][0] == D(10**9) + quote
    assert D(0) <= books["B"][0] < step + size * rate  # only dust is left (a short is repaid)
    pnl, _ = realised_pnl(side, entry, size, f_open, exit_, qty, f_close)
    assert pnl == quote


# ---------------------------------------------------------------- fills and exchange rules (part 3)
from machine.execution import SymbolRules  # noqa: E402
from machine.execution._fill_rules import market_fill_price, stop_loss_fill_price, take_profit_fill_price  # noqa: E402
from machine.execution._rules import (  # noqa: E402
    level_problem,
    market_quantity_problem,
    notional_problem,
    round_level,
)

BTC = SymbolRules(D("0.01"), D("0.00001"), D("0.00001"), D("5"), "BTC", "USDT", D("0.01"), D("1000000"), D("9000"),
                  D("0"), D("168.82682004"), D("0"), D("9000000"), True, False, 5, (D(5), D("0.2"), D(5), D("0.2")))


def test_market_orders_fill_against_the_taker_on_the_tick():
    assert market_fill_price("BUY", D("50000.00"), D("2"), D("0.01")) == D("50010.00")
    assert market_fill_price("SELL", D("50000.00"), D("2"), D("0.01")) == D("49990.00")
    assert market_fill_price("BUY", D("0.31234"), D("5"), D("0.00001")) == D("0.31250")  # 0.312496... rounded up
    assert market_fill_price("SELL", D("0.31234"), D("5"), D("0.00001")) == D("0.31218")  # 0.312183... rounded down
    assert market_fill_price("BUY", D("100"), D("0"), D("0.01")) == D("100.00")


def test_take_profit_fills_at_its_level_or_better_on_a_gap():
    assert take_profit_fill_price("long", D("110"), D("108"), D("111")) == D("110")
    assert take_profit_fill_price("long", D("110"), D("112"), D("113")) == D("112")  # gapped up through it
    assert take_profit_fill_price("short", D("90"), D("89"), D("92")) == D("90")
    assert take_profit_fill_price("short", D("90"), D("85"), D("88")) == D("88")


def test_stop_loss_fills_at_the_worse_of_its_level_and_the_trigger_price():
    assert stop_loss_fill_price("long", D("95"), D("99.8")) == D("95")  # a wick: the stop sold at its level
    assert stop_loss_fill_price("long", D("95"), D("93.1")) == D("93.1")  # gapped down: the price then
    assert stop_loss_fill_price("short", D("105"), D("104")) == D("105")
    assert stop_loss_fill_price("short", D("105"), D("107")) == D("107")


def test_levels_round_towards_the_entry():
    assert round_level("long", D("48999.995"), D("50000"), D("0.01")) == D("49000.00")  # stop below: up
    assert round_level("long", D("51000.019"), D("50000"), D("0.01")) == D("51000.01")  # target above: down
    assert round_level("short", D("51000.011"), D("50000"), D("0.01")) == D("51000.01")
    assert round_level("short", D("48999.991"), D("50000"), D("0.01")) == D("49000.00")


def test_level_problems():
    avg = D("50000")
    assert level_problem("long", "stop_loss", D("49000"), D("50000"), avg, BTC) is None
    assert "not below the entry" in level_problem("long", "stop_loss", D("50001"), D("50000"), avg, BTC)
    assert "not above the entry" in level_problem("long", "take_profit", D("49000"), D("50000"), avg, BTC)
    assert "not above the entry" in level_problem("short", "stop_loss", D("49000"), D("50000"), avg, BTC)
    assert "PERCENT_PRICE_BY_SIDE" in level_problem("long", "take_profit", D("260000"), D("50000"), avg, BTC)
    assert "minimum price" in level_problem("long", "stop_loss", D("0.001"), D("50000"), D("0.004"), BTC)


def test_market_quantity_and_notional_problems():
    assert market_quantity_problem(D("0.02"), BTC) is None
    assert "LOT_SIZE minQty" in market_quantity_problem(D("0.000001"), BTC)
    assert "stepSize" in market_quantity_problem(D("0.000015"), BTC)
    assert "MARKET_LOT_SIZE maxQty" in market_quantity_problem(D("200"), BTC)
    assert notional_problem(D("0.0002"), D("50000"), BTC) is None
    assert "below the exchange minimum" in notional_problem(D("0.00009"), D("50000"), BTC)  # 4.5 < 5 at avgPrice
