"""MarketStore: ring buffer behaviour, staleness, close listeners, prices, backfill merge."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

import machine.store as store_pkg
from machine.market import KlineEvent, TickerEvent
from machine.store import InvalidKlines, MarketStore, StoreClosed, UnknownInterval, UnknownSymbol
from sandbox import MarketSpec
from sandbox._segment import KlineSegment, TickerSegment

MIN = 60_000
T0 = 1_620_000_000_000 - (1_620_000_000_000 % MIN)


def row(t: int, close: float, volume: float = 1.0) -> tuple[float, ...]:
    """A candle whose columns are all derived from (t, close, volume)."""
    return (float(t), close - 1, close + 2, close - 2, close, volume, float(t + MIN - 1),
            volume * close, 7.0, volume / 2, volume * close / 2)


def kev(t: int, close: str, *, closed: bool = False, e: int | None = None, symbol: str = "BTCUSDT",
        interval: str = "1m", volume: float = 1.0) -> KlineEvent:
    return KlineEvent(symbol=symbol, interval=interval, row=row(t, float(close), volume), closed=closed,
                      event_time_ms=e if e is not None else t + (MIN - 1 if closed else 1000),
                      close_price=Decimal(close))


def tev(price: str, e: int, symbol: str = "BTCUSDT") -> TickerEvent:
    p = float(price)
    return TickerEvent(symbol=symbol, values=(p, p - 1, p + 1, p - 2, 10.0, 10.0 * p, 1.0, 0.5, float(e)),
                       last_price=Decimal(price), event_time_ms=e)


@pytest.fixture
def store():
    s = MarketStore(["BTCUSDT", "ethusdt", "BTCUSDT"], limit=5)
    yield s
    s.close()


def test_exports():
    for name in store_pkg.__all__:
        assert getattr(store_pkg, name) is not None


def test_universe_is_fixed_and_unknown_symbols_are_clear_errors(store):
    assert store.symbols == ("BTCUSDT", "ETHUSDT")
    assert store.slot("ETHUSDT") == 1 and store.slot("btcusdt") == 0
    with pytest.raises(UnknownSymbol, match="DOGEUSDT"):
        store.slot("DOGEUSDT")
    with pytest.raises(UnknownSymbol):
        store.apply_kline(kev(T0, "1", symbol="DOGEUSDT"))
    with pytest.raises(UnknownInterval):
        store.ensure_interval("2m")
    with pytest.raises(UnknownInterval):
        store.klines("BTCUSDT", "7m")
    assert store.klines("BTCUSDT", "1h").shape == (11, 0)


def test_forming_candle_is_updated_in_place_and_new_open_time_appends(store):
    assert store.apply_kline(kev(T0, "100", e=T0 + 1))
    assert store.apply_kline(kev(T0, "101.5", e=T0 + 2))
    k = store.klines("BTCUSDT", "1m")
    assert k.shape == (11, 1)
    assert k[:, 0].tolist() == list(row(T0, 101.5))
    assert store.newest_kline("BTCUSDT", "1m") == (T0, False)
    assert store.apply_kline(kev(T0 + MIN, "102", e=T0 + MIN + 5))
    k = store.klines("BTCUSDT", "1m")
    assert k[0].tolist() == [T0, T0 + MIN]
    assert k[4].tolist() == [101.5, 102.0]
    # other symbols untouched
    assert store.klines("ETHUSDT", "1m").shape == (11, 0)


def test_ring_wraps_at_twice_the_limit_keeping_the_newest_in_order(store):
    for i in range(23):
        t = T0 + i * MIN
        store.apply_kline(kev(t, str(100 + i), e=t + 10))
        store.apply_kline(kev(t, str(100.5 + i), closed=True, e=t + MIN - 1))
        k = store.klines("BTCUSDT", "1m")
        want = [T0 + j * MIN for j in range(max(0, i - 4), i + 1)]
        assert k[0].tolist() == want
        assert k[4].tolist() == [100.5 + (t - T0) // MIN for t in want]
        assert np.array_equal(k, np.array([row(t, 100.5 + (t - T0) // MIN) for t in want]).T)
    assert store.stats().kline_updates == 46


def test_stale_updates_are_dropped_and_counted(store):
    store.apply_kline(kev(T0 + MIN, "100", e=T0 + MIN + 10))
    before = store.klines("BTCUSDT", "1m")
    assert not store.apply_kline(kev(T0, "99", e=T0 + MIN + 20))  # older open time
    assert not store.apply_kline(kev(T0 + MIN, "98", e=T0 + MIN + 5))  # older event time
    assert np.array_equal(store.klines("BTCUSDT", "1m"), before)
    store.apply_kline(kev(T0 + MIN, "101", closed=True, e=T0 + 2 * MIN - 1))
    # a late forming update of a candle already stored closed (e.g. a second connection)
    assert not store.apply_kline(kev(T0 + MIN, "97", e=T0 + 2 * MIN - 1))
    assert store.klines("BTCUSDT", "1m")[4].tolist() == [101.0]
    assert store.stats().stale_klines == 3


def test_close_listener_fires_once_per_closed_candle(store):
    calls: list[tuple[str, str, int]] = []
    remove = store.add_close_listener(lambda *a: calls.append(a))

    def broken(*_a):
        raise RuntimeError("listener bug")

    store.add_close_listener(broken)
    store.apply_kline(kev(T0, "1"))
    assert calls == []
    store.apply_kline(kev(T0, "2", closed=True))
    store.apply_kline(kev(T0, "2", closed=True))  # duplicate close (reconnect overlap)
    store.apply_kline(kev(T0, "2", closed=True, symbol="ETHUSDT"))
    store.apply_kline(kev(T0, "2", closed=True, interval="5m", e=T0 + 5 * MIN - 1))
    store.apply_kline(kev(T0 + MIN, "3"))
    store.apply_kline(kev(T0 + MIN, "4", closed=True))
    assert calls == [("BTCUSDT", "1m", T0), ("ETHUSDT", "1m", T0), ("BTCUSDT", "5m", T0),
                     ("BTCUSDT", "1m", T0 + MIN)]
    assert store.stats().listener_errors == 4 and store.stats().closed_klines == 4
    remove()
    store.apply_kline(kev(T0 + 2 * MIN, "5", closed=True))
    assert len(calls) == 4


def test_closed_only_leaves_the_forming_candle_out(store):
    store.apply_kline(kev(T0, "1", closed=True))
    store.apply_kline(kev(T0 + MIN, "2"))
    assert store.klines("BTCUSDT", "1m", closed_only=True)[0].tolist() == [T0]
    store.apply_kline(kev(T0 + MIN, "2", closed=True))
    assert store.klines("BTCUSDT", "1m", closed_only=True)[0].tolist() == [T0, T0 + MIN]


def test_last_price_is_the_exact_wire_decimal_of_the_newest_event(store):
    assert store.last_price("BTCUSDT") is None
    store.apply_kline(kev(T0, "0.00001234", e=T0 + 100))
    assert store.last_price("BTCUSDT") == Decimal("0.00001234")
    assert str(store.last_price("BTCUSDT")) == "0.00001234"
    store.apply_ticker(tev("56637.56000000", T0 + 200))
    assert str(store.last_price("BTCUSDT")) == "56637.56000000"
    assert not store.apply_ticker(tev("1.0", T0 + 150))  # older ticker dropped
    store.apply_kline(kev(T0, "0.1", e=T0 + 120))  # older than the ticker: candle updated, price kept
    assert str(store.last_price("BTCUSDT")) == "56637.56000000"
    t = store.ticker("BTCUSDT")
    assert t["symbol"] == "BTCUSDT" and t["last_price"] == 56637.56 and t["event_time"] == T0 + 200
    assert store.ticker("ETHUSDT") is None


def test_load_replaces_the_window_and_keeps_newer_stream_candles(store):
    store.apply_kline(kev(T0 + 9 * MIN, "109", closed=True))
    store.apply_kline(kev(T0 + 10 * MIN, "110.5"))
    rest = np.array([row(T0 + i * MIN, 100 + i) for i in range(10)])  # up to T0+9min, which REST has forming
    store.load("BTCUSDT", "1m", rest, last_closed=False)
    k = store.klines("BTCUSDT", "1m")
    assert k[0].tolist() == [T0 + i * MIN for i in range(6, 11)]
    assert k[4].tolist() == [106.0, 107.0, 108.0, 109.0, 110.5]  # stream's closed 109 and forming 110.5 win
    assert store.newest_kline("BTCUSDT", "1m") == (T0 + 10 * MIN, False)
    # a closed REST candle is not overwritten by an older forming stream update of it
    store.apply_kline(kev(T0 + 11 * MIN, "111", e=T0 + 11 * MIN + 5))
    rest2 = np.array([row(T0 + i * MIN, 200 + i) for i in range(12)])
    store.load("BTCUSDT", "1m", rest2, last_closed=True)
    assert store.klines("BTCUSDT", "1m")[4].tolist() == [207.0, 208.0, 209.0, 210.0, 211.0]
    assert store.newest_kline("BTCUSDT", "1m") == (T0 + 11 * MIN, True)
    # last price from the backfill only while no stream price exists
    store.load("ETHUSDT", "1m", rest[:3], last_closed=False)
    assert store.last_price("ETHUSDT") == Decimal("102.0")
    assert store.last_price("BTCUSDT") == Decimal("111")


def test_load_rejects_bad_rows_without_writing(store):
    store.apply_kline(kev(T0, "1"))
    before = store.klines("BTCUSDT", "1m")
    with pytest.raises(InvalidKlines):
        store.load("BTCUSDT", "1m", np.zeros((3, 6)), last_closed=True)
    with pytest.raises(InvalidKlines):
        store.load("BTCUSDT", "1m", np.array([row(T0 + MIN, 1), row(T0, 1)]), last_closed=True)
    assert np.array_equal(store.klines("BTCUSDT", "1m"), before)


def test_market_spec_lets_a_reader_attach(store):
    store.apply_kline(kev(T0, "5", closed=True))
    store.apply_ticker(tev("5", T0 + 10))
    spec = store.market_spec()
    assert isinstance(spec, MarketSpec) and set(spec.klines) == {"1m"}
    seg = KlineSegment.attach(spec.klines["1m"])
    tseg = TickerSegment.attach(spec.tickers)
    try:
        assert np.array_equal(seg.read(store.slot("BTCUSDT")), store.klines("BTCUSDT", "1m"))
        assert tseg.read(0)[0] == 5.0
    finally:
        seg.close()
        tseg.close()


def test_close_is_idempotent_and_final():
    s = MarketStore(["BTCUSDT"], limit=3)
    s.apply_kline(kev(T0, "1"))
    spec = s.market_spec()
    s.close()
    s.close()
    with pytest.raises(StoreClosed):
        s.klines("BTCUSDT", "1m")
    with pytest.raises(StoreClosed):
        s.apply_kline(kev(T0, "1"))
    with pytest.raises(FileNotFoundError):
        KlineSegment.attach(spec.klines["1m"])


def test_memory_formula_matches_the_segment():
    from sandbox._segment import SLACK

    assert KlineSegment.nbytes(400, 500) == 400 * 4 * 8 + 400 * 11 * (500 + SLACK) * 8
