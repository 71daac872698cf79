"""BinanceRest against the local simulator, and error handling against a tiny real HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from exchange_sim import Simulator
from machine.market import (
    BinanceRest,
    InvalidRequest,
    InvalidSymbol,
    IpBanned,
    MarketUnavailable,
    RateLimited,
    klines_to_array,
)

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]


@pytest.fixture
async def sim(binance_data) -> AsyncIterator[Simulator]:
    s = Simulator(binance_data / "spot" / "1m", speed=60, symbols=SYMBOLS)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def rest(sim) -> AsyncIterator[BinanceRest]:
    client = BinanceRest(sim.rest_url)
    yield client
    await client.close()


async def raw_get(url: str, path: str, **params: object) -> object:
    async with aiohttp.ClientSession() as session:
        async with session.get(url + path, params={k: str(v) for k, v in params.items()}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def test_exchange_symbols_are_the_trading_spot_symbols(sim, rest):
    raw = await raw_get(sim.rest_url, "/api/v3/exchangeInfo")
    statuses = {s["symbol"]: s["status"] for s in raw["symbols"]}
    assert "BREAK" in statuses.values()  # the simulator lists non-replayed symbols as BREAK
    symbols = await rest.exchange_symbols("USDT")
    assert sorted(s.symbol for s in symbols) == sorted(SYMBOLS)
    assert all(statuses[s.symbol] == "TRADING" for s in symbols)
    assert rest.weight_limit_1m == 6000
    assert await rest.exchange_symbols("BTC") == []


async def test_klines_equal_the_simulator_rest_answer(sim, rest):
    got = await rest.klines("BTCUSDT", "5m", limit=300)
    want = klines_to_array(await raw_get(sim.rest_url, "/api/v3/klines", symbol="BTCUSDT", interval="5m", limit=300))
    assert got.shape == (300, 11)
    # the newest candle is forming and may have moved between the two requests
    assert np.array_equal(got[:-1], want[:-1]) and got[-1, 0] == want[-1, 0]
    assert np.all(np.diff(got[:, 0]) == 300_000)


async def test_klines_beyond_1000_are_paged(sim, rest):
    got = await rest.klines("ETHUSDT", "1m", limit=1500)
    assert got.shape == (1500, 11)
    assert np.all(np.diff(got[:, 0]) > 0)
    end = int(got[499, 0])
    older = klines_to_array(await raw_get(sim.rest_url, "/api/v3/klines", symbol="ETHUSDT", interval="1m",
                                          endTime=end, limit=500))  # fmt: skip
    assert np.array_equal(got[:500], older)


async def test_ticker_and_server_time(sim, rest):
    before = sim.now_ms()
    server = await rest.server_time_ms()
    assert before <= server <= sim.now_ms()
    ticker = await rest.ticker_24h("BNBUSDT")
    assert ticker.symbol == "BNBUSDT" and ticker.last_price > 0
    assert float(ticker.last_price) == ticker.values[0]
    assert before <= ticker.event_time_ms <= sim.now_ms()
    assert rest.used_weight_1m is not None and rest.used_weight_1m >= 3


async def test_unknown_symbol_is_invalid_symbol(rest):
    with pytest.raises(InvalidSymbol, match="DOGEUSDT"):
        await rest.klines("DOGEUSDT", "1m", 10)
    with pytest.raises(InvalidSymbol):
        await rest.klines("BTC/USDT", "1m", 10)  # refused before any request


# ---------------------------------------------------------------- error handling


class Script:
    """A real HTTP server answering /api/v3/time from a list of (status, headers, body)."""

    def __init__(self, answers: list[tuple[int, dict[str, str], dict]]) -> None:
        self.answers = answers
        self.hits = 0
        self.first_hit = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.first_hit.set()
        status, headers, body = self.answers[min(self.hits, len(self.answers)) - 1]
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[list], tuple[Script, str]]]:
    runners: list[web.AppRunner] = []

    async def make(answers: list) -> tuple[Script, str]:
        script = Script(answers)
        app = web.Application()
        app.router.add_get("/api/v3/time", script.handle)
        app.router.add_get("/api/v3/klines", script.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return script, f"http://127.0.0.1:{port}"

    yield make
    for runner in runners:
        await runner.cleanup()


OK = (200, {"X-MBX-USED-WEIGHT-1M": "42"}, {"serverTime": 123})


async def test_5xx_is_retried_then_succeeds(scripted):
    script, url = await scripted([(503, {}, {"code": -1001, "msg": "busy"}), (502, {}, {}), OK])
    async with BinanceRest(url, backoff_max_s=0.05) as rest:
        assert await rest.server_time_ms() == 123
        assert script.hits == 3 and rest.retries == 2 and rest.used_weight_1m == 42


async def test_persistent_5xx_is_market_unavailable(scripted):
    script, url = await scripted([(500, {}, {"code": -1000, "msg": "unknown"})])
    async with BinanceRest(url, max_attempts=3, backoff_max_s=0.05) as rest:
        with pytest.raises(MarketUnavailable):
            await rest.server_time_ms()
    assert script.hits == 3


async def test_429_waits_retry_after_and_holds_other_requests(scripted):
    script, url = await scripted([(429, {"Retry-After": "1"}, {"code": -1003, "msg": "too many"}), OK])
    loop = asyncio.get_running_loop()
    async with BinanceRest(url) as rest:
        t0 = loop.time()
        first = asyncio.create_task(rest.server_time_ms())
        await asyncio.wait_for(script.first_hit.wait(), 5)
        async with asyncio.timeout(5):  # until the client has taken the 429 answer (a yield, not a timed sleep)
            while rest.retries == 0:
                await asyncio.sleep(0)
        second = asyncio.create_task(rest.server_time_ms())  # must wait for the Retry-After too
        second_done_at: list[float] = []
        second.add_done_callback(lambda _t: second_done_at.append(loop.time()))
        assert await first == 123 and await second == 123
        assert second_done_at[0] - t0 >= 0.95
        assert script.hits == 3


async def test_429_after_the_retries_is_rate_limited(scripted):
    _, url = await scripted([(429, {"Retry-After": "0"}, {"code": -1003, "msg": "too many"})])
    async with BinanceRest(url, max_attempts=2) as rest:
        with pytest.raises(RateLimited) as info:
            await rest.server_time_ms()
    assert info.value.retry_after_s == 0


async def test_418_stops_every_request_until_the_ban_ends(scripted):
    script, url = await scripted([(418, {"Retry-After": "300"}, {"code": -1003, "msg": "banned"}), OK])
    async with BinanceRest(url) as rest:
        with pytest.raises(IpBanned) as info:
            await rest.server_time_ms()
        assert info.value.retry_after_s == 300
        with pytest.raises(IpBanned):
            await rest.klines("BTCUSDT", "1m", 5)
    assert script.hits == 1  # not retried, and nothing sent during the ban


async def test_other_4xx_is_invalid_request_and_not_retried(scripted):
    script, url = await scripted([(400, {}, {"code": -1100, "msg": "Illegal characters"})])
    async with BinanceRest(url) as rest:
        with pytest.raises(InvalidRequest) as info:
            await rest.server_time_ms()
    assert info.value.status == 400 and info.value.code == -1100 and script.hits == 1


async def test_unreachable_server_is_market_unavailable():
    async with BinanceRest("http://127.0.0.1:9", max_attempts=2, backoff_max_s=0.05, timeout_s=2) as rest:
        with pytest.raises(MarketUnavailable):
            await rest.server_time_ms()
        assert rest.retries == 1


async def test_weight_budget_delays_requests_beyond_it(scripted):
    script, url = await scripted([OK])
    loop = asyncio.get_running_loop()
    # 120 weight per minute = 2 per second; the first 120 pass at once, the 121st and 122nd wait for
    # the bucket to leak: the 122nd cannot start before 1.0 s after the first, however slow the host.
    async with BinanceRest(url, weight_limit_1m=120, weight_share=1.0) as rest:
        t0 = loop.time()
        await asyncio.gather(*(rest.server_time_ms() for _ in range(122)))
        assert loop.time() - t0 >= 0.95
    assert script.hits == 122


async def test_closed_client_refuses_calls(scripted):
    _, url = await scripted([OK])
    rest = BinanceRest(url)
    assert await rest.server_time_ms() == 123
    await rest.close()
    await rest.close()
    with pytest.raises(MarketUnavailable):
        await rest.server_time_ms()
