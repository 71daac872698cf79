"""The live executor against the exchange simulator's matching engine, through python-binance's
AsyncClient: a market order fills and the Fill matches the account to the unit; an answer lost to a
5xx, a cut connection or a timeout is an unknown outcome resolved by asking (one order on the
exchange, never two); rejections and 429s are definite; -1021 re-syncs once."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import pytest
from binance import AsyncClient

from exchange_sim import ApiKey, Fault, Fees, Simulator
from machine.execution import LiveExecutor, OrderRejected, OrderRequest, OutcomeUnknown, RateLimited

KEY, SECRET = "live-key", "live-secret-0123456789"


@pytest.fixture
async def live(binance_data: Path):
    sim = Simulator(binance_data, speed=60, symbols=["BTCUSDT"], accounts=[ApiKey.hmac(KEY, SECRET)],
                    balances={"USDT": D("10000"), "BTC": D("0.5")}, fees=Fees(D("0.001"), D("0.001")),
                    slippage_bps=D(5))
    await sim.start()
    client = AsyncClient(api_key=KEY, api_secret=SECRET)
    client.API_URL = sim.rest_url + "/api"
    client.REQUEST_TIMEOUT = 2
    executor = LiveExecutor(client, D("0.001"), recv_window_ms=60000, query_delay_s=0.01)
    await executor.resync_clock()
    try:
        yield sim, client, executor
    finally:
        await client.close_connection()
        await sim.stop()


def orders_placed(sim: Simulator, client_order_id: str) -> int:
    return sum(1 for e in sim.log.entries("request")
               if e.data["method"] == "new_order" and e.data["params"].get("newClientOrderId") == client_order_id
               and e.data["status"] in (200, 503))


async def test_a_market_order_fills_and_the_fill_matches_the_account_to_the_unit(live):
    sim, client, executor = live
    fill = await executor.submit(OrderRequest("o01live", "BTCUSDT", "BUY", D("0.01000")))
    [trade] = sim.accounts.trades[KEY]
    assert (fill.quantity, fill.price, fill.fee, fill.fee_asset, fill.order_id) == (
        D("0.01"), trade.price, trade.commission, "BTC", trade.order_id)
    free_btc, locked = sim.accounts.books[KEY].balances["BTC"]
    assert (free_btc, locked) == (D("0.5") + fill.quantity - fill.fee, 0)
    assert await executor.query("o01live", "BTCUSDT") == fill  # the same fill when asked


@pytest.mark.parametrize("kind", ["error_after", "drop_after", "timeout_after"])
async def test_a_lost_answer_is_an_unknown_outcome_resolved_by_asking_never_by_resending(live, kind):
    sim, client, executor = live
    sim.faults.add(Fault(kind, target="POST /api/v3/order", delay=4))
    with pytest.raises(OutcomeUnknown):
        await executor.submit(OrderRequest(f"o01{kind}", "BTCUSDT", "BUY", D("0.01000")))
    known = await executor.query(f"o01{kind}", "BTCUSDT")
    [trade] = sim.accounts.trades[KEY]
    assert known is not None and (known.quantity, known.price, known.fee) == (D("0.01"), trade.price,
                                                                            trade.commission)
    assert orders_placed(sim, f"o01{kind}") == 1 and executor.unknown_outcomes == 1


async def test_rejections_and_429_are_definite_and_place_nothing(live):
    sim, client, executor = live
    sim.faults.add(Fault("reject", target="POST /api/v3/order", code=-2010,
                         msg="Account has insufficient balance for requested action."))
    with pytest.raises(OrderRejected) as err:
        await executor.submit(OrderRequest("o01rej", "BTCUSDT", "BUY", D("0.01000")))
    assert err.value.code == -2010 and not isinstance(err.value, RateLimited)
    with pytest.raises(OrderRejected) as err:  # a real filter failure from the matching engine
        await executor.submit(OrderRequest("o01lot", "BTCUSDT", "BUY", D("0.000001")))
    assert err.value.code == -1013
    sim.faults.add(Fault("rate_limit", target="POST /api/v3/order", retry_after=7))
    with pytest.raises(RateLimited) as err:
        await executor.submit(OrderRequest("o01rate", "BTCUSDT", "BUY", D("0.01000")))
    assert err.value.retry_after_s == 7
    assert sim.accounts.trades[KEY] == []
    assert await executor.query("o01rej", "BTCUSDT") is None  # never seen: -2013, asked 3 times
    asked = [e for e in sim.log.entries("request") if e.data["method"] == "query_order"
             and e.data["params"].get("origClientOrderId") == "o01rej"]
    assert len(asked) == 3 and {e.data["code"] for e in asked} == {-2013}


async def test_a_clock_offset_is_re_synced_once_and_the_order_sent_once(live):
    sim, client, executor = live
    sim.faults.clock_offset_ms = 120_000  # the server's clock jumps 2 minutes ahead
    fill = await executor.submit(OrderRequest("o01clock", "BTCUSDT", "SELL", D("0.01000")))
    assert fill.quantity == D("0.01") and fill.fee_asset == "USDT" and executor.resyncs == 2
    assert orders_placed(sim, "o01clock") == 1


async def test_orders_and_market_data_share_one_budget_a_429_pauses_both_a_418_stops_both(live):
    """One RequestBudget for the machine: the weight an order's response reports is the budget's, a 429 on
    an order holds the next market-data request for its Retry-After, and a 418 fails it fast."""
    from machine.credentials import ExchangeCredentials
    from machine.market import BinanceRest, IpBanned, RequestBudget
    from machine.venue import LiveVenue

    sim, _, _ = live
    budget = RequestBudget()
    rest = BinanceRest(sim.rest_url, budget=budget)
    venue = LiveVenue(ExchangeCredentials(KEY, SECRET), sim.rest_url, recv_window_ms=60000, budget=budget)
    try:
        await rest.exchange_symbols("USDT")
        await venue.start()
        assert budget.used_weight_1m is not None and budget.used_weight_1m >= 20 + 20  # exchangeInfo + account
        sim.faults.add(Fault("rate_limit", target="POST /api/v3/order", retry_after=1))
        with pytest.raises(RateLimited) as info:
            await venue.executor.submit(OrderRequest("o01limited", "BTCUSDT", "BUY", D("0.01000")))
        assert info.value.retry_after_s == 1
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await rest.server_time_ms()  # market data waits out the order's Retry-After
        assert loop.time() - t0 >= 0.9
        sim.faults.add(Fault("rate_limit", target="POST /api/v3/order", status=418, retry_after=120))
        with pytest.raises(RateLimited):
            await venue.executor.submit(OrderRequest("o01banned", "BTCUSDT", "BUY", D("0.01000")))
        with pytest.raises(IpBanned):
            await rest.server_time_ms()
        with pytest.raises(RateLimited):  # and the next order fails fast, unsent
            await venue.executor.submit(OrderRequest("o01unsent", "BTCUSDT", "BUY", D("0.01000")))
        assert orders_placed(sim, "o01unsent") == 0
    finally:
        await rest.close()
        await venue.close()
