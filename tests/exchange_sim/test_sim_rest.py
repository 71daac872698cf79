"""The REST API over HTTP: klines, exchangeInfo, 24h ticker, time, ping, errors and
request-weight headers. The clock is nearly frozen (speed 1e-9) so that "now" is
known exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from sim_cases import T0

from exchange_sim import Simulator
from exchange_sim._candles import partial_row, rest_kline

Rows = Callable[[str, str], list[list[str]]]
NOW = T0 + 30 * 60_000 + 40_000  # 2021-05-01 00:30:40
REPLAYED = ["BTCUSDT", "ETHUSDT", "AUDUSDT"]


@pytest.fixture
async def sim(binance_data: Path) -> AsyncIterator[Simulator]:
    async with Simulator(binance_data, speed=1e-9, start_ms=NOW, symbols=REPLAYED) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, sim: Simulator, path: str, **params: str) -> tuple[int, object, int]:
    async with http.get(f"{sim.rest_url}/api/v3/{path}", params=params) as response:
        return response.status, await response.json(), int(response.headers["X-MBX-USED-WEIGHT-1M"])


async def test_klines_are_file_rows_then_the_forming_minute(
    sim: Simulator, http: aiohttp.ClientSession, minute_rows: Rows
) -> None:
    status, body, _ = await get(http, sim, "klines", symbol="BTCUSDT", interval="1m", limit="5")
    assert status == 200 and isinstance(body, list) and len(body) == 5
    source = minute_rows("BTCUSDT", "2021-05-01")
    for kline, row in zip(body[:4], source[26:30], strict=True):
        assert kline[0] == int(row[0]) and kline[6] == int(row[0]) + 59_999
        assert [Decimal(x) for x in kline[1:6]] == [Decimal(x) for x in row[1:6]]
        assert (kline[8], kline[9], kline[10], kline[11]) == (0, "0.00000000", "0.00000000", "0")
    forming = sim.history.minute_row("BTCUSDT", T0 + 30 * 60_000)
    assert forming is not None
    assert body[4] == rest_kline(partial_row(forming, 40_000))


async def test_klines_limits_and_paging(sim: Simulator, http: aiohttp.ClientSession) -> None:
    _, default, _ = await get(http, sim, "klines", symbol="ETHUSDT", interval="1m")
    _, capped, _ = await get(http, sim, "klines", symbol="ETHUSDT", interval="1m", limit="5000")
    assert isinstance(default, list) and isinstance(capped, list)
    assert (len(default), len(capped)) == (500, 1000)
    assert default[-1][0] == T0 + 30 * 60_000 and capped[-500:] == default
    start = T0 - 2 * 86_400_000
    _, page1, _ = await get(http, sim, "klines", symbol="ETHUSDT", interval="1h", startTime=str(start), limit="30")
    assert isinstance(page1, list)
    _, page2, _ = await get(
        http, sim, "klines", symbol="ETHUSDT", interval="1h", startTime=str(page1[-1][0] + 1), limit="30"
    )
    assert isinstance(page2, list)
    times = [k[0] for k in page1 + page2]
    assert times[0] == start and len(times) == 49  # 48 closed hours + the forming one
    assert times == [start + i * 3_600_000 for i in range(49)]
    _, ended, _ = await get(http, sim, "klines", symbol="ETHUSDT", interval="1h", endTime=str(T0 - 1), limit="3")
    assert [k[0] for k in ended] == [T0 - 3 * 3_600_000, T0 - 2 * 3_600_000, T0 - 3_600_000]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
        ({"symbol": "DOGEUSDT", "interval": "1m"}, -1121),  # listed, but not replayed
        ({"symbol": "btcusdt", "interval": "1m"}, -1100),
        ({"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        ({"symbol": "BTCUSDT", "interval": "1s"}, -1120),
        ({"interval": "1m"}, -1102),
        ({"symbol": "BTCUSDT"}, -1102),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "yesterday"}, -1100),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "20", "endTime": "10"}, -1023),
    ],
)
async def test_klines_errors_are_binance_errors(
    sim: Simulator, http: aiohttp.ClientSession, params: dict[str, str], code: int
) -> None:
    status, body, weight = await get(http, sim, "klines", **params)
    assert status == 400
    assert isinstance(body, dict) and body["code"] == code and isinstance(body["msg"], str) and body["msg"]
    assert weight >= 1


async def test_exchange_info_statuses_and_filters(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body, weight = await get(http, sim, "exchangeInfo")
    assert status == 200 and weight == 20 and isinstance(body, dict)
    by_symbol = {s["symbol"]: s for s in body["symbols"]}
    assert len(by_symbol) == 456 and body["serverTime"] == sim.now_ms()
    assert {s for s, e in by_symbol.items() if e["status"] == "TRADING"} == set(REPLAYED)
    assert by_symbol["DOGEUSDT"]["status"] == "BREAK"  # has data, but not replayed here
    assert body["rateLimits"][0]["limit"] == 6000
    tick = next(f for f in by_symbol["BTCUSDT"]["filters"] if f["filterType"] == "PRICE_FILTER")
    assert tick["tickSize"] == "0.01000000"
    _, one, _ = await get(http, sim, "exchangeInfo", symbol="AUDUSDT")
    assert isinstance(one, dict) and [(s["symbol"], s["status"]) for s in one["symbols"]] == [("AUDUSDT", "TRADING")]
    _, two, _ = await get(http, sim, "exchangeInfo", symbols='["ETHUSDT","SOLUSDT"]')
    assert isinstance(two, dict) and [s["status"] for s in two["symbols"]] == ["TRADING", "BREAK"]
    _, trading, _ = await get(http, sim, "exchangeInfo", symbolStatus="TRADING")
    assert isinstance(trading, dict) and sorted(s["symbol"] for s in trading["symbols"]) == sorted(REPLAYED)
    status, error, _ = await get(http, sim, "exchangeInfo", symbol="NOPE")
    assert status == 400 and error == {"code": -1121, "msg": "Invalid symbol."}


async def test_ticker_24hr_one_some_all(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, one, weight = await get(http, sim, "ticker/24hr", symbol="BTCUSDT")
    stats = sim._tickers.compute("BTCUSDT", NOW)
    assert status == 200 and weight == 2 and stats is not None
    assert one == stats.rest()
    _, some, weight_some = await get(http, sim, "ticker/24hr", symbols='["ETHUSDT","BTCUSDT"]', type="MINI")
    assert isinstance(some, list) and [t["symbol"] for t in some] == ["ETHUSDT", "BTCUSDT"]
    assert "priceChange" not in some[0] and "lastPrice" in some[0] and weight_some == weight + 2
    _, everything, weight_all = await get(http, sim, "ticker/24hr")
    assert isinstance(everything, list) and sorted(t["symbol"] for t in everything) == sorted(REPLAYED)
    assert weight_all == weight_some + 80
    status, error, _ = await get(http, sim, "ticker/24hr", symbol="SOLUSDT")
    assert status == 400 and isinstance(error, dict) and error["code"] == -1121
    _, price, _ = await get(http, sim, "ticker/price", symbol="BTCUSDT")
    assert price == {"symbol": "BTCUSDT", "price": one["lastPrice"]}  # type: ignore[index]


async def test_time_is_the_replay_clock_and_weights_add_up(sim: Simulator, http: aiohttp.ClientSession) -> None:
    _, pong, w1 = await get(http, sim, "ping")
    _, time_body, w2 = await get(http, sim, "time")
    _, _, w3 = await get(http, sim, "klines", symbol="BTCUSDT", interval="1h", limit="1000")
    assert pong == {} and time_body == {"serverTime": NOW}
    assert (w1, w2, w3) == (1, 2, 4)
