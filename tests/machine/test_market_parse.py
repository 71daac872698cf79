"""Wire parsing: exchangeInfo (both shared snapshots), stream messages, REST klines."""

from __future__ import annotations

import json
from decimal import Decimal

import orjson
import pytest

import machine.market as market
from machine.market import (
    KlineEvent,
    MalformedMessage,
    TickerEvent,
    klines_to_array,
    parse_exchange_symbols,
    parse_stream_message,
    request_weight_limit,
)
from sandbox._segment import KLINE_COLUMNS, TICKER_FIELDS

KLINE = {
    "e": "kline", "E": 1672515782136, "s": "BNBBTC",
    "k": {"t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "f": 100, "L": 200,
          "o": "0.00100000", "c": "0.00200000", "h": "0.00250000", "l": "0.00150000", "v": "1000.5",
          "n": 100, "x": False, "q": "1.00000000", "V": "500", "Q": "0.500", "B": "123456"},
}  # fmt: skip
TICKER = {
    "e": "24hrTicker", "E": 1672515782136, "s": "BNBBTC", "p": "0.0015", "P": "250.00", "w": "0.0018",
    "x": "0.0009", "c": "0.00250000", "Q": "10", "b": "0.0024", "B": "10", "a": "0.0026", "A": "100",
    "o": "0.0010", "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18", "O": 0, "C": 86400000,
    "F": 0, "L": 18150, "n": 18151,
}  # fmt: skip


def envelope(data: object, stream: str = "bnbbtc@kline_1m") -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


def test_exports():
    for name in market.__all__:
        assert getattr(market, name) is not None


def test_exchange_info_2023_uses_the_notional_filter(binance_data):
    info = json.loads((binance_data / "exchangeInfo.json").read_text())
    symbols = parse_exchange_symbols(info, "USDT")
    spot = [s["symbol"] for s in info["symbols"] if s["status"] == "TRADING" and s["isSpotTradingAllowed"]]
    assert [s.symbol for s in symbols] == spot and len(spot) == 353
    assert "BTCUPUSDT" not in spot  # TRADING, but a leveraged token, not spot
    btc = next(s for s in symbols if s.symbol == "BTCUSDT")
    assert btc.base_asset == "BTC" and btc.quote_asset == "USDT"
    assert btc.tick_size == Decimal("0.01") and btc.step_size == Decimal("0.00001")
    assert btc.min_qty == Decimal("0.00001") and btc.min_notional == Decimal("5")
    assert all(isinstance(s.min_notional, Decimal) and s.min_notional > 0 for s in symbols)
    assert request_weight_limit(info) == 6000


def test_exchange_info_2022_uses_the_older_min_notional_filter(binance_data):
    info = json.loads((binance_data / "exchangeInfo-2022-11-28.json").read_text())
    symbols = parse_exchange_symbols(info, "USDT")
    assert len(symbols) == 326  # 342 TRADING, of which 16 are not spot (leveraged tokens)
    assert all(s.min_notional > 0 for s in symbols)
    btc = next(s for s in symbols if s.symbol == "BTCUSDT")
    assert btc.min_notional == Decimal("10")  # MIN_NOTIONAL.minNotional in 2022
    not_trading = {s["symbol"] for s in info["symbols"] if s["status"] != "TRADING"}
    assert not_trading and not not_trading & {s.symbol for s in symbols}
    assert request_weight_limit(info) == 1200


def test_exchange_info_filters_quote_asset_and_skips_unreadable_symbols(binance_data):
    info = json.loads((binance_data / "exchangeInfo.json").read_text())
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    eth_btc = dict(btc, symbol="ETHBTC", baseAsset="ETH", quoteAsset="BTC")
    broken = dict(btc, symbol="BADUSDT", filters=[f for f in btc["filters"] if f["filterType"] != "LOT_SIZE"])
    margin_only = dict(btc, symbol="MARGUSDT", isSpotTradingAllowed=False)
    doc = {"symbols": [btc, eth_btc, broken, margin_only]}
    assert [s.symbol for s in parse_exchange_symbols(doc, "USDT")] == ["BTCUSDT"]
    assert [s.symbol for s in parse_exchange_symbols(doc, "BTC")] == ["ETHBTC"]
    with pytest.raises(MalformedMessage):
        parse_exchange_symbols({"code": -1000}, "USDT")


def test_kline_message_parses_into_an_event_in_binance_column_order():
    event = parse_stream_message(envelope(KLINE))
    assert isinstance(event, KlineEvent)
    assert event.symbol == "BNBBTC" and event.interval == "1m" and not event.closed
    assert event.event_time_ms == 1672515782136 and event.open_time_ms == 1672515780000
    assert dict(zip(KLINE_COLUMNS, event.row)) == {
        "open_time": 1672515780000.0, "open": 0.001, "high": 0.0025, "low": 0.0015, "close": 0.002,
        "volume": 1000.5, "close_time": 1672515839999.0, "quote_volume": 1.0, "trades": 100.0,
        "taker_buy_base_volume": 500.0, "taker_buy_quote_volume": 0.5,
    }  # fmt: skip
    assert str(event.close_price) == "0.00200000"
    closed = parse_stream_message(envelope({**KLINE, "k": {**KLINE["k"], "x": True}}).decode())
    assert isinstance(closed, KlineEvent) and closed.closed


def test_ticker_message_parses_into_ticker_fields_order():
    event = parse_stream_message(envelope(TICKER, "bnbbtc@ticker"))
    assert isinstance(event, TickerEvent)
    assert dict(zip(TICKER_FIELDS, event.values)) == {
        "last_price": 0.0025, "open_price": 0.001, "high_price": 0.0025, "low_price": 0.001, "volume": 10000.0,
        "quote_volume": 18.0, "price_change": 0.0015, "price_change_percent": 250.0, "event_time": 1672515782136.0,
    }  # fmt: skip
    assert event.last_price == Decimal("0.00250000")


def test_non_event_messages_are_none():
    assert parse_stream_message(b'{"result":null,"id":1}') is None
    assert parse_stream_message(envelope({"e": "24hrMiniTicker", "E": 1, "s": "BNBBTC"})) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"data": {}}',
        envelope([1]),
        envelope({"E": 1}),
        envelope({"e": "kline", "E": 1, "s": "BNBBTC"}),
        envelope({**KLINE, "k": {k: v for k, v in KLINE["k"].items() if k != "c"}}),
        envelope({**KLINE, "k": {**KLINE["k"], "h": "abc"}}),
        envelope({**KLINE, "k": {**KLINE["k"], "o": "NaN"}}),
        envelope({**KLINE, "k": {**KLINE["k"], "x": "false"}}),
        envelope({**KLINE, "k": {**KLINE["k"], "t": "1672515780000"}}),
        envelope({**KLINE, "E": None}),
        envelope({**TICKER, "c": 1.5}),
        envelope({k: v for k, v in TICKER.items() if k != "s"}),
    ],
)
def test_malformed_messages_raise_malformed_message(raw):
    with pytest.raises(MalformedMessage):
        parse_stream_message(raw)


def test_rest_klines_become_an_n_by_11_array():
    rows = [[1, "1.5", "2", "1", "1.75", "10", 60000, "17.5", 3, "5", "8.75", "0"],
            [60001, "1.75", "2", "1", "1.5", "1", 120000, "1.5", 1, "0", "0", "0"]]  # fmt: skip
    arr = klines_to_array(rows)
    assert arr.shape == (2, 11) and arr[0, 4] == 1.75 and arr[1, 8] == 1.0
    assert klines_to_array([]).shape == (0, 11)
    with pytest.raises(MalformedMessage):
        klines_to_array({"code": -1121})
    with pytest.raises(MalformedMessage):
        klines_to_array([rows[1], rows[0]])
    with pytest.raises(MalformedMessage):
        klines_to_array([rows[0][:5]])
