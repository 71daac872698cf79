"""PositionMonitor: which price crosses which level, and what counts as an exit."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest

from machine.persistence import PositionRecord
from machine.positions import PositionMonitor


def position(side="long", sl=D("95"), tp=D("110")) -> PositionRecord:
    return PositionRecord(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "paper", "BTCUSDT", side, "open", D("100"),
                          D("1"), sl, tp, D(0))  # fmt: skip


@pytest.mark.asyncio
async def test_a_close_that_was_already_done_is_not_counted_as_an_exit():
    """Item 6: the monitor counted an exit when the close did nothing (its pending intent blocked it)."""
    prices = {"BTCUSDT": D("90")}
    results = [None, (D("-5"), D("-5"))]
    calls = []

    async def close(p, reason):
        calls.append(reason)
        return results[len(calls) - 1]

    monitor = PositionMonitor(prices.get, close)
    monitor.track(position())
    assert await monitor.check_once() == 0 and monitor.exits == 0 and calls == ["stop_loss"]
    assert await monitor.check_once() == 1 and monitor.exits == 1
