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
from machine.money import fee, notional, quantity_for_notional, round_to_tick, sl_tp_from_pct


def test_fee_is_rate_of_notional_quantized():
    assert notional(D("56637.56"), D("0.01765")) == D("999.65293400")
    assert fee(D("56637.56"), D("0.01765"), D("0.001")) == D("0.99965293")


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
