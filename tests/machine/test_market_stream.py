"""KlineStream against tiny real aiohttp WebSocket servers and the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import web

from exchange_sim import Simulator
from machine.market import KlineEvent, KlineStream, StreamState, TickerEvent

KLINE = {
    "e": "kline", "E": 1672515782136, "s": "BNBBTC",
    "k": {"t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "o": "0.001", "c": "0.002",
          "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100, "x": False, "q": "1.0", "V": "500", "Q": "0.5"},
}  # fmt: skip
TICKER = {"e": "24hrTicker", "E": 1672515782136, "s": "BNBBTC", "p": "0.0015", "P": "250.00", "c": "0.0025",
          "o": "0.0010", "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18"}  # fmt: skip


def msg(data: object, stream: str = "bnbbtc@kline_1m") -> str:
    return orjson.dumps({"stream": stream, "data": data}).decode()


Script = Callable[[web.WebSocketResponse, list[str]], Awaitable[None]]


class WsServer:
    """A real aiohttp combined-stream endpoint; connection n runs scripts[min(n, last)]."""

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.requested: list[list[str]] = []
        self.closed_by_client = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        streams = request.query["streams"].split("/")
        self.requested.append(streams)
        script = self.scripts[min(len(self.requested), len(self.scripts)) - 1]
        await script(ws, streams)
        return ws


async def hold_open(ws: web.WebSocketResponse, server: WsServer) -> None:
    async for _ in ws:
        pass
    server.closed_by_client += 1


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[Script]], Awaitable[tuple[WsServer, str]]]]:
    runners: list[web.AppRunner] = []

    async def make(scripts: list[Script]) -> tuple[WsServer, str]:
        server = WsServer(scripts)
        app = web.Application()
        app.router.add_get("/stream", server.handle)
        runner = web.AppRunner(app, max_line_size=65536)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return server, f"ws://127.0.0.1:{port}"

    yield make
    for runner in runners:
        await runner.cleanup()


async def test_malformed_messages_are_counted_and_dropped(serve):
    async def script(ws: web.WebSocketResponse, _streams: list[str]) -> None:
        await ws.send_str(msg(KLINE))
        await ws.send_str("not json")
        await ws.send_str(msg({"e": "kline", "E": 1, "s": "BNBBTC"}))  # no "k"
        await ws.send_str("[1, 2]")
        await ws.send_bytes(msg({**KLINE, "k": {**KLINE["k"], "c": "abc"}}).encode())
        await ws.send_str('{"result": null, "id": 1}')  # a SUBSCRIBE answer: not malformed
        await ws.send_str(msg(KLINE))
        await ws.send_str(msg(TICKER, "bnbbtc@ticker"))
        await hold_open(ws, server)

    server, url = await serve([script])
    events: list[object] = []
    done = asyncio.Event()

    def on_message(event: KlineEvent | TickerEvent) -> None:
        events.append(event)
        if len(events) == 2:
            raise RuntimeError("a consumer bug must not kill the stream")
        if isinstance(event, TickerEvent):
            done.set()

    stream = KlineStream(url, ["bnbbtc@kline_1m", "BNBBTC@ticker"], on_message)
    await stream.start()
    try:
        await asyncio.wait_for(done.wait(), 10)
        assert [type(e) for e in events] == [KlineEvent, KlineEvent, TickerEvent]
        assert stream.messages == 8 and stream.malformed == 4 and stream.ignored == 1
        assert stream.callback_errors == 1
        assert stream.connected and stream.reconnects == 0 and stream.disconnects == 0
        assert stream.last_message_ms is not None
        assert server.requested == [["bnbbtc@kline_1m", "bnbbtc@ticker"]]
    finally:
        await stream.stop()
    await stream.stop()
    assert stream.state is StreamState.STOPPED and not stream.connected


async def test_reconnects_after_the_server_closes_the_connection(serve):
    async def first(ws: web.WebSocketResponse, _streams: list[str]) -> None:
        await ws.send_str(msg(KLINE))
        await ws.close()

    async def second(ws: web.WebSocketResponse, _streams: list[str]) -> None:
        await ws.send_str(msg(TICKER, "bnbbtc@ticker"))
        await hold_open(ws, server)

    server, url = await serve([first, second])
    events: list[object] = []
    reconnected: list[tuple[str, ...]] = []
    got_ticker = asyncio.Event()

    def on_message(event: KlineEvent | TickerEvent) -> None:
        events.append(event)
        if isinstance(event, TickerEvent):
            got_ticker.set()

    stream = KlineStream(url, ["bnbbtc@kline_1m", "bnbbtc@ticker"], on_message, backoff_initial_s=0.01,
                         on_reconnect=reconnected.append)  # fmt: skip
    async with stream:
        await asyncio.wait_for(got_ticker.wait(), 10)
        await stream.wait_connected(5)
        assert [type(e) for e in events] == [KlineEvent, TickerEvent]
        assert stream.disconnects == 1 and stream.reconnects == 1
        assert reconnected == [("bnbbtc@kline_1m", "bnbbtc@ticker")]
        assert len(server.requested) == 2
    assert server.closed_by_client == 1


async def test_many_streams_are_split_over_connections(serve):
    async def script(ws: web.WebSocketResponse, streams: list[str]) -> None:
        data = {**KLINE, "s": streams[0].split("@")[0].upper(), "k": {**KLINE["k"], "s": streams[0].split("@")[0]}}
        await ws.send_str(msg(data, streams[0]))
        await hold_open(ws, server)

    server, url = await serve([script])
    names = [f"s{i:03d}usdt@kline_1m" for i in range(450)]
    firsts: set[str] = set()
    all_three = asyncio.Event()

    def on_message(event: KlineEvent | TickerEvent) -> None:
        firsts.add(event.symbol)
        if len(firsts) == 3:
            all_three.set()

    async with KlineStream(url, names, on_message) as stream:
        await stream.wait_connected(10)
        await asyncio.wait_for(all_three.wait(), 10)
        assert sorted(len(s) for s in server.requested) == [50, 200, 200]
        assert sorted(s for chunk in server.requested for s in chunk) == names
        assert [len(c) for c in stream.connections] == [200, 200, 50]
        assert max(len(u) for u in stream.urls()) < 5000
        assert firsts == {"S000USDT", "S200USDT", "S400USDT"}


async def test_update_streams_keeps_unchanged_connections(serve):
    async def script(ws: web.WebSocketResponse, _streams: list[str]) -> None:
        await hold_open(ws, server)

    server, url = await serve([script])
    names = [f"s{i:03d}usdt@kline_1m" for i in range(250)]
    stream = KlineStream(url, names, lambda _e: None)
    async with stream:
        await stream.wait_connected(10)
        added = [f"n{i:03d}usdt@ticker" for i in range(30)]
        await stream.update_streams(names[:200] + added)
        await stream.wait_connected(10)
        await stream.wait_until(lambda _s: server.closed_by_client == 1, 10)
        assert [len(s) for s in server.requested] == [200, 50, 30]
        assert server.requested[2] == added
        assert stream.connections == (tuple(names[:200]), tuple(added))
        assert stream.reconnects == 0
        assert server.closed_by_client == 1  # only the connection with removed streams was closed
        with pytest.raises(ValueError):
            await stream.update_streams(["not a stream"])
        # many small reloads do not fragment the subscriptions without bound
        for k in range(5):
            await stream.update_streams([*stream.streams, f"x{k}usdt@ticker"])
            assert len(stream.connections) <= 2 + 2
            assert sorted(s for c in stream.connections for s in c) == sorted(stream.streams)
        await stream.wait_connected(10)
        assert len(stream.streams) == 235 and len(stream.connections) < 5


async def test_reconnects_when_the_simulator_restarts(binance_data):
    sim = Simulator(binance_data / "spot" / "1m", speed=60, symbols=["BTCUSDT"])
    await sim.start()
    port = sim.port
    after_restart = asyncio.Event()
    restarted = False
    times: list[int] = []

    def on_message(event: KlineEvent | TickerEvent) -> None:
        times.append(event.event_time_ms)
        if restarted:
            after_restart.set()

    stream = KlineStream(sim.ws_url, ["btcusdt@kline_1m", "btcusdt@ticker"], on_message, backoff_initial_s=0.02,
                         backoff_max_s=0.2)  # fmt: skip
    sim2: Simulator | None = None
    try:
        await stream.start()
        await stream.wait_connected(10)
        resume_ms = sim.now_ms()
        await sim.stop()
        await stream.wait_until(lambda s: s.disconnects >= 1, 10)
        assert not stream.connected
        sim2 = Simulator(binance_data / "spot" / "1m", speed=60, symbols=["BTCUSDT"], port=port, start_ms=resume_ms)
        await sim2.start()
        restarted = True
        await stream.wait_until(lambda s: s.reconnects >= 1 and s.connected, 15)
        await asyncio.wait_for(after_restart.wait(), 10)
        assert times[-1] >= resume_ms
    finally:
        await stream.stop()
        if sim2 is not None:
            await sim2.stop()
