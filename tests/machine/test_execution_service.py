"""ExecutionService + TradingRepository against a real Postgres."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from machine.execution import ExecutionService, NoPrice, PaperExecutor, RiskDenied, SymbolRules
from machine.persistence import SignalRepository, TraderRepository, TradingRepository, open_pool

RULES = {"BTCUSDT": SymbolRules(D("0.01"), D("0.00001"), D("0.00001"), D("5")),
         "DOGEUSDT": SymbolRules(D("0.00001"), D("1"), D("1"), D("5"))}


@pytest.fixture
async def env(db_url):
    pool = await open_pool(db_url)
    user_id = await pool.fetchval("INSERT INTO users (email, tier, subscription_status) VALUES ('e@x', 'pro', 'active') RETURNING id")
    trader_id = await pool.fetchval(
        "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, reanalysis_interval, "
        "stop_loss_pct, take_profit_pct, position_size_pct, max_positions) "
        "VALUES ($1, 't', 'x', 'y', '{1m}', '1m_close', '5m', 2, 4, 10, 1) RETURNING id", user_id)
    trader = (await TraderRepository(pool).load_active(user_id))[0]
    prices: dict[str, D] = {"BTCUSDT": D("50000.00"), "DOGEUSDT": D("0.31234")}
    opened, closed = [], []
    repo = TradingRepository(pool)
    service = ExecutionService(
        user_id=user_id, repo=repo, executors={"paper": PaperExecutor(prices.get, D("0.001"), "USDT")},
        rules=RULES.get, last_price=prices.get, quote_asset="USDT", start_balance=D("10000"),
        on_opened=opened.append, on_closed=lambda p, r: closed.append((p, r)),
    )
    signals = SignalRepository(pool)
    yield pool, user_id, trader, service, signals, prices, opened, closed
    await pool.close()


async def test_open_then_close_books_fills_fees_and_pnl(env):
    pool, user_id, trader, service, signals, prices, opened, closed = env
    sig = await signals.create(trader.id, user_id, "BTCUSDT", 1_620_000_000_000, prices["BTCUSDT"])
    pos = await service.open(trader, sig, "BTCUSDT", "long", stop_loss=None, take_profit=D("60000"))
    # 10 % of 10,000 USDT at 50,000 -> 0.02 BTC; SL from risk (2 %), TP from the decision
    assert (pos.size, pos.entry_price, pos.stop_loss, pos.take_profit) == (D("0.02"), D("50000.00"), D("49000.00"), D("60000"))
    assert opened == [pos]
    assert await pool.fetchval("SELECT status FROM signals WHERE id = $1", sig) == "position_open"
    assert await pool.fetchval("SELECT balance FROM paper_accounts WHERE trader_id = $1", trader.id) == D("8999.00000000")

    prices["BTCUSDT"] = D("51000.00")
    pnl, pct = await service.close(pos, "take_profit")
    # (51000 - 50000) * 0.02 - fees (1.00 + 1.02)
    assert pnl == D("17.98") and pct == D("1.7980")
    row = await pool.fetchrow("SELECT * FROM positions WHERE id = $1", pos.id)
    assert (row["status"], row["exit_price"], row["pnl"], row["close_reason"]) == ("closed", D("51000.00"), D("17.98"), "take_profit")
    assert await pool.fetchval("SELECT balance FROM paper_accounts WHERE trader_id = $1", trader.id) == D("10017.98")
    coids = [r["client_order_id"] for r in await pool.fetch("SELECT client_order_id FROM trades ORDER BY created_at")]
    assert coids == ["o01" + pos.id.hex, "c01" + pos.id.hex]
    assert await pool.fetchval("SELECT status FROM signals WHERE id = $1", sig) == "closed"
    assert closed[0][1] == "take_profit"
    # closing again sends nothing: the filled close intent blocks a second one
    assert await service.close(pos, "take_profit") is None
    assert await pool.fetchval("SELECT count(*) FROM trades") == 2


async def test_risk_gate_denies_without_writing(env):
    pool, user_id, trader, service, signals, prices, *_ = env
    s1 = await signals.create(trader.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
    await service.open(trader, s1, "BTCUSDT", "short", stop_loss=None, take_profit=None)
    s2 = await signals.create(trader.id, user_id, "DOGEUSDT", 1, prices["DOGEUSDT"])
    with pytest.raises(RiskDenied, match="max_positions"):
        await service.open(trader, s2, "DOGEUSDT", "long", stop_loss=None, take_profit=None)
    with pytest.raises(RiskDenied, match="not a tradable symbol"):
        await service.open(trader, s2, "NOPEUSDT", "long", stop_loss=None, take_profit=None)
    assert await pool.fetchval("SELECT count(*) FROM positions") == 1
    assert await pool.fetchval("SELECT count(*) FROM trades") == 1


async def test_failed_order_cancels_the_intent_and_a_retry_gets_a_new_id(env):
    pool, user_id, trader, service, signals, prices, *_ = env
    sig = await signals.create(trader.id, user_id, "DOGEUSDT", 1, prices["DOGEUSDT"])
    pos = await service.open(trader, sig, "DOGEUSDT", "long", stop_loss=None, take_profit=None)
    assert pos.size == D("3201")  # 1000 USDT / 0.31234, step size 1
    del prices["DOGEUSDT"]
    with pytest.raises(NoPrice):
        await service.close(pos, "stop_loss")
    assert await pool.fetchval("SELECT status FROM trades WHERE purpose = 'close'") == "cancelled"
    assert await pool.fetchval("SELECT status FROM positions WHERE id = $1", pos.id) == "open"
    prices["DOGEUSDT"] = D("0.30000")
    await service.close(pos, "stop_loss")
    rows = await pool.fetch("SELECT client_order_id, status FROM trades WHERE purpose = 'close' ORDER BY created_at")
    assert [(r["client_order_id"][:3], r["status"]) for r in rows] == [("c01", "cancelled"), ("c02", "filled")]


async def test_concurrent_opens_respect_max_positions(env):
    import asyncio

    pool, user_id, trader, service, signals, prices, *_ = env
    prices.update({f"S{i}USDT": D("1.0") for i in range(6)})
    RULES.update({f"S{i}USDT": SymbolRules(D("0.0001"), D("1"), D("1"), D("5")) for i in range(6)})
    sigs = [await signals.create(trader.id, user_id, f"S{i}USDT", 1, D("1.0")) for i in range(6)]
    results = await asyncio.gather(
        *(service.open(trader, s, f"S{i}USDT", "long", stop_loss=None, take_profit=None) for i, s in enumerate(sigs)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == trader.risk.max_positions == 1
    assert all(isinstance(r, RiskDenied) for r in results if isinstance(r, Exception))
    assert await pool.fetchval("SELECT count(*) FROM positions") == 1
