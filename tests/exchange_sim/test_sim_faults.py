"""Faults and the exchange log, through python-binance's AsyncClient and raw WebSocket API frames:
an order accepted but answered 5xx, late or not at all is on the exchange and in the log; a rejection
or a 429 places nothing; a clock offset gives -1021 until the client re-syncs; fills and user stream
events come late when told; a user stream is terminated or cut; the admin endpoints refuse bad input."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from decimal import Decimal as D
from pathlib import Path
from types import MappingProxyType

import aiohttp
import orjson
import pytest
from binance import AsyncClient, BinanceSocketManager
from binance.exceptions import BinanceAPIException

from exchange_sim import ApiKey, Fault, Fees, Simulator
from exchange_sim._book import NewOrder

KEY, SECRET = "sim-key-alice", "sim-secret-alice-0123456789"
WINDOW = MappingProxyType({"recvWindow": 60000})  # read-only: python-binance writes into a data= dict
BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01000"}


def make_sim(binance_data: Path) -> Simulator:
    return Simulator(binance_data, speed=60, symbols=["BTCUSDT"], accounts=[ApiKey.hmac(KEY, SECRET)],
                     balances={"USDT": D("10000"), "BTC": D("0.5")}, fees=Fees(D("0.001"), D("0.001")))


async def synced(client: AsyncClient) -> AsyncClient:
    client.timestamp_offset = (await client.get_server_time())["serverTime"] - int(time.time() * 1000)
    return client


@pytest.fixture
async def sim_client(binance_data: Path):
    sim = make_sim(binance_data)
    await sim.start()
    client = AsyncClient(api_key=KEY, api_secret=SECRET)
    client.API_URL = sim.rest_url + "/api"
    client.ws_api._url = sim.ws_api_url
    client.ws_api.TIMEOUT = 1  # python-binance's read loop wakes every TIMEOUT s; closing waits for it
    try:
        yield sim, client
    finally:
        await client.close_connection()
        await sim.stop()


def ws_signed(sim: Simulator, **params) -> dict:
    """WebSocket API parameters signed with Alice's HMAC key (every parameter sorted by name)."""
    params = {**params, "apiKey": KEY, "recvWindow": 60000, "timestamp": sim.now_ms()}
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return {**params, "signature": hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()}


async def status_of(client: AsyncClient, client_order_id: str) -> str:
    return (await (await synced(client)).get_order(symbol="BTCUSDT", origClientOrderId=client_order_id,
                                                   **WINDOW))["status"]


async def test_an_order_answered_5xx_late_or_never_was_still_placed_and_is_found_by_asking(sim_client):
    sim, client = sim_client
    sim.faults.add(Fault("error_after", target="POST /api/v3/order"))
    with pytest.raises(BinanceAPIException) as err:
        await (await synced(client)).create_order(**BUY, newClientOrderId="unknown-1", **WINDOW)
    assert (err.value.status_code, err.value.code) == (503, -1007)
    assert await status_of(client, "unknown-1") == "FILLED"  # the outcome was unknown, not failed

    sim.faults.add(Fault("timeout_after", target="POST /api/v3/order", delay=1.5))
    client.REQUEST_TIMEOUT = 0.5
    with pytest.raises(asyncio.TimeoutError):
        await (await synced(client)).create_order(**BUY, newClientOrderId="unknown-2", **WINDOW)
    client.REQUEST_TIMEOUT = 10
    assert await status_of(client, "unknown-2") == "FILLED"

    sim.faults.add(Fault("drop_after", target="POST /api/v3/order"))
    with pytest.raises(aiohttp.ClientError):
        await (await synced(client)).create_order(**BUY, newClientOrderId="unknown-3", **WINDOW)
    assert await status_of(client, "unknown-3") == "FILLED"

    requests = [e for e in sim.log.entries("request") if e.data["method"] == "new_order"]
    assert [(e.data["params"]["newClientOrderId"], e.data["fault"], e.data["status"]) for e in requests] == [
        ("unknown-1", "error_after", 503), ("unknown-2", "timeout_after", 200), ("unknown-3", "drop_after", 200)]
    assert all("signature" not in e.data["params"] for e in sim.log.entries("request"))
    fills = sim.log.entries("fill")
    assert len(fills) == 3 and {f.data["orderId"] for f in fills} == {
        e.data["orderId"] for e in sim.log.entries("order")}
    account = {b["asset"]: D(b["free"]) for b in (await (await synced(client)).get_account(**WINDOW))["balances"]}
    assert account["BTC"] == D("0.5") + 3 * (D("0.01") - D("0.00001"))  # three orders, each once


async def test_a_rejection_and_a_429_place_nothing_and_the_429_says_when_to_retry(sim_client):
    sim, client = sim_client
    sim.faults.add(Fault("reject", target="POST /api/v3/order", code=-1013, msg="Filter failure: LOT_SIZE"))
    with pytest.raises(BinanceAPIException) as err:
        await (await synced(client)).create_order(**BUY, newClientOrderId="no-1", **WINDOW)
    assert (err.value.code, err.value.message) == (-1013, "Filter failure: LOT_SIZE")
    sim.faults.add(Fault("rate_limit", target="*", retry_after=7, count=2))
    async with aiohttp.ClientSession() as http:
        async with http.get(sim.rest_url + "/api/v3/time") as response:
            now = (await response.json())["serverTime"]
        query = f"symbol=BTCUSDT&recvWindow=60000&timestamp={now}"
        signature = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
        async with http.get(f"{sim.rest_url}/api/v3/openOrders?{query}&signature={signature}",
                            headers={"X-MBX-APIKEY": KEY}) as response:
            assert response.status == 429 and response.headers["Retry-After"] == "7"
            assert (await response.json())["code"] == -1003
    with pytest.raises(BinanceAPIException) as err:
        await (await synced(client)).create_order(**BUY, newClientOrderId="no-2", **WINDOW)
    assert (err.value.status_code, err.value.code) == (429, -1003)
    assert sim.log.entries("order") == [] and sim.faults.rules == []  # both rules used up
    assert await (await synced(client)).get_open_orders(symbol="BTCUSDT", **WINDOW) == []


async def test_a_clock_offset_gives_1021_until_the_client_re_syncs(sim_client):
    sim, client = sim_client
    await synced(client)
    sim.faults.clock_offset_ms = 70_000  # the server's clock runs 70 s ahead of the one the client synced to
    with pytest.raises(BinanceAPIException) as err:
        await client.get_account(**WINDOW)
    assert (err.value.code, err.value.message) == (-1021, "Timestamp for this request is outside of the recvWindow.")
    assert (await (await synced(client)).get_account(**WINDOW))["accountType"] == "SPOT"  # re-synced: accepted


async def test_user_streams_are_terminated_cut_and_delayed_on_demand(sim_client):
    sim, client = sim_client
    await synced(client)
    async with BinanceSocketManager(client).user_socket() as stream:
        assert sim.terminate_user_streams(KEY) == 1
        async with asyncio.timeout(10):
            assert (await stream.recv())["e"] == "eventStreamTerminated"
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_api_url) as ws:
        await ws.send_str(orjson.dumps({"id": 1, "method": "userDataStream.subscribe.signature",
                                        "params": ws_signed(sim)}).decode())
        assert orjson.loads((await ws.receive()).data)["result"] == {"subscriptionId": 0}
        sim.faults.event_delay = 0.3  # the answer to the next order overtakes its events
        await ws.send_str(orjson.dumps({"id": 2, "method": "order.place", "params": ws_signed(sim, **BUY)}).decode())
        frames = [orjson.loads((await ws.receive(timeout=10)).data) for _ in range(4)]
        assert frames[0]["id"] == 2 and [f["event"]["e"] for f in frames[1:]] == [
            "executionReport", "executionReport", "outboundAccountPosition"]
        assert sim.drop_user_streams(KEY) == 1
        assert (await ws.receive(timeout=10)).type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR,
                                                       aiohttp.WSMsgType.CLOSE)


def test_fills_come_late_by_the_fill_delay(binance_data: Path):
    sim = make_sim(binance_data)  # not started: the test drives the replay time itself
    t0 = sim.start_ms
    last = sim.accounts.last_price("BTCUSDT", t0)
    rows = sim.history.closed_rows("BTCUSDT", t0, t0 + 5 * 60_000)
    high = max(D(repr(float(r[2]))) for r in rows)
    assert high > last  # the next five minutes rise above the price now (recorded data)
    price = ((last + high) / 2).quantize(D("0.01"))
    placed = sim.accounts.place(KEY, NewOrder("BTCUSDT", "SELL", "LIMIT", "late", quantity=D("0.01"), price=price,
                                              time_in_force="GTC"), t0)
    assert placed.order.status == "NEW"
    sim.faults.fill_delay_ms = 10 * 60_000
    assert sim.accounts.cross_due("BTCUSDT", t0 + 5 * 60_000) == []  # reached, not yet filled
    filled = sim.accounts.cross_due("BTCUSDT", t0 + 15 * 60_000)
    assert [(o.client_order_id, o.status) for _, o, _ in filled] == [("late", "FILLED")]


async def test_the_admin_endpoints_set_faults_read_the_log_and_refuse_bad_input(sim_client):
    sim, client = sim_client
    async with aiohttp.ClientSession() as http:
        async def call(method: str, path: str, body=None) -> tuple[int, dict]:
            data = body if isinstance(body, (bytes, type(None))) else orjson.dumps(body)
            async with http.request(method, sim.rest_url + path, data=data) as response:
                return response.status, await response.json()

        status, rule = await call("POST", "/sim/faults", {"kind": "reject", "target": "POST /api/v3/order",
                                                          "code": -2010, "msg": "Duplicate order sent."})
        assert status == 200 and rule["id"] == 1
        for bad in (b"{nope", b"[1]", {"kind": "explode"}, {"kind": "reject", "count": -1},
                    {"kind": "reject", "bogus": 1}, {"kind": "reject", "count": "2"}):
            status, body = await call("POST", "/sim/faults", bad)
            assert status == 400 and "error" in body
        status, settings = await call("PUT", "/sim/faults/settings", {"fill_delay_ms": 1000, "event_delay": 0.5})
        assert status == 200 and (settings["fill_delay_ms"], settings["event_delay"]) == (1000, 0.5)
        assert (await call("PUT", "/sim/faults/settings", {"event_delay": -1}))[0] == 400
        with pytest.raises(BinanceAPIException) as err:
            await (await synced(client)).create_order(**BUY, **WINDOW)
        assert err.value.message == "Duplicate order sent."
        assert (await call("DELETE", "/sim/faults"))[0] == 200 and sim.faults.rules == []
        assert sim.faults.fill_delay_ms == 0
        status, _ = await call("POST", "/sim/deposit", {"api_key": KEY, "asset": "ETH", "amount": "2.5"})
        assert status == 200
        for bad in ({"api_key": "nobody", "asset": "ETH", "amount": "1"}, {"api_key": KEY, "asset": "ETH",
                                                                           "amount": "x"},
                    {"api_key": KEY, "asset": "ETH", "amount": "-100"}):
            assert (await call("POST", "/sim/deposit", bad))[0] == 400
        await (await synced(client)).create_order(**BUY, newClientOrderId="logged", **WINDOW)
        status, log = await call("GET", "/sim/log?kind=fill")
        assert status == 200 and [e["kind"] for e in log["entries"]] == ["fill"]
        status, log = await call("GET", f"/sim/log?since={log['entries'][0]['seq']}")
        assert status == 200 and all(e["seq"] > 0 for e in log["entries"])
        assert (await call("GET", "/sim/log?kind=bogus"))[0] == 400
        assert (await call("GET", "/sim/log?since=x"))[0] == 400
        assert (await call("POST", "/sim/user-streams/terminate", {"api_key": KEY}))[1] == {"streams": 0}


async def test_websocket_api_faults_hit_by_method_and_an_unanswered_order_is_still_placed(sim_client):
    sim, _ = sim_client

    sim.faults.add(Fault("drop_after", target="order.place"))
    sim.faults.add(Fault("error_after", target="order.place", status=500))
    sim.faults.add(Fault("rate_limit", target="account.status", retry_after=3))
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_api_url) as ws:
        for n, (method, params) in enumerate([("order.place", {**BUY, "newClientOrderId": "ws-dropped"}),
                                              ("ping", {}),
                                              ("order.place", {**BUY, "newClientOrderId": "ws-500"}),
                                              ("account.status", {})]):
            await ws.send_str(orjson.dumps({"id": n, "method": method,
                                            "params": ws_signed(sim, **params) if params or method != "ping" else {}
                                            }).decode())
        answers = {}
        async with asyncio.timeout(10):
            while len(answers) < 3:
                message = orjson.loads((await ws.receive()).data)
                answers[message["id"]] = message
    assert sorted(answers) == [1, 2, 3]  # one writer, in order: the ping's answer came, the dropped one never
    assert (answers[2]["status"], answers[2]["error"]["code"]) == (500, -1007)
    assert (answers[3]["status"], answers[3]["error"]["code"], answers[3]["error"]["data"]) == (
        429, -1003, {"retryAfter": 3})
    book = sim.accounts.books[KEY]
    assert sorted(o.client_order_id for o in book.orders.values() if o.status == "FILLED") == ["ws-500", "ws-dropped"]
    assert [(e.data["target"], e.data["fault"]) for e in sim.log.entries("request")] == [
        ("order.place", "drop_after"), ("order.place", "error_after"), ("account.status", "rate_limit")]
