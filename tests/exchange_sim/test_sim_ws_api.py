"""The WebSocket API and the user data stream on it: python-binance's ``BinanceSocketManager.user_socket()``
(``userDataStream.subscribe.signature``) receives the executionReports of REST orders in Binance's order,
its ``ws_*`` order methods trade over ``/ws-api/v3``, an Ed25519 session logs on and subscribes, and
hostile frames are answered with Binance's codes."""

from __future__ import annotations

import asyncio
import base64
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
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange_sim import Simulator
from exchange_sim._book import Fees
from exchange_sim._signing import ApiKey

KEY, SECRET = "sim-key-alice", "sim-secret-alice-0123456789"
ED_KEY = "sim-key-bob"
ED_PRIVATE = Ed25519PrivateKey.generate()
ED_PEM = ED_PRIVATE.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
WINDOW = MappingProxyType({"recvWindow": 60000})  # read-only: python-binance writes into a data= dict


async def synced(client: AsyncClient) -> AsyncClient:
    client.timestamp_offset = (await client.get_server_time())["serverTime"] - int(time.time() * 1000)
    return client


@pytest.fixture
async def sim_client(binance_data: Path):
    sim = Simulator(binance_data, speed=60, symbols=["BTCUSDT", "ETHUSDT"],
                    accounts=[ApiKey.hmac(KEY, SECRET), ApiKey.ed25519(ED_KEY, ED_PEM)],
                    balances={"USDT": D("10000"), "BTC": D("0.5")}, fees=Fees(D("0.001"), D("0.001")))
    await sim.start()
    client = AsyncClient(api_key=KEY, api_secret=SECRET)
    client.API_URL = sim.rest_url + "/api"
    client.ws_api._url = sim.ws_api_url
    # python-binance's read loop wakes every TIMEOUT s (10) and closing waits for it; requests here answer in ms
    client.ws_api.TIMEOUT = 1
    try:
        yield sim, client
    finally:
        await client.close_connection()
        await sim.stop()


async def next_event(stream, kind: str | None = None) -> dict:
    async with asyncio.timeout(10):
        while True:
            event = await stream.recv()
            if kind is None or event["e"] == kind:
                return event


async def test_user_socket_receives_the_execution_reports_of_rest_orders_in_binance_s_order(sim_client):
    sim, client = sim_client
    await synced(client)
    async with BinanceSocketManager(client).user_socket() as stream:
        order = await (await synced(client)).create_order(symbol="BTCUSDT", side="BUY", type="MARKET",
                                                          quantity="0.01000", newClientOrderId="buy-1", **WINDOW)
        new, trade, position = [await next_event(stream) for _ in range(3)]
        assert (new["e"], new["x"], new["X"], new["c"], new["i"]) == ("executionReport", "NEW", "NEW", "buy-1",
                                                                      order["orderId"])
        fill = order["fills"][0]
        assert (trade["x"], trade["X"], trade["l"], trade["L"], trade["n"], trade["N"], trade["t"], trade["m"]) == (
            "TRADE", "FILLED", fill["qty"], fill["price"], fill["commission"], "BTC", fill["tradeId"], False)
        assert position["e"] == "outboundAccountPosition"
        account = {b["asset"]: b for b in (await (await synced(client)).get_account(**WINDOW))["balances"]}
        assert {b["a"]: (b["f"], b["l"]) for b in position["B"]} == {
            a: (account[a]["free"], account[a]["locked"]) for a in ("BTC", "USDT")}

        last = D((await client.get_symbol_ticker(symbol="BTCUSDT"))["price"])
        resting = await (await synced(client)).create_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000",
            price=str((last * D("0.5")).quantize(D("0.01"))), newClientOrderId="rest-1", **WINDOW)
        assert (await next_event(stream, "executionReport"))["x"] == "NEW"
        await (await synced(client)).cancel_order(symbol="BTCUSDT", orderId=resting["orderId"],
                                                  newClientOrderId="cancel-1", **WINDOW)
        canceled = await next_event(stream, "executionReport")
        assert (canceled["x"], canceled["X"], canceled["c"], canceled["C"]) == ("CANCELED", "CANCELED", "cancel-1",
                                                                                "rest-1")  # own id in C
        assert (await next_event(stream))["e"] == "outboundAccountPosition"  # the lock released

        # an OCO: both legs NEW, then listStatus
        oco = await (await synced(client)).create_oco_order(
            symbol="BTCUSDT", side="SELL", quantity="0.01000", aboveType="LIMIT_MAKER",
            abovePrice=str((last * 2).quantize(D("0.01"))), belowType="STOP_LOSS_LIMIT",
            belowStopPrice=str((last * D("0.5")).quantize(D("0.01"))),
            belowPrice=str((last * D("0.49")).quantize(D("0.01"))), belowTimeInForce="GTC", **WINDOW)
        legs = [await next_event(stream) for _ in range(2)]
        listed = await next_event(stream)
        assert (await next_event(stream))["e"] == "outboundAccountPosition"
        assert [(e["x"], e["g"]) for e in legs] == [("NEW", oco["orderListId"])] * 2
        assert (listed["e"], listed["l"], listed["L"], listed["g"]) == ("listStatus", "EXEC_STARTED", "EXECUTING",
                                                                        oco["orderListId"])
        sim.deposit(KEY, "USDT", D("25"))
        update = await next_event(stream)
        assert (update["e"], update["a"], update["d"]) == ("balanceUpdate", "USDT", "25.00000000")


async def test_python_binance_ws_methods_trade_over_the_websocket_api(sim_client):
    sim, client = sim_client
    await synced(client)
    placed = await client.ws_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01000",
                                          newClientOrderId="ws-1", **WINDOW)
    assert placed["status"] == "FILLED" and placed["clientOrderId"] == "ws-1"
    known = await (await synced(client)).ws_get_order(symbol="BTCUSDT", origClientOrderId="ws-1", **WINDOW)
    assert known["orderId"] == placed["orderId"] and known["status"] == "FILLED"
    account = await (await synced(client)).ws_get_account(**WINDOW)
    assert {b["asset"] for b in account["balances"]} == {"BTC", "USDT"}
    assert await (await synced(client)).ws_get_open_orders(symbol="BTCUSDT", **WINDOW) == []
    with pytest.raises(Exception) as err:  # python-binance raises BinanceAPIException for status != 200
        await (await synced(client)).ws_cancel_order(symbol="BTCUSDT", orderId=999, **WINDOW)
    assert getattr(err.value, "code", None) == -2011


class Raw:
    """A bare WebSocket API connection (what any Binance client sends)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, sim: Simulator) -> None:
        self.ws, self.sim, self.n = ws, sim, 0
        self.events: list[dict] = []  # events that arrived while waiting for an answer

    async def send(self, method: str, **params) -> dict:
        self.n += 1
        await self.ws.send_str(orjson.dumps({"id": f"r{self.n}", "method": method, "params": params}).decode())
        return await self.answer(f"r{self.n}")

    async def answer(self, request_id) -> dict:
        async with asyncio.timeout(10):
            while True:
                message = orjson.loads((await self.ws.receive()).data)
                if "event" in message:
                    self.events.append(message)
                elif message.get("id") == request_id:
                    return message

    async def event(self) -> dict:
        if self.events:
            return self.events.pop(0)
        async with asyncio.timeout(10):
            while True:
                message = orjson.loads((await self.ws.receive()).data)
                if "event" in message:
                    return message


def ed_signed(sim: Simulator, age_ms: int = 0, **params) -> dict:
    params = {**params, "apiKey": ED_KEY, "timestamp": sim.now_ms() - age_ms, "recvWindow": 60000}
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return {**params, "signature": base64.b64encode(ED_PRIVATE.sign(payload.encode())).decode()}


async def test_an_ed25519_session_logs_on_subscribes_trades_unsigned_and_logout_ends_its_stream(sim_client):
    sim, _ = sim_client
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_api_url) as ws:
        raw = Raw(ws, sim)
        logon = await raw.send("session.logon", **ed_signed(sim))
        assert logon["status"] == 200 and logon["result"]["apiKey"] == ED_KEY
        assert logon["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
        subscribed = await raw.send("userDataStream.subscribe")
        assert subscribed["result"] == {"subscriptionId": 0}
        placed = await raw.send("order.place", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01000",
                                timestamp=sim.now_ms(), recvWindow=60000)  # no apiKey, no signature: the session's
        assert placed["status"] == 200 and placed["result"]["status"] == "FILLED"
        assert [r["intervalNum"] for r in placed["rateLimits"] if r["rateLimitType"] == "ORDERS"] == [10, 1]
        events = [(await raw.event()) for _ in range(3)]  # they were sent before the answer
        assert [m["event"]["e"] for m in events] == ["executionReport", "executionReport", "outboundAccountPosition"]
        assert {m["subscriptionId"] for m in events} == {0}
        logout = await raw.send("session.logout")
        assert logout["result"]["apiKey"] is None
        ended = await raw.event()
        assert ended == {"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": ended["event"]["E"]}}
        refused = await raw.send("order.status", symbol="BTCUSDT", orderId=1, timestamp=sim.now_ms())
        assert refused["status"] == 400 and refused["error"]["code"] == -1102  # logged out: apiKey needed again


async def test_hostile_frames_get_binance_s_errors_and_the_connection_keeps_working(sim_client):
    sim, _ = sim_client
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_api_url + "?returnRateLimits=false") as ws:
        raw = Raw(ws, sim)
        for frame in ("{not json", "[1, 2]", '{"id": 7, "params": "x"}'):
            await ws.send_str(frame)
            answer = await raw.answer(None)
            assert (answer["status"], answer["error"]["code"]) == (400, -1135)
        assert (await raw.send("no.such.method"))["error"]["code"] == -1020
        wrong = ed_signed(sim, symbol="BTCUSDT")
        wrong["symbol"] = "ETHUSDT"  # signed for another symbol
        answer = await raw.send("openOrders.status", **wrong)
        assert (answer["status"], answer["error"]) == (400, {"code": -1022,
                                                             "msg": "Signature for this request is not valid."})
        assert "rateLimits" not in answer
        stale = await raw.send("account.status", **ed_signed(sim, age_ms=int(120_000 * sim.speed)))  # 2 wall min old
        assert stale["error"] == {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
        params = {"apiKey": KEY, "timestamp": sim.now_ms(), "recvWindow": 60000}
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        signature = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        hmac_logon = await raw.send("session.logon", **params, signature=signature)  # a valid HMAC signature
        assert (hmac_logon["status"], hmac_logon["error"]["code"]) == (401, -1002)  # Ed25519 keys only
        assert (await raw.send("userDataStream.subscribe"))["status"] == 401  # not logged on
        assert (await raw.send("userDataStream.unsubscribe", subscriptionId="x"))["error"]["code"] == -1130
        assert (await raw.send("userDataStream.unsubscribe", subscriptionId=5))["result"] == {}  # none: no-op
        good = await raw.send("account.status", **ed_signed(sim))
        assert good["status"] == 200 and good["result"]["accountType"] == "SPOT"
        assert (await raw.send("time"))["result"]["serverTime"] > 0
    assert sim._ws_api.malformed == 3


async def test_the_listen_key_endpoints_are_gone(sim_client):
    sim, client = sim_client
    with pytest.raises(Exception) as err:  # POST /api/v3/userDataStream
        await client.stream_get_listen_key()
    assert getattr(err.value, "status_code", None) == 410
    async with aiohttp.ClientSession() as http:
        for method in ("PUT", "DELETE"):
            async with http.request(method, sim.rest_url + "/api/v3/userDataStream?listenKey=x",
                                    headers={"X-MBX-APIKEY": KEY}) as response:
                assert response.status == 410 and (await response.json())["code"] == -1020
