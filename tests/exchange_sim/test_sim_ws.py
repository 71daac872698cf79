"""WebSocket streams: envelope, kline/ticker events against the files, in-progress and
closing updates, live subscriptions, Binance's limits and refusals, pings, gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from sim_cases import T0, ms

from exchange_sim import Simulator
from exchange_sim._candles import fmt, partial_row, rest_kline

Rows = Callable[[str, str], list[list[str]]]
Event = dict[str, Any]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def collect(
    ws: aiohttp.ClientWebSocketResponse, until: Callable[[Event], bool], timeout: float = 15
) -> list[Event]:
    """Text messages (decoded) up to and including the first one ``until`` accepts."""
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            events.append(orjson.loads(msg.data))
            if until(events[-1]):
                return events


def _decimal_row(row: list[str]) -> list[Decimal]:
    return [Decimal(x) for x in row]


def _kline_values(k: Event) -> list[Decimal]:
    return [Decimal(k[key]) for key in "ohlcv"]


async def test_combined_stream_in_progress_then_closing_updates(
    binance_data: Path, http: aiohttp.ClientSession, minute_rows: Rows
) -> None:
    streams = ["btcusdt@kline_1m", "btcusdt@kline_5m", "btcusdt@ticker"]
    async with Simulator(binance_data, speed=600, start_ms=T0 + 60_000, symbols=["BTCUSDT"]) as sim:
        async with http.ws_connect(f"{sim.ws_url}/stream?streams={'/'.join(streams)}") as ws:

            def five_minute_closed(e: Event) -> bool:
                k = e["data"].get("k", {})
                return e["stream"] == streams[1] and k["x"] and k["t"] == T0 + 5 * 60_000

            events = await collect(ws, five_minute_closed)
        async with http.get(
            f"{sim.rest_url}/api/v3/klines",
            params={"symbol": "BTCUSDT", "interval": "5m", "startTime": str(T0 + 5 * 60_000), "limit": "1"},
        ) as response:
            (rest_five,) = await response.json()
    assert all(set(e) == {"stream", "data"} and e["stream"] in streams for e in events)
    rows = {int(r[0]): r for r in minute_rows("BTCUSDT", "2021-05-01")[:11]}
    by_stream: dict[str, list[Event]] = {s: [e["data"] for e in events if e["stream"] == s] for s in streams}
    for minute in range(T0 + 5 * 60_000, T0 + 10 * 60_000, 60_000):
        updates = [d for d in by_stream["btcusdt@kline_1m"] if d["k"]["t"] == minute]
        assert [(d["E"], d["k"]["x"]) for d in updates] == [
            (minute + 20_000, False),
            (minute + 40_000, False),
            (minute + 60_000, True),
        ]
        raw = [float(x) for x in rows[minute]] + [0.0, 0.0, 0.0, 0.0, 0.0]
        raw[6], raw[7] = minute + 59_999, raw[5] * raw[4]
        for update, elapsed in zip(updates[:2], (20_000, 40_000), strict=True):
            expected = partial_row(raw, elapsed)
            assert [update["k"][k] for k in "ohlcv"] == [fmt(expected[i]) for i in (1, 2, 3, 4, 5)]
        closing = updates[2]
        assert closing["e"] == "kline" and closing["s"] == "BTCUSDT" and set(closing["k"]) == set("tTsifLochlvnxqVQB")
        assert closing["k"]["T"] == minute + 59_999 and closing["k"]["i"] == "1m"
        assert _kline_values(closing["k"]) == _decimal_row(rows[minute][1:6])
    bucket = [_decimal_row(rows[t][:6]) for t in range(T0 + 5 * 60_000, T0 + 10 * 60_000, 60_000)]
    traded = [r for r in bucket if r[5] > 0]
    five = [d for d in by_stream["btcusdt@kline_5m"] if d["k"]["t"] == T0 + 5 * 60_000]
    assert [d["k"]["x"] for d in five] == [False] * 14 + [True]
    assert _kline_values(five[-1]["k"]) == [
        traded[0][1],
        max(r[2] for r in traded),
        min(r[3] for r in traded),
        bucket[-1][4],
        sum(r[5] for r in bucket),
    ]
    assert five[-1]["E"] == T0 + 10 * 60_000 and five[-1]["k"]["T"] == T0 + 10 * 60_000 - 1
    assert rest_five[1:6] == [five[-1]["k"][k] for k in "ohlcv"]
    closes_1m = {d["E"]: d["k"]["c"] for d in by_stream["btcusdt@kline_1m"]}
    tickers = by_stream["btcusdt@ticker"]
    assert len(tickers) >= 15 and all(t["e"] == "24hrTicker" and t["c"] == closes_1m[t["E"]] for t in tickers)
    assert all(d["k"]["c"] == closes_1m[d["E"]] for d in five)


async def test_raw_stream_sends_bare_payloads(binance_data: Path, http: aiohttp.ClientSession) -> None:
    async with Simulator(binance_data, speed=3000, symbols=["ETHUSDT"]) as sim:
        async with http.ws_connect(f"{sim.ws_url}/ws/ethusdt@kline_1h") as ws:
            (event,) = await collect(ws, lambda e: True)
    assert event["e"] == "kline" and event["k"]["i"] == "1h" and event["k"]["t"] == T0


async def test_live_subscribe_list_property_unsubscribe(binance_data: Path, http: aiohttp.ClientSession) -> None:
    async with Simulator(binance_data, speed=3000, symbols=["ETHUSDT"]) as sim:
        async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["ethusdt@kline_1m"],"id":1}')
            assert await collect(ws, lambda e: True) == [{"result": None, "id": 1}]
            await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":"abc"}')
            listed = await collect(ws, lambda e: "result" in e)
            assert listed[-1] == {"result": ["ethusdt@kline_1m"], "id": "abc"}
            assert all(e["e"] == "kline" for e in listed[:-1])
            await ws.send_str('{"method":"SET_PROPERTY","params":["combined",true],"id":2}')
            await collect(ws, lambda e: e.get("id") == 2)
            enveloped = await collect(ws, lambda e: True)
            assert enveloped[0]["stream"] == "ethusdt@kline_1m" and enveloped[0]["data"]["e"] == "kline"
            await ws.send_str('{"method":"GET_PROPERTY","params":["combined"],"id":3}')
            assert (await collect(ws, lambda e: e.get("id") == 3))[-1] == {"result": True, "id": 3}
            await ws.send_str('{"method":"UNSUBSCRIBE","params":["ethusdt@kline_1m"],"id":4}')
            await collect(ws, lambda e: e.get("id") == 4)
            await ws.send_str('{"method":"SUBSCRIBE","params":["ethusdt@ticker"],"id":5}')
            after = await collect(ws, lambda e: e.get("stream") == "ethusdt@ticker" and e["data"]["E"] % 60_000 == 0)
            assert {e.get("stream") for e in after[1:]} == {"ethusdt@ticker"}
            await ws.send_str('{"method":"UNSUBSCRIBE","params":["ethusdt@ticker"],"id":6}')
            await ws.send_str('{"method":"PUBLISH","id":7}')
            assert (await collect(ws, lambda e: e.get("id") == 7))[-1]["error"]["code"] == 2
            await ws.send_str("{not json")
            (bad_json,) = await collect(ws, lambda e: True)
            assert bad_json["error"]["code"] == 3
            await ws.send_str('{"method":"SUBSCRIBE","params":["ethusdt@kline_1m"],"id":[1]}')
            (bad_id,) = await collect(ws, lambda e: True)
            assert bad_id["error"] == {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}
            await ws.send_str('{"method":"SUBSCRIBE","params":["ethusdt@klines_1m"],"id":8}')
            (refused,) = await collect(ws, lambda e: True)
            assert refused == {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 8}
            async with asyncio.timeout(5):
                closing = await ws.receive()
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


@pytest.mark.parametrize("bad", ["btcusdt@kline_7m", "btcusdt@candles", "btcusdt", "@ticker"])
async def test_handshake_refuses_names_outside_binance_grammar(
    binance_data: Path, http: aiohttp.ClientSession, bad: str
) -> None:
    async with Simulator(binance_data, symbols=["BTCUSDT"]) as sim:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@ticker/{bad}")
        assert refused.value.status == 400


async def test_at_most_1024_streams_per_connection(binance_data: Path, http: aiohttp.ClientSession) -> None:
    names = [f"coin{i}usdt@kline_1m" for i in range(1025)]
    async with Simulator(binance_data, symbols=["BTCUSDT"]) as sim:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{sim.ws_url}/stream?streams={'/'.join(names)}")
        assert refused.value.status == 400
        async with http.ws_connect(f"{sim.ws_url}/stream?streams={'/'.join(names[:1024])}") as ws:
            await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":1}')
            (listed,) = await collect(ws, lambda e: True)
            assert len(listed["result"]) == 1024
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@ticker"],"id":2}')
            (over,) = await collect(ws, lambda e: True)
            assert over["error"]["code"] == 2 and over["id"] == 2


async def test_well_formed_streams_without_data_stay_silent(binance_data: Path, http: aiohttp.ClientSession) -> None:
    streams = "btcusdt@depth/nopeusdt@kline_1m/BTCUSDT@kline_1m/btcusdt@kline_1s/btcusdt@kline_1m"
    async with Simulator(binance_data, speed=3000, symbols=["BTCUSDT"]) as sim:
        async with http.ws_connect(f"{sim.ws_url}/stream?streams={streams}") as ws:
            events = await collect(ws, lambda e: e["data"]["k"]["x"])
    assert len(events) >= 1 and {e["stream"] for e in events} == {"btcusdt@kline_1m"}


async def test_pings_are_answered_and_silent_clients_dropped(binance_data: Path, http: aiohttp.ClientSession) -> None:
    async with Simulator(binance_data, symbols=["BTCUSDT"], ping_interval=0.05, pong_timeout=0.3) as sim:
        async with http.ws_connect(f"{sim.ws_url}/ws", autoping=False) as ws:
            await ws.ping(b"are you there")
            async with asyncio.timeout(5):
                msg = await ws.receive()
                while msg.type == aiohttp.WSMsgType.PING:
                    msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.PONG and msg.data == b"are you there"
            async with asyncio.timeout(5):
                while (msg := await ws.receive()).type == aiohttp.WSMsgType.PING:
                    pass  # never answered
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008
        async with http.ws_connect(f"{sim.ws_url}/ws", autoping=False) as ws:
            async with asyncio.timeout(5):
                for _ in range(10):  # 10 pings * 0.05 s > pong_timeout: answered, so still open
                    msg = await ws.receive()
                    assert msg.type == aiohttp.WSMsgType.PING
                    await ws.pong(msg.data)


async def test_outage_gap_produces_no_events(binance_data: Path, http: aiohttp.ClientSession) -> None:
    gap_start, gap_end = ms("2021-04-20T02:00"), ms("2021-04-20T04:30")
    streams = "btcusdt@kline_1m/btcusdt@kline_1h/btcusdt@ticker"
    async with Simulator(binance_data, speed=6000, start_ms=gap_start - 30 * 60_000, symbols=["BTCUSDT"]) as sim:
        async with http.ws_connect(f"{sim.ws_url}/stream?streams={streams}") as ws:
            events = await collect(
                ws,
                lambda e: (
                    e["stream"] == "btcusdt@kline_1m"
                    and e["data"]["k"]["t"] == gap_end + 60_000
                    and e["data"]["k"]["x"]
                ),
            )
    data = [e["data"] for e in events]
    times = [d["E"] for d in data]
    assert times == sorted(times)
    assert not [t for t in times if gap_start < t <= gap_end]
    assert any(t == gap_start for t in times) and any(t > gap_end for t in times)
    hours = [d["k"] for d in data if d["e"] == "kline" and d["k"]["i"] == "1h"]
    assert [k["t"] for k in hours if k["x"]] == [ms("2021-04-20T01:00")]
    assert {k["t"] for k in hours} == {ms("2021-04-20T01:00"), ms("2021-04-20T04:00")}
    assert not [d for d in data if d["e"] == "24hrTicker" and gap_start < d["E"] <= gap_end]
    four = [k for k in hours if k["t"] == ms("2021-04-20T04:00")]
    first_after = next(d["k"] for d in data if d["e"] == "kline" and d["k"]["i"] == "1m" and d["k"]["t"] == gap_end)
    assert four[0]["o"] == first_after["o"]


async def test_stream_values_equal_rest_values_at_the_event_time(
    binance_data: Path, http: aiohttp.ClientSession
) -> None:
    # Large float volumes (DOGE) and many volume-0 minutes (BTG), across a day boundary
    # inside the 1w and 1M buckets (2021-05-04 00:00 is a Tuesday).
    symbols, intervals = ["DOGEUSDT", "BTGUSDT"], ["1m", "15m", "1h", "1d", "3d", "1w", "1M"]
    streams = "/".join(f"{s.lower()}@kline_{i}" for s in symbols for i in intervals)
    end = ms("2021-05-04T00:20")
    async with Simulator(binance_data, speed=3000, start_ms=end - 30 * 60_000, symbols=symbols) as sim:
        async with http.ws_connect(f"{sim.ws_url}/stream?streams={streams}") as ws:
            events = await collect(ws, lambda e: e["data"]["E"] >= end)
        assert {e["data"]["k"]["i"] for e in events} == set(intervals)
        assert any(e["data"]["E"] < ms("2021-05-04T00:00") for e in events)
        for event in events:
            data = event["data"]
            k = data["k"]
            (row,) = sim.history.klines(data["s"], k["i"], data["E"], start=k["t"], limit=1)
            expected = rest_kline(row)
            assert [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"]] == expected[
                :11
            ]
