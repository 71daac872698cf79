from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machine.money import (
    balance_delta,
    fee,
    notional,
    position_pnl,
    quantity_for_notional,
    round_to_tick,
    sl_tp_from_pct,
)


def test_fee_is_rate_of_notional_quantized():
    assert notional(D("56637.56"), D("0.01765")) == D("999.65293400")
    assert fee(D("56637.56"), D("0.01765"), D("0.001")) == D("0.99965293")


def test_balance_delta_signs():
    assert balance_delta("BUY", D("10"), D("2"), D("0.02")) == D("-20.02")
    assert balance_delta("SELL", D("10"), D("2"), D("0.02")) == D("19.98")
    with pytest.raises(ValueError):
        balance_delta("HOLD", D("1"), D("1"), D("0"))


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


@given(
    entry=st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4),
    exit_=st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4),
    size=st.decimals(min_value=D("0.001"), max_value=D("1000"), places=3),
    side=st.sampled_from(["long", "short"]),
)
def test_pnl_equals_sum_of_balance_deltas(entry, exit_, size, side):
    rate = D("0.001")
    f_open, f_close = fee(entry, size, rate), fee(exit_, size, rate)
    open_side, close_side = ("BUY", "SELL") if side == "long" else ("SELL", "BUY")
    deltas = balance_delta(open_side, entry, size, f_open) + balance_delta(close_side, exit_, size, f_close)
    pnl, _ = position_pnl(side, entry, exit_, size, f_open + f_close)
    assert pnl == deltas
