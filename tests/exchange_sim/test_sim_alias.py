"""Symbol aliases: deterministic names, exchangeInfo clones, REST and streams serving the
source symbol's data under the alias name, shared (not copied) history, the CLI option."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from sim_cases import T0

from exchange_sim import Simulator
from exchange_sim._aliases import alias_symbols, split_symbol

REPO = Path(__file__).resolve().parents[2]
NOW = T0 + 30 * 60_000 + 40_000  # 2021-05-01 00:30:40, clock nearly frozen
Event = dict[str, Any]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, sim: Simulator, path: str, **params: str) -> tuple[int, Any]:
    async with http.get(f"{sim.rest_url}/api/v3/{path}", params=params) as response:
        return response.status, await response.json()


def test_names_are_round_robin_by_round_and_skip_taken_names() -> None:
    aliases = alias_symbols(["BTCUSDT", "ETHUSDT", "FOO"], 8, taken={"ETH2USDT"})
    assert aliases == {
        "BTC2USDT": "BTCUSDT", "FOO2": "FOO",  # ETH2USDT is taken
        "BTC3USDT": "BTCUSDT", "ETH3USDT": "ETHUSDT", "FOO3": "FOO",
    }  # fmt: skip
    assert alias_symbols(["BTCUSDT"], 1) == {}
    assert split_symbol("1INCH2USDT") == ("1INCH2", "USDT") and split_symbol("API3USDT") == ("API3", "USDT")
    with pytest.raises(ValueError, match="below the 2 replayed symbols"):
        alias_symbols(["BTCUSDT", "ETHUSDT"], 1)
    with pytest.raises(ValueError, match="not a valid Binance symbol"):
        alias_symbols(["ABCDEFGHIJKLMNOPUSDT"], 2)


def test_400_symbols_from_the_94_replayed_are_deterministic(binance_data: Path) -> None:
    first = Simulator(binance_data, alias_symbols=400)
    again = Simulator(binance_data, alias_symbols=400)
    real = first.symbols[:94]
    assert len(first.symbols) == len(set(first.symbols)) == 400 and first.symbols == again.symbols
    assert real == sorted(p.name for p in (binance_data / "spot" / "1m").iterdir())
    assert first.symbols[94:97] == ["1INCH2USDT", "AAVE2USDT", "ADA2USDT"]
    assert first.aliases["BTC2USDT"] == "BTCUSDT" and first.aliases["BTC4USDT"] == "BTCUSDT"
    assert set(first.aliases.values()) == set(real) and not set(first.aliases) & set(real)
    assert Simulator(binance_data, symbols=["BTCUSDT"]).aliases == {}
    with pytest.raises(ValueError, match="below the 94 replayed symbols"):
        Simulator(binance_data, alias_symbols=50)


@pytest.fixture
async def sim(binance_data: Path) -> AsyncIterator[Simulator]:
    async with Simulator(
        binance_data, speed=1e-9, start_ms=NOW, symbols=["BTCUSDT", "ETHUSDT"], alias_symbols=6
    ) as simulator:
        yield simulator


async def test_exchange_info_lists_aliases_as_trading_clones(sim: Simulator, http: aiohttp.ClientSession) -> None:
    assert sim.symbols == ["BTCUSDT", "ETHUSDT", "BTC2USDT", "ETH2USDT", "BTC3USDT", "ETH3USDT"]
    status, body = await get(http, sim, "exchangeInfo", symbolStatus="TRADING")
    assert status == 200
    entries = {e["symbol"]: e for e in body["symbols"]}
    assert list(entries) == ["BTCUSDT", "ETHUSDT", "BTC2USDT", "ETH2USDT", "BTC3USDT", "ETH3USDT"]
    for alias, source in sim.aliases.items():
        clone, original = dict(entries[alias]), dict(entries[source])
        assert (clone.pop("symbol"), clone.pop("baseAsset")) == (alias, alias.removesuffix("USDT"))
        del original["symbol"], original["baseAsset"]
        assert clone == original and clone["quoteAsset"] == "USDT" and clone["status"] == "TRADING"
    _, one = await get(http, sim, "exchangeInfo", symbol="ETH3USDT")
    assert [e["symbol"] for e in one["symbols"]] == ["ETH3USDT"]


async def test_rest_klines_and_tickers_of_an_alias_are_its_source_renamed(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    for interval, limit in (("1m", "500"), ("1h", "500"), ("1d", "20")):
        _, alias = await get(http, sim, "klines", symbol="BTC3USDT", interval=interval, limit=limit)
        _, source = await get(http, sim, "klines", symbol="BTCUSDT", interval=interval, limit=limit)
        assert len(alias) > 0 and alias == source
    _, ticker = await get(http, sim, "ticker/24hr", symbol="ETH2USDT")
    _, source_ticker = await get(http, sim, "ticker/24hr", symbol="ETHUSDT")
    assert ticker["symbol"] == "ETH2USDT" and float(ticker["volume"]) > 0
    assert {**ticker, "symbol": "ETHUSDT"} == source_ticker
    _, prices = await get(http, sim, "ticker/price", symbols='["BTCUSDT","BTC2USDT"]')
    assert [p["symbol"] for p in prices] == ["BTCUSDT", "BTC2USDT"] and prices[0]["price"] == prices[1]["price"]
    status, error = await get(http, sim, "klines", symbol="BTC4USDT", interval="1m")  # beyond the 6 served
    assert (status, error["code"]) == (400, -1121)


async def test_aliases_share_the_source_arrays(sim: Simulator, http: aiohttp.ClientSession) -> None:
    history = sim.history
    assert history.source("BTC3USDT") == "BTCUSDT" and history.source("BTCUSDT") == "BTCUSDT"
    assert history.day_rows("BTC2USDT", T0) is history.day_rows("BTCUSDT", T0)
    assert history.bounds("ETH3USDT") == history.bounds("ETHUSDT") is not None
    _, _ = await get(http, sim, "klines", symbol="BTCUSDT", interval="1h", limit="1000")
    cached = history._days.nbytes, history._aggs.nbytes
    for alias in ("BTC2USDT", "BTC3USDT"):
        _, _ = await get(http, sim, "klines", symbol=alias, interval="1h", limit="1000")
    assert (history._days.nbytes, history._aggs.nbytes) == cached  # nothing new was parsed or aggregated


async def _closing_events(
    sim: Simulator, http: aiohttp.ClientSession, streams: list[str], closes_5m: int = 1
) -> list[Event]:
    """Payloads of the closing ticks (E on a whole minute), in order, until ``closes_5m``
    closed 5m klines (x=true) were received."""
    events: list[Event] = []
    seen = 0
    async with http.ws_connect(f"{sim.ws_url}/stream?streams={'/'.join(streams)}") as ws:
        async with asyncio.timeout(20):
            while True:
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                data = orjson.loads(msg.data)["data"]
                if data["E"] % 60_000 == 0:
                    events.append(data)
                if data.get("k", {}).get("i") == "5m" and data["k"]["x"]:
                    seen += 1
                    if seen == closes_5m:
                        return events


async def test_alias_streams_alone_equal_the_source_streams_renamed(
    binance_data: Path, http: aiohttp.ClientSession
) -> None:
    def run() -> Simulator:
        return Simulator(binance_data, speed=300, start_ms=T0 + 60_000, symbols=["BTCUSDT", "DOGEUSDT"],
                         alias_symbols=5)  # fmt: skip

    async with run() as sim:
        assert sim.aliases == {"BTC2USDT": "BTCUSDT", "DOGE2USDT": "DOGEUSDT", "BTC3USDT": "BTCUSDT"}
        # no listener of the sources: the aliases' own forming candles and tickers are used
        aliased = await _closing_events(sim, http, ["doge2usdt@kline_1m", "btc3usdt@ticker", "btc3usdt@kline_5m"])
    async with run() as sim:
        sources = await _closing_events(sim, http, ["dogeusdt@kline_1m", "btcusdt@ticker", "btcusdt@kline_5m"])

    def renamed(event: Event) -> Event:
        symbol = {"DOGEUSDT": "DOGE2USDT", "BTCUSDT": "BTC3USDT"}[event["s"]]
        out = {**event, "s": symbol}
        if "k" in event:
            out["k"] = {**event["k"], "s": symbol}
        return out

    assert len(sources) >= 12 and [e["E"] for e in sources][-1] == T0 + 5 * 60_000
    assert aliased == [renamed(e) for e in sources]


async def test_alias_and_source_on_one_connection_get_the_same_tick(
    binance_data: Path, http: aiohttp.ClientSession
) -> None:
    async with Simulator(binance_data, speed=300, start_ms=T0 + 60_000, symbols=["BTCUSDT"], alias_symbols=2) as sim:
        streams = ["btcusdt@kline_1m", "btc2usdt@kline_1m", "btcusdt@kline_5m", "btc2usdt@kline_5m"]
        events = await _closing_events(sim, http, streams, closes_5m=2)
    by_key: dict[tuple[str, str, int], Event] = {(e["s"], e["k"]["i"], e["E"]): e for e in events}
    sources = [e for e in events if e["s"] == "BTCUSDT"]
    assert len(sources) >= 5 and len(by_key) == len(events) == 2 * len(sources)
    for source in sources:
        alias = by_key[("BTC2USDT", source["k"]["i"], source["E"])]
        assert alias == {**source, "s": "BTC2USDT", "k": {**source["k"], "s": "BTC2USDT"}}


async def _cli(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exchange_sim", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_cli_alias_symbols(binance_data: Path, http: aiohttp.ClientSession) -> None:
    bad = await _cli("--replay", str(binance_data), "--alias-symbols", "1", "--symbols", "BTCUSDT,ETHUSDT")
    out, errors = await asyncio.wait_for(bad.communicate(), 30)
    assert bad.returncode == 2 and out == b"" and b"alias_symbols=1 is below the 2 replayed symbols" in errors
    proc = await _cli("--replay", str(binance_data), "--port", "0", "--symbols", "BTCUSDT,ETHUSDT",
                      "--alias-symbols", "3")  # fmt: skip
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        async with http.get(url + "/api/v3/exchangeInfo", params={"symbolStatus": "TRADING"}) as response:
            names = [e["symbol"] for e in (await response.json())["symbols"]]
        assert names == ["BTCUSDT", "ETHUSDT", "BTC2USDT"]
        proc.terminate()
        await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
