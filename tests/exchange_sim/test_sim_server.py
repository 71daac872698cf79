"""The Simulator as a whole: python-binance's AsyncClient and BinanceSocketManager
against it, the background-thread runner, lifecycle, clock and end of data."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from binance import AsyncClient, BinanceSocketManager
from binance.exceptions import BinanceAPIException
from sim_cases import T0, ms

from exchange_sim import DEFAULT_START_MS, ReplayDataError, Simulator, SimulatorThread
from exchange_sim._replay import ReplayClock


async def test_python_binance_async_client_rest(binance_data: Path) -> None:
    async with Simulator(binance_data, speed=1e-9, symbols=["BTCUSDT", "ETHUSDT"]) as sim:
        client = AsyncClient(api_key=None, api_secret=None)
        client.API_URL = sim.rest_url + "/api"
        try:
            assert await client.ping() == {}
            assert await client.get_server_time() == {"serverTime": T0}
            klines = await client.get_klines(symbol="ETHUSDT", interval=AsyncClient.KLINE_INTERVAL_1HOUR, limit=24)
            assert len(klines) == 24 and klines[-1][0] == T0 - 3_600_000 and klines[-1][6] == T0 - 1
            info = await client.get_exchange_info()
            trading = sorted(s["symbol"] for s in info["symbols"] if s["status"] == "TRADING")
            assert trading == ["BTCUSDT", "ETHUSDT"]
            ticker = await client.get_ticker(symbol="BTCUSDT")
            (last_minute,) = await client.get_klines(symbol="BTCUSDT", interval="1m", limit=1)
            assert ticker["symbol"] == "BTCUSDT" and ticker["lastPrice"] == last_minute[4]
            assert ticker["closeTime"] == T0 and float(ticker["volume"]) > 0
            with pytest.raises(BinanceAPIException) as error:
                await client.get_klines(symbol="NOPEUSDT", interval="1m")
            assert error.value.code == -1121 and error.value.status_code == 400
        finally:
            await client.close_connection()


async def test_python_binance_multiplex_socket(binance_data: Path) -> None:
    async with Simulator(binance_data, speed=600, symbols=["BTCUSDT", "ETHUSDT"]) as sim:
        client = AsyncClient(api_key=None, api_secret=None)
        try:
            manager = BinanceSocketManager(client)
            manager.STREAM_URL = sim.ws_url + "/"
            socket = manager.multiplex_socket(["btcusdt@kline_1m", "ethusdt@kline_1h", "ethusdt@ticker"])
            seen: dict[str, dict[str, object]] = {}
            async with socket as stream:
                async with asyncio.timeout(15):
                    while len(seen) < 3:
                        message = await stream.recv()
                        assert message.get("e") != "error", message
                        seen[message["stream"]] = message["data"]
            assert seen["btcusdt@kline_1m"]["e"] == "kline"
            assert seen["ethusdt@kline_1h"]["k"]["i"] == "1h"  # type: ignore[index]
            assert seen["ethusdt@ticker"]["e"] == "24hrTicker"
        finally:
            await client.close_connection()


def test_simulator_thread_serves_sync_callers(binance_data: Path) -> None:
    with SimulatorThread(binance_data, speed=1e-9, start_ms=ms("2021-05-03T12:00"), symbols=["SOLUSDT"]) as sim:
        with urllib.request.urlopen(sim.rest_url + "/api/v3/time", timeout=10) as response:
            assert json.loads(response.read()) == {"serverTime": ms("2021-05-03T12:00")}
        assert sim.symbols == ["SOLUSDT"] and sim.ws_url.startswith("ws://127.0.0.1:")
    with pytest.raises(ReplayDataError):
        SimulatorThread(binance_data, symbols=["NOPEUSDT"]).start()


async def test_default_start_and_symbols(binance_data: Path) -> None:
    sim = Simulator(binance_data)
    assert sim.start_ms == DEFAULT_START_MS == T0 and len(sim.symbols) == 94
    with pytest.raises(RuntimeError):
        _ = sim.base_url  # not started
    with pytest.raises(ReplayDataError, match="NOPEUSDT"):
        Simulator(binance_data, symbols=["btcusdt", "NOPEUSDT"])
    with pytest.raises(ValueError, match="speed"):
        Simulator(binance_data, speed=0)


async def test_port_in_use_and_stop_closes_streams(binance_data: Path) -> None:
    async with Simulator(binance_data, symbols=["BTCUSDT"]) as first:
        with pytest.raises(OSError):
            await Simulator(binance_data, symbols=["BTCUSDT"], port=first.port).start()
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(first.ws_url + "/ws/btcusdt@kline_1m")
            await first.stop()
            async with asyncio.timeout(5):
                while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                    pass
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001


def test_clock_runs_at_speed() -> None:
    clock = ReplayClock(T0, speed=500.0)
    assert clock.now_ms() == T0  # not started
    clock.start()
    wall_start = time.monotonic()
    while time.monotonic() - wall_start < 0.05:
        pass  # spin: measuring the clock, not waiting for something
    elapsed_ms = (time.monotonic() - wall_start) * 1000
    assert clock.now_ms() - T0 == pytest.approx(elapsed_ms * 500, rel=0.05)
    assert clock.seconds_until(clock.now_ms() + 500_000) == pytest.approx(1.0, rel=0.01)


async def test_stop_at_end_freezes_the_clock_after_the_last_minute(binance_data: Path) -> None:
    end = ms("2021-05-11T00:00")
    async with Simulator(binance_data, speed=600, start_ms=end - 90_000, symbols=["BTCUSDT"], stop_at_end=True) as sim:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(sim.ws_url + "/ws/btcusdt@kline_1m") as ws:
                await sim.wait_ended(timeout=15)
                async with http.get(
                    sim.rest_url + "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": "2"}
                ) as response:
                    last_two = await response.json()
                frozen = sim.now_ms()
                events = [json.loads((await ws.receive(timeout=5)).data)]
                while not (events[-1]["k"]["x"] and events[-1]["k"]["t"] == end - 60_000):
                    events.append(json.loads((await ws.receive(timeout=5)).data))
        assert frozen >= end and sim.now_ms() == frozen
        assert [k[0] for k in last_two] == [end - 120_000, end - 60_000]
        assert events[-1]["k"]["t"] == end - 60_000 and events[-1]["E"] == end
        assert sim.stats["ticks"] > 0
