"""Trading against the simulator over REST with python-binance's AsyncClient (HMAC) unchanged:
orders fill against the replayed prices, balances move, resting orders lock funds and fill when
the replay reaches them, and every refusal carries Binance's code."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal as D
from pathlib import Path
from types import MappingProxyType

import pytest
from binance import AsyncClient
from binance.exceptions import BinanceAPIException

from exchange_sim import Simulator
from exchange_sim._book import Fees
from exchange_sim._signing import ApiKey

KEY, SECRET = "sim-key-alice", "sim-secret-alice-0123456789"
WINDOW = MappingProxyType({"recvWindow": 60000})  # read-only: python-binance writes into a data= dict


async def synced(client: AsyncClient) -> AsyncClient:
    """What ``AsyncClient.create`` does after its ping: align the timestamps with the server's clock
    (the replay clock runs faster than the wall, so the tests align before each signed call)."""
    client.timestamp_offset = (await client.get_server_time())["serverTime"] - int(time.time() * 1000)
    return client


@contextlib.asynccontextmanager
async def trading(sim: Simulator):
    """``sim`` started, with python-binance's AsyncClient on Alice's key pointed at it."""
    await sim.start()
    client = AsyncClient(api_key=KEY, api_secret=SECRET)
    client.API_URL = sim.rest_url + "/api"
    try:
        yield sim, client
    finally:
        await client.close_connection()
        await sim.stop()


@pytest.fixture
async def sim_client(binance_data: Path):
    async with trading(Simulator(binance_data, speed=60, symbols=["BTCUSDT", "ETHUSDT"],
                                 accounts=[ApiKey.hmac(KEY, SECRET)], balances={"USDT": D("10000"), "BTC": D("0.5")},
                                 fees=Fees(D("0.001"), D("0.001")), slippage_bps=D(5))) as pair:
        yield pair


def balances(account: dict) -> dict[str, tuple[D, D]]:
    return {b["asset"]: (D(b["free"]), D(b["locked"])) for b in account["balances"]}


async def test_a_market_buy_fills_and_the_account_shows_it(sim_client):
    sim, client = sim_client
    order = await (await synced(client)).create_order(symbol="BTCUSDT", side="BUY", type="MARKET",
                                                      quantity="0.01000", newClientOrderId="buy-1", **WINDOW)
    assert order["status"] == "FILLED" and order["clientOrderId"] == "buy-1" and len(order["fills"]) == 1
    fill = order["fills"][0]
    price, qty = D(fill["price"]), D(fill["qty"])
    assert qty == D("0.01") and fill["commissionAsset"] == "BTC" and D(fill["commission"]) == D("0.00001")
    account = await (await synced(client)).get_account(**WINDOW)
    assert balances(account)["USDT"] == (D("10000") - price * qty, D(0))
    assert balances(account)["BTC"] == (D("0.5") + qty - D("0.00001"), D(0))
    trades = await (await synced(client)).get_my_trades(symbol="BTCUSDT", **WINDOW)
    assert [(D(t["price"]), t["isBuyer"], t["isMaker"]) for t in trades] == [(price, True, False)]
    known = await (await synced(client)).get_order(symbol="BTCUSDT", origClientOrderId="buy-1", **WINDOW)
    assert known["orderId"] == order["orderId"] and known["status"] == "FILLED"


async def test_my_trades_by_order_id_lists_that_orders_fills_only(sim_client):
    """Binance "Account trade list": ``orderId`` selects one order's trades (a commission read from them
    must not be another order's)."""
    sim, client = sim_client
    buy = await (await synced(client)).create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01000",
                                                    **WINDOW)
    sell = await (await synced(client)).create_order(symbol="BTCUSDT", side="SELL", type="MARKET",
                                                     quantity="0.00500", **WINDOW)
    for order, asset in ((buy, "BTC"), (sell, "USDT")):
        trades = await (await synced(client)).get_my_trades(symbol="BTCUSDT", orderId=order["orderId"], **WINDOW)
        assert [(t["orderId"], t["commissionAsset"]) for t in trades] == [(order["orderId"], asset)]
    assert len(await (await synced(client)).get_my_trades(symbol="BTCUSDT", **WINDOW)) == 2


async def test_a_resting_limit_locks_funds_fills_when_the_replay_reaches_it_and_can_be_cancelled(sim_client):
    sim, client = sim_client
    last = D((await client.get_symbol_ticker(symbol="BTCUSDT"))["price"])
    near = (last * D("1.0005")).quantize(D("0.01"))  # a sell just above: the replay reaches it soon
    far = (last * D("0.5")).quantize(D("0.01"))  # a buy at half the price: never, in this test
    sell = await (await synced(client)).create_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC",
                                                     quantity="0.10000", price=str(near), **WINDOW)
    buy = await (await synced(client)).create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                                    quantity="0.01000", price=str(far), **WINDOW)
    assert sell["status"] == buy["status"] == "NEW"
    account = balances(await (await synced(client)).get_account(**WINDOW))
    assert account["USDT"][1] == far * D("0.01") and account["BTC"][1] in (D("0.1"), D(0))  # locked (or filled)
    async with asyncio.timeout(60):  # a minute of wall time is an hour of replay
        while (await (await synced(client)).get_order(symbol="BTCUSDT", orderId=sell["orderId"],
                                                      **WINDOW))["status"] != "FILLED":
            await asyncio.sleep(0.2)
    [trade] = [t for t in await (await synced(client)).get_my_trades(symbol="BTCUSDT", **WINDOW)
               if t["orderId"] == sell["orderId"]]
    assert D(trade["price"]) == near and trade["isMaker"] and trade["commissionAsset"] == "USDT"
    opened = await (await synced(client)).get_open_orders(symbol="BTCUSDT", **WINDOW)
    assert [o["orderId"] for o in opened] == [buy["orderId"]]
    canceled = await (await synced(client)).cancel_order(symbol="BTCUSDT", orderId=buy["orderId"], **WINDOW)
    assert canceled["status"] == "CANCELED" and canceled["origClientOrderId"] == buy["clientOrderId"]
    account = balances(await (await synced(client)).get_account(**WINDOW))
    assert account["USDT"][1] == 0 and account["BTC"] == (D("0.4"), D(0))
    with pytest.raises(BinanceAPIException) as err:
        await (await synced(client)).cancel_order(symbol="BTCUSDT", orderId=buy["orderId"], **WINDOW)
    assert (err.value.code, err.value.message) == (-2011, "Unknown order sent.")
    with pytest.raises(BinanceAPIException) as err:
        await (await synced(client)).get_order(symbol="BTCUSDT", origClientOrderId="never-sent", **WINDOW)
    assert (err.value.code, err.value.message) == (-2013, "Order does not exist.")
    resting = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000",
               "price": str(far), "newClientOrderId": "twice", **WINDOW}
    await (await synced(client)).create_order(**resting)
    with pytest.raises(BinanceAPIException) as err:  # the client id of an open order
        await (await synced(client)).create_order(**resting)
    assert (err.value.code, err.value.message) == (-2010, "Duplicate order sent.")


@pytest.mark.parametrize(("params", "code"), [
    ({"side": "SELL", "type": "MARKET", "quantity": "5.00000"}, -2010),                  # more BTC than held
    ({"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000", "price": "1.001"}, -1013),
    ({"side": "BUY", "type": "LIMIT", "quantity": "0.01000", "price": "1000.00"}, -1102),  # no timeInForce
    ({"side": "BUY", "type": "MARKET", "quantity": "0.01000", "newOrderRespType": "ALL"}, -1100),  # was placed
])
async def test_refusals_carry_binance_s_codes_and_change_nothing(sim_client, params, code):
    sim, client = sim_client
    with pytest.raises(BinanceAPIException) as err:
        await (await synced(client)).create_order(symbol="BTCUSDT", **params, **WINDOW)
    assert err.value.code == code and err.value.status_code == 400
    assert balances(await (await synced(client)).get_account(**WINDOW)) == {"BTC": (D("0.5"), D(0)),
                                                                           "USDT": (D("10000"), D(0))}


async def test_a_wrong_secret_an_unknown_key_and_a_stale_timestamp_are_refused(sim_client):
    sim, client = sim_client
    for key, secret, code in ((KEY, "wrong-secret", -1022), ("nobody", SECRET, -2015)):
        other = AsyncClient(api_key=key, api_secret=secret)
        other.API_URL = sim.rest_url + "/api"
        try:
            with pytest.raises(BinanceAPIException) as err:
                await (await synced(other)).get_account(**WINDOW)
            assert err.value.code == code
        finally:
            await other.close_connection()
    client.timestamp_offset = 0  # the wall clock, years after the replayed market time
    with pytest.raises(BinanceAPIException) as err:
        await client.get_account()
    assert (err.value.code, err.value.message) == (-1021, "Timestamp for this request was 1000ms ahead of the "
                                                          "server's time.")


async def test_the_unfilled_order_count_rises_per_order_falls_per_fill_and_answers_429_over_its_limit(sim_client):
    import hashlib
    import hmac

    import aiohttp

    sim, client = sim_client
    last = D((await client.get_symbol_ticker(symbol="BTCUSDT"))["price"])
    far = (last * D("0.5")).quantize(D("0.01"))

    async def signed(http, method: str, path: str, **params) -> tuple[int, dict, dict]:
        now = (await client.get_server_time())["serverTime"]
        query = "&".join(f"{k}={v}" for k, v in {**params, "recvWindow": 60000, "timestamp": now}.items())
        signature = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
        async with http.request(method, f"{sim.rest_url}{path}?{query}&signature={signature}",
                                headers={"X-MBX-APIKEY": KEY}) as response:
            return response.status, dict(response.headers), await response.json()

    wall = [1_800_000_000.0]  # a frozen wall clock at the start of a 10 s window
    sim.accounts.order_count.clock = lambda: wall[0]
    resting = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.00100",
               "price": far}
    async with aiohttp.ClientSession() as http:
        counts = []
        for i in range(49):  # exchangeInfo: 50 unfilled orders per 10 seconds
            status, headers, body = await signed(http, "POST", "/api/v3/order", **resting)
            assert status == 200, body
            counts.append((int(headers["X-MBX-ORDER-COUNT-10S"]), int(headers["X-MBX-ORDER-COUNT-1D"])))
        assert counts == [(i, i) for i in range(1, 50)]
        # a market order fills at once: it counts and its fill takes it off again
        status, headers, body = await signed(http, "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY",
                                             type="MARKET", quantity="0.00100")
        assert status == 200 and body["status"] == "FILLED" and headers["X-MBX-ORDER-COUNT-10S"] == "49"
        status, headers, body = await signed(http, "POST", "/api/v3/order", **resting)
        assert status == 200 and headers["X-MBX-ORDER-COUNT-10S"] == "50"
        for params in (resting, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.00100"}):
            status, headers, body = await signed(http, "POST", "/api/v3/order", **params)
            assert status == 429 and body == {"code": -1015,
                                              "msg": "Too many new orders; current limit is 50 orders per 10 SECOND."}
        status, headers, body = await signed(http, "GET", "/api/v3/openOrders", symbol="BTCUSDT")
        assert status == 200 and len(body) == 50  # the refused orders were never placed
        before = int(headers["X-MBX-USED-WEIGHT-1M"])
        status, headers, _ = await signed(http, "GET", "/api/v3/account")
        assert int(headers["X-MBX-USED-WEIGHT-1M"]) == before + 1 + 20  # /time (1) then /account (20)
        wall[0] += 10  # the next 10 s window
        status, headers, body = await signed(http, "GET", "/api/v3/rateLimit/order")
        assert status == 200 and [(r["interval"], r["intervalNum"], r["limit"], r["count"]) for r in body] == [
            ("SECOND", 10, 50, 0), ("DAY", 1, 160000, 50)]
        status, headers, body = await signed(http, "POST", "/api/v3/order", **resting)
        assert status == 200 and (headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1D"]) == ("1", "51")


async def test_cancel_replace_moves_a_resting_order_and_reports_each_half(sim_client):
    sim, client = sim_client
    last = D((await client.get_symbol_ticker(symbol="BTCUSDT"))["price"])
    low, lower = (last * D("0.6")).quantize(D("0.01")), (last * D("0.55")).quantize(D("0.01"))
    first = await (await synced(client)).create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                                      quantity="0.01000", price=str(low), newClientOrderId="tp-1",
                                                      **WINDOW)
    moved = await (await synced(client)).cancel_replace_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000", price=str(lower),
        cancelReplaceMode="STOP_ON_FAILURE", cancelOrigClientOrderId="tp-1", newClientOrderId="tp-2", **WINDOW)
    assert (moved["cancelResult"], moved["newOrderResult"]) == ("SUCCESS", "SUCCESS")
    assert moved["cancelResponse"]["origClientOrderId"] == "tp-1" and moved["cancelResponse"]["status"] == "CANCELED"
    assert moved["newOrderResponse"]["clientOrderId"] == "tp-2" and D(moved["newOrderResponse"]["price"]) == lower
    opened = await (await synced(client)).get_open_orders(symbol="BTCUSDT", **WINDOW)
    assert [o["clientOrderId"] for o in opened] == ["tp-2"]
    assert balances(await (await synced(client)).get_account(**WINDOW))["USDT"][1] == lower * D("0.01")
    # the order to cancel is gone: STOP_ON_FAILURE places nothing, ALLOW_FAILURE places the new one
    with pytest.raises(BinanceAPIException) as err:
        await (await synced(client)).cancel_replace_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000", price=str(lower),
            cancelReplaceMode="STOP_ON_FAILURE", cancelOrderId=str(first["orderId"]), **WINDOW)
    assert (err.value.code, err.value.message) == (-2022, "Order cancel-replace failed.")
    with pytest.raises(BinanceAPIException) as err:
        await (await synced(client)).cancel_replace_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000", price=str(lower),
            cancelReplaceMode="ALLOW_FAILURE", cancelOrderId=str(first["orderId"]), newClientOrderId="tp-3",
            **WINDOW)
    assert err.value.code == -2021
    opened = await (await synced(client)).get_open_orders(symbol="BTCUSDT", **WINDOW)
    assert sorted(o["clientOrderId"] for o in opened) == ["tp-2", "tp-3"]
    from exchange_sim._trading_api import CancelReplaceFailed

    with pytest.raises(CancelReplaceFailed) as failed:  # the body's "data" (python-binance keeps only code and msg)
        sim._trading.cancel_replace(KEY, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                          "quantity": "0.01000", "price": str(lower),
                                          "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": "999"},
                                    sim.now_ms())
    assert failed.value.data == {"cancelResult": "FAILURE", "cancelResponse": {"code": -2011,
                                                                               "msg": "Unknown order sent."},
                                 "newOrderResult": "NOT_ATTEMPTED", "newOrderResponse": None}


async def test_a_test_order_places_nothing_but_keeps_the_fills_of_resting_orders(binance_data: Path):
    """``/order/test`` used to match on the live books and then restore them: a resting order the
    prices had reached in between was filled and then lost (its prices counted as seen)."""
    from exchange_sim._errors import BinanceAPIError
    from exchange_sim._book import NewOrder

    async with Simulator(binance_data, speed=1e-9, symbols=["BTCUSDT"], accounts=[ApiKey.hmac(KEY, SECRET)],
                         balances={"USDT": D(10000), "BTC": D(1)}) as sim:
        t0 = sim.now_ms()
        accounts = sim.accounts
        last = accounts.last_price("BTCUSDT", t0)
        rows = sim.history.closed_rows("BTCUSDT", t0 - t0 % 60_000 + 60_000, t0 - t0 % 60_000 + 31 * 60_000)
        high = max(D(repr(float(r[2]))) for r in rows)
        assert high > last  # the next half hour trades above the last price
        price = high.quantize(D("0.01"), rounding="ROUND_DOWN")
        sell = NewOrder("BTCUSDT", "SELL", "LIMIT", "s", quantity=D("0.01"), price=price, time_in_force="GTC")
        resting = accounts.place(KEY, sell, t0).order
        t1 = t0 - t0 % 60_000 + 31 * 60_000
        probe = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.00100", "newClientOrderId": "probe"}
        assert sim._trading.test_order(KEY, probe, t1) == {}  # the handler of POST /api/v3/order/test
        with pytest.raises(BinanceAPIError):  # checked like a real order
            sim._trading.test_order(KEY, {**probe, "quantity": "500.00000"}, t1)
        book = accounts.books[KEY]
        assert "probe" not in {o.client_order_id for o in book.orders.values()}  # ... and not placed
        assert book.orders[resting.order_id].status == "FILLED"  # the resting sell the prices reached
        assert [t.price for t in accounts.trades[KEY] if t.order_id == resting.order_id] == [price]


async def test_self_trade_prevention_expires_the_own_resting_order_by_default(sim_client):
    sim, client = sim_client
    info = await client.get_exchange_info()
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert btc["defaultSelfTradePreventionMode"] == "EXPIRE_MAKER"  # served so; the recording says NONE
    last = D((await client.get_symbol_ticker(symbol="BTCUSDT"))["price"])
    sell = await (await synced(client)).create_order(
        symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.10000",
        price=str((last * D("1.03")).quantize(D("0.01"))), newClientOrderId="tp", **WINDOW)
    buy = await (await synced(client)).create_order(  # marketable, and reaches the own sell: a self-trade
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="IOC", quantity="0.01000",
        price=str((last * D("1.05")).quantize(D("0.01"))), **WINDOW)
    assert buy["status"] == "FILLED" and buy["selfTradePreventionMode"] == "EXPIRE_MAKER"
    expired = await (await synced(client)).get_order(symbol="BTCUSDT", orderId=sell["orderId"], **WINDOW)
    assert expired["status"] == "EXPIRED_IN_MATCH" and expired["preventedMatchId"] == 1
    assert D(expired["preventedQuantity"]) == D("0.01")
    account = balances(await (await synced(client)).get_account(**WINDOW))
    assert account["BTC"] == (D("0.5") + D("0.01") - D("0.00001"), D(0))  # the sell's lock released
    with pytest.raises(BinanceAPIException) as err:
        await (await synced(client)).create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01000",
                                                  selfTradePreventionMode="DECREMENT", **WINDOW)
    assert err.value.code == -1100


async def test_oco_lists_place_query_fill_and_cancel_through_python_binance(sim_client):
    sim, client = sim_client
    last = D((await client.get_symbol_ticker(symbol="BTCUSDT"))["price"])
    near, far = (last * D("1.0005")).quantize(D("0.01")), (last * D("0.5")).quantize(D("0.01"))
    placed = await (await synced(client)).create_oco_order(  # POST /api/v3/orderList/oco
        symbol="BTCUSDT", side="SELL", quantity="0.20000", listClientOrderId="exit-1",
        aboveType="LIMIT_MAKER", abovePrice=str(near), aboveClientOrderId="exit-1-tp",
        belowType="STOP_LOSS_LIMIT", belowStopPrice=str(far), belowPrice=str(far - 1),
        belowTimeInForce="GTC", belowClientOrderId="exit-1-sl", **WINDOW)
    assert (placed["contingencyType"], placed["listStatusType"], placed["listOrderStatus"]) == (
        "OCO", "EXEC_STARTED", "EXECUTING")
    assert [o["clientOrderId"] for o in placed["orders"]] == ["exit-1-sl", "exit-1-tp"]
    assert [(r["type"], r["status"], r["orderListId"]) for r in placed["orderReports"]] == [
        ("STOP_LOSS_LIMIT", "NEW", placed["orderListId"]), ("LIMIT_MAKER", "NEW", placed["orderListId"])]
    assert balances(await (await synced(client)).get_account(**WINDOW))["BTC"] == (D("0.3"), D("0.2"))
    [listed] = await (await synced(client)).get_open_oco_orders(**WINDOW)  # GET /api/v3/openOrderList
    assert listed["listClientOrderId"] == "exit-1" and "orderReports" not in listed
    async with asyncio.timeout(60):  # the replay reaches the take-profit just above
        while (await (await synced(client))._get("orderList", True, data={
                "orderListId": placed["orderListId"], **WINDOW}))["listOrderStatus"] != "ALL_DONE":
            await asyncio.sleep(0.2)
    sl, tp = [await (await synced(client)).get_order(symbol="BTCUSDT", origClientOrderId=c, **WINDOW)
              for c in ("exit-1-sl", "exit-1-tp")]
    assert (sl["status"], tp["status"]) == ("EXPIRED", "FILLED")
    fee = (near * D("0.2") * D("0.001")).quantize(D("0.00000001"))
    account = balances(await (await synced(client)).get_account(**WINDOW))
    assert account["BTC"] == (D("0.3"), D(0)) and account["USDT"] == (D("10000") + near * D("0.2") - fee, D(0))
    assert await (await synced(client)).get_open_oco_orders(**WINDOW) == []

    # the deprecated POST /api/v3/order/oco, then DELETE /api/v3/orderList by its client id
    legacy = await (await synced(client))._post("order/oco", True, data={
        "symbol": "BTCUSDT", "side": "SELL", "quantity": "0.10000", "price": str(last * 2),
        "stopPrice": str(far), "stopLimitPrice": str(far - 1), "stopLimitTimeInForce": "GTC",
        "listClientOrderId": "exit-2", **WINDOW})
    assert [r["type"] for r in legacy["orderReports"]] == ["STOP_LOSS_LIMIT", "LIMIT_MAKER"]
    canceled = await (await synced(client))._delete("orderList", True, data={
        "symbol": "BTCUSDT", "listClientOrderId": "exit-2", **WINDOW})
    assert canceled["listOrderStatus"] == "ALL_DONE"
    assert [r["status"] for r in canceled["orderReports"]] == ["CANCELED", "CANCELED"]
    assert balances(await (await synced(client)).get_account(**WINDOW))["BTC"] == (D("0.3"), D(0))
    for call, code in ((lambda c: c._delete("orderList", True, data={"symbol": "BTCUSDT", "orderListId": 99,
                                                                      **WINDOW}), -2011),
                       (lambda c: c._get("orderList", True, data={"orderListId": 99, **WINDOW}), -2013),
                       (lambda c: c.create_oco_order(symbol="BTCUSDT", side="SELL", quantity="0.10000",
                                                     aboveType="LIMIT_MAKER", abovePrice=str(far),
                                                     belowType="STOP_LOSS", belowStopPrice=str(far - 10),
                                                     **WINDOW), -2010)):
        with pytest.raises(BinanceAPIException) as err:
            await call(await synced(client))
        assert err.value.code == code
    every = await (await synced(client))._get("allOrderList", True, data={**WINDOW})
    assert [lst["listClientOrderId"] for lst in every] == ["exit-1", "exit-2"]


@pytest.fixture
async def all_types_client(binance_data: Path, tmp_path: Path):
    """The recorded exchangeInfo with STOP_LOSS and TAKE_PROFIT (market on trigger) allowed for BTCUSDT:
    no recorded symbol lists them, so the test serves a copy that does (written to tmp_path)."""
    import json

    info = json.loads((binance_data / "exchangeInfo.json").read_text())
    for entry in info["symbols"]:
        if entry["symbol"] == "BTCUSDT":
            entry["orderTypes"] = [*entry["orderTypes"], "STOP_LOSS", "TAKE_PROFIT"]
    path = tmp_path / "exchangeInfo.json"
    path.write_text(json.dumps(info))
    async with trading(Simulator(binance_data, speed=60, symbols=["BTCUSDT"], accounts=[ApiKey.hmac(KEY, SECRET)],
                                 balances={"USDT": D("10000"), "BTC": D("0.5")}, exchange_info_path=path)) as pair:
        yield pair


@pytest.mark.parametrize(("kind", "side", "price", "stop"), [
    ("LIMIT", "BUY", "0.5", None), ("LIMIT_MAKER", "BUY", "0.5", None), ("STOP_LOSS", "SELL", None, "0.5"),
    ("STOP_LOSS_LIMIT", "SELL", "0.49", "0.5"), ("TAKE_PROFIT", "SELL", None, "2"),
    ("TAKE_PROFIT_LIMIT", "SELL", "2.01", "2"),
])
async def test_each_resting_order_type_is_placed_queried_cancel_replaced_and_cancelled(all_types_client, kind, side,
                                                                                       price, stop):
    sim, client = all_types_client
    last = D((await client.get_symbol_ticker(symbol="BTCUSDT"))["price"])
    qty = D("0.01000")

    def params(scale: D) -> dict:
        p = {"symbol": "BTCUSDT", "side": side, "type": kind, "quantity": str(qty)}
        if price is not None:
            p["price"] = str((last * D(price) * scale).quantize(D("0.01")))
        if stop is not None:
            p["stopPrice"] = str((last * D(stop) * scale).quantize(D("0.01")))
        if kind in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            p["timeInForce"] = "GTC"
        return p

    def locked(p: dict) -> dict[str, D]:
        if side == "BUY":
            return {"USDT": D(p.get("price") or p["stopPrice"]) * qty, "BTC": D(0)}
        return {"USDT": D(0), "BTC": qty}

    first = params(D(1))
    placed = await (await synced(client)).create_order(**first, newClientOrderId=f"{kind}-1", **WINDOW)
    known = await (await synced(client)).get_order(symbol="BTCUSDT", orderId=placed["orderId"], **WINDOW)
    assert (known["status"], known["type"], known["side"]) == ("NEW", kind, side)
    assert D(known["price"]) == D(first.get("price", "0")) and D(known["stopPrice"]) == D(first.get("stopPrice", "0"))
    held = balances(await (await synced(client)).get_account(**WINDOW))
    assert {a: held[a][1] for a in ("USDT", "BTC")} == locked(first)

    second = params(D("1.01"))
    moved = await (await synced(client)).cancel_replace_order(
        **second, cancelReplaceMode="STOP_ON_FAILURE", cancelOrigClientOrderId=f"{kind}-1",
        newClientOrderId=f"{kind}-2", **WINDOW)
    assert moved["cancelResponse"]["status"] == "CANCELED" and moved["newOrderResponse"]["clientOrderId"] == f"{kind}-2"
    held = balances(await (await synced(client)).get_account(**WINDOW))
    assert {a: held[a][1] for a in ("USDT", "BTC")} == locked(second)  # the first lock released, the second held
    await (await synced(client)).cancel_order(symbol="BTCUSDT", origClientOrderId=f"{kind}-2", **WINDOW)
    assert balances(await (await synced(client)).get_account(**WINDOW)) == {"BTC": (D("0.5"), D(0)),
                                                                           "USDT": (D("10000"), D(0))}
    statuses = [o["status"] for o in await (await synced(client)).get_all_orders(symbol="BTCUSDT", **WINDOW)]
    assert statuses == ["CANCELED", "CANCELED"]
