"""PositionMonitor and the store's price listener: every price reached counts, and what counts as an exit."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest

from machine.execution import Trigger
from machine.market._events import KlineEvent, TickerEvent
from machine.persistence import PositionRecord
from machine.positions import PositionMonitor, exit_trigger
from machine.store import MarketStore

T0 = 1_700_000_040_000


def position(side="long", sl=D("95"), tp=D("110")) -> PositionRecord:
    return PositionRecord(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "paper", "BTCUSDT", side, "open", D("100"),
                          D("1"), sl, tp, D(0))  # fmt: skip


def batched(close):
    """A monitor closer (batches) from a per-position ``close(position, reason, trigger)``."""
    async def close_many(batch):
        return [await close(p, t.kind, t) for p, t in batch]
    return close_many


def kline(open_time: int, o: float, h: float, low: float, c: float, e: int, closed: bool = False) -> KlineEvent:
    row = (float(open_time), o, h, low, c, 1.0, float(open_time + 59_999), c, 1.0, 0.0, 0.0)
    return KlineEvent("BTCUSDT", "1m", row, closed, e, D(repr(c)))


@pytest.mark.asyncio
async def test_a_close_that_was_already_done_is_not_counted_as_an_exit():
    """Item 6: the monitor counted an exit when the close did nothing (its pending intent blocked it)."""
    prices = {"BTCUSDT": D("90")}
    results = [None, (D("-5"), D("-5"))]
    calls = []

    async def close(p, reason, trigger):
        calls.append(reason)
        return results[len(calls) - 1]

    monitor = PositionMonitor(prices.get, batched(close))
    monitor.track(position())
    assert await monitor.check_once() == 0 and monitor.exits == 0 and calls == ["stop_loss"]
    assert await monitor.check_once() == 1 and monitor.exits == 1


def test_exit_trigger_on_the_range_reached():
    long, short = position("long"), position("short", sl=D("105"), tp=D("90"))
    assert exit_trigger(long, D("96"), D("109"), D("100")) is None
    assert exit_trigger(long, D("94.99"), D("101"), D("100")) == Trigger("stop_loss", D("95"), D("94.99"), D("101"), D("100"))
    assert exit_trigger(long, D("99"), D("110"), D("104")).kind == "take_profit"
    assert exit_trigger(long, D("94"), D("111"), D("100")).kind == "stop_loss"  # both in one update: conservative
    assert exit_trigger(short, D("95"), D("105"), D("100")).kind == "stop_loss"
    assert exit_trigger(short, D("90"), D("104"), D("95")).kind == "take_profit"


@pytest.mark.asyncio
async def test_a_wick_between_two_price_samples_closes_the_position():
    """Item 7: stops were checked on one sampled price per second; a candle's whole wick through a level,
    seen only as the forming candle's low, went unnoticed and the stop filled far beyond its level."""
    store = MarketStore(["BTCUSDT"], limit=10)
    exits: list[tuple[str, Trigger]] = []

    async def close(p, reason, trigger):
        exits.append((reason, trigger))
        return (D(0), D(0))

    monitor = PositionMonitor(store.last_price, batched(close))
    store.add_price_listener(monitor.on_price)
    store.apply_kline(kline(T0, 100, 101, 99, 100, T0 + 1000))
    monitor.track(position())  # opened mid-candle: the candle's earlier range must not count
    store.apply_kline(kline(T0, 100, 101, 99, 100.5, T0 + 2000))
    await monitor.stop()
    assert exits == []
    store.apply_kline(kline(T0, 100, 101, 94.5, 99.8, T0 + 3000))  # the low fell through 95 and came back
    await monitor.stop()
    assert exits == [("stop_loss", Trigger("stop_loss", D("95"), D("94.5"), D("99.8"), D("99.8")))]
    assert store.last_price("BTCUSDT") == D("99.8")  # the sampled price alone never crossed the level
    store.close()


def test_the_store_announces_only_new_extremes_of_a_candle_and_every_ticker():
    store = MarketStore(["BTCUSDT"], limit=10)
    seen = []
    store.add_price_listener(lambda *args: seen.append(args))
    store.apply_kline(kline(T0, 100, 102, 98, 101, T0 + 1000))  # a new candle: its whole range
    store.apply_kline(kline(T0, 100, 102, 98, 100, T0 + 2000))  # no new extreme: the close only
    store.apply_kline(kline(T0, 100, 103, 97, 99, T0 + 3000))  # both extremes moved
    store.apply_kline(kline(T0 + 60_000, 99, 99.5, 98.5, 99, T0 + 61_000))  # next candle
    store.apply_ticker(TickerEvent("BTCUSDT", (99.1,) * 8 + (float(T0 + 62_000),), D("99.1"), T0 + 62_000))
    assert seen == [
        ("BTCUSDT", D("98.0"), D("102.0"), D("101.0")),
        ("BTCUSDT", D("100.0"), D("100.0"), D("100.0")),
        ("BTCUSDT", D("97.0"), D("103.0"), D("99.0")),
        ("BTCUSDT", D("98.5"), D("99.5"), D("99.0")),
        ("BTCUSDT", D("99.1"), D("99.1"), D("99.1")),
    ]
    store.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(("low", "high", "kind"), [(99.0, 105.5, "stop_loss"), (89.5, 101.0, "take_profit")])
async def test_a_short_closes_on_a_high_through_its_stop_and_a_low_through_its_target(low, high, kind):
    """A short's stop-loss is above the price and its take-profit below: the monitor reads the sides
    the other way round from a long, through the store's price listener."""
    from machine.latency import LatencyBook

    store = MarketStore(["BTCUSDT"], limit=10)
    book = LatencyBook()
    exits: list[tuple[str, Trigger]] = []

    async def close(p, reason, trigger):
        exits.append((reason, trigger))
        return (D(0), D(0))

    monitor = PositionMonitor(store.last_price, batched(close), latency=book)
    store.add_price_listener(monitor.on_price)
    store.apply_kline(kline(T0, 100, 101, 99, 100, T0 + 1000))
    monitor.track(position("short", sl=D("105"), tp=D("90")))
    store.apply_kline(kline(T0, 100, 104.9, 90.1, 100, T0 + 2000))  # inside both levels: nothing
    await monitor.stop()
    assert exits == [] and book.gauges() == {}
    store.apply_kline(kline(T0, 100, high, low, 100, T0 + 3000))
    await monitor.stop()
    level = D("105") if kind == "stop_loss" else D("90")
    assert [(reason, t.kind, t.level) for reason, t in exits] == [(kind, kind, level)]
    gauges = book.gauges()  # the exit's latency, price update -> close done, is sampled under its kind
    assert set(gauges) == {f"latency_exit_{kind}_p50_ms", f"latency_exit_{kind}_p99_ms"}
    assert 0 <= gauges[f"latency_exit_{kind}_p99_ms"] < 5000
    store.close()


@pytest.mark.asyncio
async def test_every_position_one_update_crosses_is_closed_in_one_batch_and_a_failed_one_is_retried():
    store = MarketStore(["BTCUSDT"], limit=10)
    batches: list[list[str]] = []
    fail = {"b"}

    async def close_many(batch):
        batches.append([p.id.hex[:1] for p, _ in batch])
        return [RuntimeError("order rejected") if p.id.hex[:1] in fail else (D(0), D(0)) for p, _ in batch]

    now = [0.0]
    monitor = PositionMonitor(store.last_price, close_many, clock=lambda: now[0])
    store.add_price_listener(monitor.on_price)
    store.apply_kline(kline(T0, 100, 101, 99, 100, T0 + 1000))
    stops = {"a": D("97"), "b": D("96"), "c": D("90")}
    for name, sl in stops.items():
        monitor.track(PositionRecord(uuid.UUID(name * 32), uuid.UUID(int=1), uuid.uuid4(), "paper", "BTCUSDT",
                                     "long", "open", D("100"), D("1"), sl, D("200"), D(0)))  # fmt: skip
    store.apply_kline(kline(T0, 100, 101, 95, 99, T0 + 2000))  # through a's and b's stops, not c's
    await monitor.stop()
    assert [sorted(b) for b in batches] == [["a", "b"]] and monitor.exits == 1  # one batch; b failed
    assert sorted(p.id.hex[:1] for p in monitor.positions) == ["a", "b", "c"]  # closes forget via on_closed
    monitor.forget(uuid.UUID("a" * 32))
    fail.clear()
    store.apply_kline(kline(T0, 100, 101, 94, 99, T0 + 3000))  # a new low within b's backoff (1 s): not yet
    await monitor.stop()
    assert len(batches) == 1
    now[0] = 1.0
    store.apply_kline(kline(T0, 100, 101, 93, 99, T0 + 4000))  # after it: b is retried
    await monitor.stop()
    assert [sorted(b) for b in batches][1:] == [["b"]] and monitor.exits == 2
    store.close()
