"""A live-mode open through ExecutionService and the LiveExecutor against the exchange simulator:
an answer lost to a 5xx is resolved by asking and the position opens on the one order the exchange
has; when the exchange cannot tell either, the intent stays pending (never cancelled, never resent);
a rejection cancels the intent."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from binance import AsyncClient

from exchange_sim import ApiKey, Fault, Fees, Simulator
from machine.execution import (ExecutionService, LiveExecutor, OrderRejected, OutcomeUnknown, SymbolRules)
from machine.persistence import SignalRepository, TraderRepository, TradingRepository, open_pool

KEY, SECRET = "live-key", "live-secret-0123456789"
RULES = {"BTCUSDT": SymbolRules(D("0.01"), D("0.00001"), D("0.00001"), D("5"), "BTC", "USDT")}


def market_orders(sim) -> list:
    """The account's market orders (entries, closes, reduces); the exits' OCO legs are the others."""
    return [o for o in sim.accounts.books[KEY].orders.values() if o.type == "MARKET"]


@pytest.fixture
async def live_env(db_url, binance_data: Path):
    pool = await open_pool(db_url)
    user_id = await pool.fetchval("INSERT INTO users (email, tier, subscription_status) VALUES ('l@x', 'pro', 'active') "
                                  "RETURNING id")
    await pool.execute(
        "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, "
        "reanalysis_interval, stop_loss_pct, take_profit_pct, position_size_pct, max_positions, mode) "
        "VALUES ($1, 'live', 'x', 'y', '{1m}', '1m_close', '5m', 2, 4, 10, 1, 'live')", user_id)
    [trader] = await TraderRepository(pool).load_active(user_id)
    sim = Simulator(binance_data, speed=60, symbols=["BTCUSDT"], accounts=[ApiKey.hmac(KEY, SECRET)],
                    balances={"USDT": D("10000")}, fees=Fees(D("0.001"), D("0.001")))
    await sim.start()
    client = AsyncClient(api_key=KEY, api_secret=SECRET)
    client.API_URL = sim.rest_url + "/api"
    client.REQUEST_TIMEOUT = 2
    executor = LiveExecutor(client, D("0.001"), recv_window_ms=60000, query_delay_s=0.01)
    await executor.resync_clock()

    def last_price(symbol: str) -> D | None:
        return sim.accounts.last_price(symbol, sim.now_ms())

    service = ExecutionService(user_id=user_id, repo=TradingRepository(pool), executors={"live": executor},
                               rules=RULES.get, last_price=last_price, quote_asset="USDT", start_balance=D("10000"),
                               on_opened=lambda p: None, on_closed=lambda p, r: None)
    signal = await SignalRepository(pool).create(trader.id, user_id, "BTCUSDT", sim.now_ms(), last_price("BTCUSDT"))
    try:
        yield pool, sim, trader, service, signal
    finally:
        await client.close_connection()
        await sim.stop()
        await pool.close()


async def test_a_lost_answer_opens_the_position_on_the_one_order_the_exchange_has(live_env):
    pool, sim, trader, service, signal = live_env
    sim.faults.add(Fault("error_after", target="POST /api/v3/order"))
    position = await service.open(trader, signal, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    [trade] = sim.accounts.trades[KEY]
    assert (position.entry_price, position.size) == (trade.price, trade.qty - trade.commission)
    row = await pool.fetchrow("SELECT status, client_order_id, binance_order_id FROM trades WHERE purpose = 'open'")
    assert (row["status"], row["client_order_id"], row["binance_order_id"]) == ("filled", "o01" + position.id.hex,
                                                                        trade.order_id)
    assert len(market_orders(sim)) == 1  # asked, never sent again


async def test_when_the_exchange_cannot_tell_either_the_intent_stays_pending(live_env):
    pool, sim, trader, service, signal = live_env
    sim.faults.add(Fault("error_after", target="POST /api/v3/order"))
    sim.faults.add(Fault("error_after", target="GET /api/v3/order", count=0))
    with pytest.raises(OutcomeUnknown):
        await service.open(trader, signal, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    assert await pool.fetchval("SELECT status FROM trades WHERE purpose = 'open'") == "pending"
    assert service.orders_unresolved == 1 and len(market_orders(sim)) == 1


async def test_a_rejection_cancels_the_intent(live_env):
    pool, sim, trader, service, signal = live_env
    sim.faults.add(Fault("reject", target="POST /api/v3/order", code=-2010,
                         msg="Account has insufficient balance for requested action."))
    with pytest.raises(OrderRejected):
        await service.open(trader, signal, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    assert await pool.fetchval("SELECT status FROM trades WHERE purpose = 'open'") == "cancelled"
    assert sim.accounts.books[KEY].orders == {}


async def test_a_close_whose_answer_is_lost_is_booked_from_the_exchange_and_a_pending_one_resolved_later(live_env):
    pool, sim, trader, service, signal = live_env
    position = await service.open(trader, signal, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    sim.faults.add(Fault("error_after", target="POST /api/v3/order"))
    pnl, _ = await service.close(position, "manual")
    [_, sold] = sim.accounts.trades[KEY]
    assert sold.side == "SELL" and pnl is not None
    assert await pool.fetchval("SELECT status FROM positions WHERE id = $1", position.id) == "closed"
    assert len(market_orders(sim)) == 2

    signal2 = await SignalRepository(pool).create(trader.id, trader.user_id, "BTCUSDT", sim.now_ms(),
                                                  sim.accounts.last_price("BTCUSDT", sim.now_ms()))
    second = await service.open(trader, signal2, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    sim.faults.add(Fault("error_after", target="POST /api/v3/order"))
    sim.faults.add(Fault("error_after", target="GET /api/v3/order"))
    with pytest.raises(OutcomeUnknown):
        await service.close(second, "manual")
    assert await pool.fetchval("SELECT status FROM trades WHERE position_id = $1 AND purpose = 'close'",
                               second.id) == "pending"
    assert await pool.fetchval("SELECT status FROM positions WHERE id = $1", second.id) == "open"
    await service.close(second, "manual")  # the exchange answers again: the pending close is asked, booked
    assert await pool.fetchval("SELECT status FROM positions WHERE id = $1", second.id) == "closed"
    assert len(market_orders(sim)) == 4  # two opens, two closes: nothing sent twice


async def test_a_reduce_step_whose_answer_is_lost_is_booked_from_the_exchange(live_env):
    import uuid
    from decimal import ROUND_DOWN

    pool, sim, trader, service, signal = live_env
    position = await service.open(trader, signal, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    half = (position.size / 2).quantize(D("0.00001"), rounding=ROUND_DOWN)
    sim.faults.add(Fault("drop_after", target="POST /api/v3/order"))
    reduced = await service.reduce(position, sequence_id=uuid.uuid4(), step=1, quantity=half)
    [_, sold] = sim.accounts.trades[KEY]
    assert (sold.side, sold.qty) == ("SELL", half) and reduced.size == position.size - half
    assert len(market_orders(sim)) == 2 and service.orders_sent == 2
