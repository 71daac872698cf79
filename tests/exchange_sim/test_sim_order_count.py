"""The unfilled order count: fixed windows of wall time, one per placed order (two per OCO),
one off per first fill and never below zero, 429 -1015 over a limit."""

from __future__ import annotations

import pytest

from exchange_sim._errors import BinanceAPIError
from exchange_sim._order_count import OrderLimit, UnfilledOrderCount


def test_windows_are_fixed_fills_take_one_off_and_the_count_never_goes_below_zero():
    wall = [1_800_000_007.0]  # 7 s into a 10 s window
    count = UnfilledOrderCount([OrderLimit("SECOND", 10, 3), OrderLimit("DAY", 1, 5)], clock=lambda: wall[0])
    count.placed("a", 2)  # an OCO list
    count.placed("a")
    assert count.headers("a") == {"X-MBX-ORDER-COUNT-10S": "3", "X-MBX-ORDER-COUNT-1D": "3"}
    assert count.headers("b") == {"X-MBX-ORDER-COUNT-10S": "0", "X-MBX-ORDER-COUNT-1D": "0"}  # per account
    with pytest.raises(BinanceAPIError) as err:
        count.check("a")
    assert (err.value.code, err.value.status, err.value.msg) == (
        -1015, 429, "Too many new orders; current limit is 3 orders per 10 SECOND.")
    count.filled("a")
    count.check("a")  # a fill made room
    wall[0] += 3  # the next window: a fixed window, not 10 s after each order
    assert count.headers("a") == {"X-MBX-ORDER-COUNT-10S": "0", "X-MBX-ORDER-COUNT-1D": "2"}
    count.filled("a")
    count.filled("a")
    count.filled("a")
    assert [r["count"] for r in count.report("a")] == [0, 0]
    count.placed("a", 3)
    wall[0] += 10
    count.placed("a", 2)  # 2 of 3 in this window, 5 of 5 today
    with pytest.raises(BinanceAPIError) as err:
        count.check("a")
    assert err.value.msg == "Too many new orders; current limit is 5 orders per 1 DAY."


def test_the_limits_come_from_exchange_info_and_default_to_binance_s():
    limits = OrderLimit.from_rate_limits([
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50}])
    assert [(lim.header, lim.seconds, lim.limit) for lim in limits] == [("X-MBX-ORDER-COUNT-10S", 10, 50)]
    assert [lim.limit for lim in OrderLimit.from_rate_limits([])] == [100, 200_000]
