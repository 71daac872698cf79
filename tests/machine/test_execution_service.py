"""ExecutionService + TradingRepository + the paper account against a real Postgres."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal as D

import pytest

from machine.execution import ExecutionService, NoPrice, PaperExecutor, RiskDenied, SymbolRules, Trigger
from machine.persistence import SignalRepository, TraderRepository, TradingRepository, open_pool

RULES = {"BTCUSDT": SymbolRules(D("0.01"), D("0.00001"), D("0.00001"), D("5"), "BTC", "USDT"),
         "DOGEUSDT": SymbolRules(D("0.00001"), D("1"), D("1"), D("5"), "DOGE", "USDT")}


def assets(symbol: str) -> tuple[str, str]:
    return symbol[:-4], "USDT"


async def add_trader(pool, user_id, name="t", size_pct=10, max_positions=1):
    await pool.execute(
        "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, reanalysis_interval, "
        "stop_loss_pct, take_profit_pct, position_size_pct, max_positions) "
        "VALUES ($1, $2, 'x', 'y', '{1m}', '1m_close', '5m', 2, 4, $3, $4)", user_id, name, size_pct, max_positions)
    return next(t for t in await TraderRepository(pool).load_active(user_id) if t.name == name)


@pytest.fixture
async def env(db_url):
    pool = await open_pool(db_url)
    user_id = await pool.fetchval("INSERT INTO users (email, tier, subscription_status) VALUES ('e@x', 'pro', 'active') RETURNING id")
    trader = await add_trader(pool, user_id)
    prices: dict[str, D] = {"BTCUSDT": D("50000.00"), "DOGEUSDT": D("0.31234")}
    opened, closed = [], []
    repo = TradingRepository(pool)
    executor = PaperExecutor(prices.get, D("0.001"), RULES.__getitem__)
    service = ExecutionService(
        user_id=user_id, repo=repo, executors={"paper": executor},
        rules=RULES.get, last_price=prices.get, quote_asset="USDT", start_balance=D("10000"),
        on_opened=opened.append, on_closed=lambda p, r: closed.append((p, r)),
    )
    signals = SignalRepository(pool)
    yield pool, user_id, trader, service, signals, prices, opened, closed
    await pool.close()


async def balances(pool, trader_id) -> dict[str, tuple[D, D]]:
    return await TradingRepository(pool).balances(trader_id)


async def test_open_then_close_books_fills_commissions_and_pnl(env):
    pool, user_id, trader, service, signals, prices, opened, closed = env
    sig = await signals.create(trader.id, user_id, "BTCUSDT", 1_620_000_000_000, prices["BTCUSDT"])
    pos = await service.open(trader, sig, "BTCUSDT", "long", stop_loss=None, take_profit=D("60000"))
    # 10 % of 10,000 USDT equity at 50,000 -> 0.02 BTC bought; the commission (0.1 %) is paid in BTC,
    # so the position holds 0.01998 BTC; SL from risk (2 %), TP from the decision
    assert (pos.size, pos.entry_price, pos.stop_loss, pos.take_profit) == (D("0.01998"), D("50000.00"), D("49000.00"), D("60000"))
    assert opened == [pos] and not pos.paper_only and pos.reserved == 0
    assert await pool.fetchval("SELECT status FROM signals WHERE id = $1", sig) == "position_open"
    assert await balances(pool, trader.id) == {"BTC": (D("0.01998"), D(0)), "USDT": (D("9000"), D(0))}
    entry = await pool.fetchrow("SELECT quantity, fee, fee_asset FROM trades WHERE purpose = 'open'")
    assert (entry["quantity"], entry["fee"], entry["fee_asset"]) == (D("0.02"), D("0.00002"), "BTC")

    prices["BTCUSDT"] = D("51000.00")
    pnl, pct = await service.close(pos, "take_profit")
    # sells the 0.01998 BTC held: 1018.98 USDT, commission 1.01898 USDT; pnl = 1018.98 - 1.01898 - 1000
    assert pnl == D("17.96102") and pct == D("1.7961")
    row = await pool.fetchrow("SELECT * FROM positions WHERE id = $1", pos.id)
    assert (row["status"], row["exit_price"], row["pnl"], row["close_reason"]) == ("closed", D("51000.00"), D("17.96102"), "take_profit")
    assert await balances(pool, trader.id) == {"BTC": (D(0), D(0)), "USDT": (D("10017.96102"), D(0))}
    coids = [r["client_order_id"] for r in await pool.fetch("SELECT client_order_id FROM trades ORDER BY created_at")]
    assert coids == ["o01" + pos.id.hex, "c01" + pos.id.hex]
    assert await pool.fetchval("SELECT status FROM signals WHERE id = $1", sig) == "closed"
    assert closed[0][1] == "take_profit"
    # closing again sends nothing: the filled close intent blocks a second one
    assert await service.close(pos, "take_profit") is None
    assert await pool.fetchval("SELECT count(*) FROM trades") == 2


async def test_a_long_close_sells_what_is_held_rounded_to_the_step(env):
    pool, user_id, trader, service, signals, prices, *_ = env
    sig = await signals.create(trader.id, user_id, "DOGEUSDT", 1, prices["DOGEUSDT"])
    pos = await service.open(trader, sig, "DOGEUSDT", "long", stop_loss=None, take_profit=None)
    assert pos.size == D("3197.799")  # 3201 bought (1000 USDT / 0.31234, step 1) minus 3.201 DOGE commission
    await service.close(pos, "stop_loss")
    sold = await pool.fetchval("SELECT quantity FROM trades WHERE purpose = 'close'")
    assert sold == D("3197")  # LOT_SIZE step 1: the 0.799 DOGE left is dust on the account
    assert (await balances(pool, trader.id))["DOGE"] == (D("0.799"), D(0))


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
    pool, user_id, trader, service, signals, prices, *_ = env
    prices.update({f"S{i}USDT": D("1.0") for i in range(6)})
    RULES.update({f"S{i}USDT": SymbolRules(D("0.0001"), D("1"), D("1"), D("5"), f"S{i}", "USDT") for i in range(6)})
    sigs = [await signals.create(trader.id, user_id, f"S{i}USDT", 1, D("1.0")) for i in range(6)]
    results = await asyncio.gather(
        *(service.open(trader, s, f"S{i}USDT", "long", stop_loss=None, take_profit=None) for i, s in enumerate(sigs)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == trader.risk.max_positions == 1
    assert all(isinstance(r, RiskDenied) for r in results if isinstance(r, Exception))
    assert await pool.fetchval("SELECT count(*) FROM positions") == 1


async def test_two_concurrent_opens_cannot_spend_the_same_cash(env):
    """Item 3: two concurrent 60 % opens left the balance at -2012.00 in 7 of 10 runs."""
    pool, user_id, _, service, signals, prices, *_ = env
    for run in range(5):
        trader = await add_trader(pool, user_id, f"sixty-{run}", size_pct=60, max_positions=4)
        s1 = await signals.create(trader.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
        s2 = await signals.create(trader.id, user_id, "DOGEUSDT", 1, prices["DOGEUSDT"])
        results = await asyncio.gather(
            service.open(trader, s1, "BTCUSDT", "long", stop_loss=None, take_profit=None),
            service.open(trader, s2, "DOGEUSDT", "long", stop_loss=None, take_profit=None),
            return_exceptions=True,
        )
        denied = [r for r in results if isinstance(r, Exception)]
        assert len(denied) == 1 and isinstance(denied[0], RiskDenied) and "buying power" in str(denied[0])
        free, locked = (await balances(pool, trader.id))["USDT"]
        assert free >= 0 and locked == 0 and free == D("4000")  # 6,000 spent by the one that opened


async def test_a_position_must_be_covered_by_free_quote(env):
    """Item 4: a 100 % position left the balance at -10.00. The reservation covers the notional plus a
    1 % price margin, so a 100 % open is refused with its reason and nothing is written."""
    pool, user_id, _, service, signals, prices, *_ = env
    trader = await add_trader(pool, user_id, "all-in", size_pct=100)
    sig = await signals.create(trader.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
    with pytest.raises(RiskDenied, match=r"insufficient buying power: 10100\.00000000 needed, 10000\.00000000 free"):
        await service.open(trader, sig, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    assert await balances(pool, trader.id) == {"USDT": (D("10000"), D(0))}
    assert await pool.fetchval("SELECT count(*) FROM positions WHERE trader_id = $1", trader.id) == 0
    ninety = await add_trader(pool, user_id, "ninety", size_pct=90)
    sig = await signals.create(ninety.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
    await service.open(ninety, sig, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    assert (await balances(pool, ninety.id))["USDT"] == (D("1000"), D(0))


async def test_a_paper_short_locks_collateral_and_its_proceeds(env):
    """Item 5: after a 50 % short the cash went 10,000 -> 14,995 and the next long was sized from it."""
    pool, user_id, _, service, signals, prices, *_ = env
    trader = await add_trader(pool, user_id, "shorter", size_pct=50, max_positions=4)
    s1 = await signals.create(trader.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
    short = await service.open(trader, s1, "BTCUSDT", "short", stop_loss=None, take_profit=None)
    assert short.paper_only and short.size == D("0.1")
    # sold 0.1 borrowed BTC for 5,000 (commission 5 USDT): collateral 5,000 and proceeds 4,995 locked
    assert await balances(pool, trader.id) == {"BTC": (D("-0.1"), D(0)), "USDT": (D("5000"), D("9995"))}
    # equity 5,000 + 9,995 - 0.1 * 50,000 = 9,995; a 40 % long is sized from that, not from 14,995
    prices["DOGEUSDT"] = D("1.00000")
    s2 = await signals.create(trader.id, user_id, "DOGEUSDT", 1, prices["DOGEUSDT"])
    trader40 = replace(trader, risk=replace(trader.risk, position_size_pct=D(40)))
    long = await service.open(trader40, s2, "DOGEUSDT", "long", stop_loss=None, take_profit=None)
    assert long.size == D("3998") - D("3.998")  # 0.4 * 9,995 = 3,998 DOGE at 1.0
    assert (await balances(pool, trader.id))["USDT"] == (D("1002"), D("9995"))
    # closing the short buys back enough to repay 0.1 BTC after the BUY commission, and unlocks
    prices["BTCUSDT"] = D("40000.00")
    pnl, _ = await service.close(short, "take_profit")
    bought = await pool.fetchval("SELECT quantity FROM trades WHERE position_id = $1 AND purpose = 'close'", short.id)
    assert bought == D("0.10011")  # ceil(0.1 / 0.999 / 0.00001) * 0.00001; 0.10011 - 0.00010011 >= 0.1
    btc_free, btc_locked = (await balances(pool, trader.id))["BTC"]
    assert btc_free == D("0.10011") - D("0.00010011") - D("0.1") and btc_free >= 0 and btc_locked == 0
    assert pnl == D("4995") - D("4004.40")  # (5,000 - 5) - 0.10011 * 40,000
    assert (await balances(pool, trader.id))["USDT"] == (D("1002") + D("9995") - D("4004.40"), D(0))


async def test_live_mode_cannot_short(env):
    pool, user_id, trader, service, signals, prices, *_ = env
    live = replace(trader, mode="live")
    sig = await signals.create(trader.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
    service._executors["live"] = service._executors["paper"]
    with pytest.raises(RiskDenied, match="live spot cannot short"):
        await service.open(live, sig, "BTCUSDT", "short", stop_loss=None, take_profit=None)


async def test_a_close_whose_booking_failed_is_resolved_by_asking_not_resending(env, monkeypatch):
    """Item 6: a close whose booking failed once could never close until a restart."""
    pool, user_id, trader, service, signals, prices, opened, closed = env
    sig = await signals.create(trader.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
    pos = await service.open(trader, sig, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    repo = service._repo
    real = repo.record_close_fills
    calls = []

    async def failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database went away while booking")
        return await real(*args, **kwargs)

    monkeypatch.setattr(repo, "record_close_fills", failing_once)
    with pytest.raises(ConnectionError):
        await service.close(pos, "stop_loss")
    assert await pool.fetchval("SELECT status FROM trades WHERE purpose = 'close'") == "pending"
    sent = service.orders_sent
    pnl, _ = await service.close(pos, "stop_loss")  # asks the executor: the order filled; books that fill
    assert service.orders_sent == sent  # nothing was resent
    rows = await pool.fetch("SELECT client_order_id, status FROM trades WHERE purpose = 'close'")
    assert [(r["client_order_id"][:3], r["status"]) for r in rows] == [("c01", "filled")]
    assert await pool.fetchval("SELECT status FROM positions WHERE id = $1", pos.id) == "closed"
    assert closed and closed[-1][1] == "stop_loss"


async def test_a_pending_close_the_venue_never_saw_is_cancelled_then_sent_once(env):
    pool, user_id, trader, service, signals, prices, *_ = env
    sig = await signals.create(trader.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
    pos = await service.open(trader, sig, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    # an intent written, then the process died before sending it
    from machine.execution._orders import client_order_id
    from machine.persistence import CloseIntent
    await service._repo.create_close_intents(user_id, [CloseIntent(pos.id, trader.id, "paper", "SELL", "BTCUSDT",
                                                                   client_order_id(pos.id, "close", 1), pos.size)])
    await service.close(pos, "take_profit")
    rows = await pool.fetch("SELECT client_order_id, status FROM trades WHERE purpose = 'close' ORDER BY created_at")
    assert [(r["client_order_id"][:3], r["status"]) for r in rows] == [("c01", "cancelled"), ("c02", "filled")]


async def test_a_level_on_the_wrong_side_is_refused_never_replaced(env):
    """Item 9: a stop-loss on the wrong side was silently replaced by the trader's default."""
    pool, user_id, trader, service, signals, prices, *_ = env
    sig = await signals.create(trader.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
    with pytest.raises(RiskDenied, match=r"stop-loss 50100\.00 is not below the entry price 50000\.00"):
        await service.open(trader, sig, "BTCUSDT", "long", stop_loss=D("50100"), take_profit=None)
    with pytest.raises(RiskDenied, match="take-profit 49000.00 is not above the entry"):
        await service.open(trader, sig, "BTCUSDT", "long", stop_loss=None, take_profit=D("49000"))
    assert await pool.fetchval("SELECT count(*) FROM positions") == 0
    assert await balances(pool, trader.id) == {"USDT": (D("10000"), D(0))}
    # levels off the tick grid are rounded towards the entry (a stop never risks more than asked)
    pos = await service.open(trader, sig, "BTCUSDT", "long", stop_loss=D("48999.995"), take_profit=D("51000.019"))
    assert (pos.stop_loss, pos.take_profit) == (D("49000.00"), D("51000.01"))


async def test_fills_a_live_account_would_get(env):
    pool, user_id, trader, service, signals, prices, *_ = env
    executor = service._executors["paper"]
    executor.slippage_bps = D("2")
    executor.maker_rate = D("0.0005")
    sig = await signals.create(trader.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
    pos = await service.open(trader, sig, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    assert pos.entry_price == D("50010.00")  # 2 bps against the buyer
    # the take-profit rests on the book: it fills at its level (or better on a gap), at the maker rate
    from machine.execution import Trigger
    pnl, _ = await service.close(pos, "take_profit", Trigger("take_profit", pos.take_profit, D("52000"), D("52100"), D("52050")))
    exit_ = await pool.fetchrow("SELECT price, fee, fee_asset FROM trades WHERE purpose = 'close'")
    assert exit_["price"] == pos.take_profit == D("52010.40")  # 4 % above 50,010, rounded down to the tick
    assert (exit_["fee"], exit_["fee_asset"]) == ((D("52010.40") * pos.size * D("0.0005")).quantize(D("1e-8")), "USDT")
    # a stop-loss that triggers on a gap fills at the price then, not at its level
    sig2 = await signals.create(trader.id, user_id, "BTCUSDT", 2, prices["BTCUSDT"])
    pos2 = await service.open(trader, sig2, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    await service.close(pos2, "stop_loss", Trigger("stop_loss", pos2.stop_loss, D("48000"), D("48500"), D("48100")))
    assert await pool.fetchval("SELECT price FROM trades WHERE position_id = $1 AND purpose = 'close'", pos2.id) == D("48100")


async def test_no_fill_on_a_stale_price(env):
    """Item 8: a ticker an hour old was taken as the price to open, fill and check stops against."""
    from machine.execution import StalePrice

    pool, user_id, trader, service, signals, prices, *_ = env
    executor = service._executors["paper"]
    ages = {"BTCUSDT": 3600.0}
    executor._price_age_s = ages.get
    executor.price_max_age_s = 0.3
    sig = await signals.create(trader.id, user_id, "BTCUSDT", 1, prices["BTCUSDT"])
    with pytest.raises(StalePrice, match="3600 s old"):
        await service.open(trader, sig, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    assert executor.stale_waits == 1 and executor.is_stale("BTCUSDT")
    assert await pool.fetchval("SELECT status FROM trades") == "cancelled"
    assert await balances(pool, trader.id) == {"USDT": (D("10000"), D(0))}  # the reservation is released
    ages["BTCUSDT"] = 0.1
    pos = await service.open(trader, sig, "BTCUSDT", "long", stop_loss=None, take_profit=None)
    assert pos.status == "open" and not executor.is_stale("BTCUSDT")


async def _open_many(env, n_traders=3):
    """One long BTCUSDT and one long DOGEUSDT position for each of ``n_traders`` new traders."""
    pool, user_id, _, service, signals, prices, *_ = env
    positions = []
    for i in range(n_traders):
        trader = await add_trader(pool, user_id, f"batch-{i}", size_pct=10, max_positions=2)
        for symbol in ("BTCUSDT", "DOGEUSDT"):
            sig = await signals.create(trader.id, user_id, symbol, 1, prices[symbol])
            positions.append(await service.open(trader, sig, symbol, "long", stop_loss=None, take_profit=None))
    return positions


async def test_a_batch_closes_each_position_as_alone_and_reports_each(env):
    from machine.execution import CloseRequest

    pool, user_id, trader, service, signals, prices, opened, closed = env
    positions = await _open_many(env)
    await service.close(positions[0], "analysis_close")  # closed before the batch: reported None
    prices.update(BTCUSDT=D("49000.00"), DOGEUSDT=D("0.30000"))
    trigger = {"BTCUSDT": Trigger("stop_loss", D("49500.00"), D("49000.00"), D("49000.00"), D("49000.00")),
               "DOGEUSDT": Trigger("stop_loss", D("0.30500"), D("0.30000"), D("0.30000"), D("0.30000"))}
    requests = [CloseRequest(p, "stop_loss", trigger[p.symbol]) for p in positions] + [
        CloseRequest(positions[1], "stop_loss", trigger[positions[1].symbol])]  # the same position twice
    sent = service.orders_sent
    results = await service.close_many(requests)
    assert results[0] is None and results[-1] is None  # already closed / named twice
    assert all(isinstance(r, tuple) for r in results[1:-1]) and service.orders_sent == sent + 5
    rows = {r["id"]: r for r in await pool.fetch("SELECT id, status, pnl, close_reason, exit_price FROM positions")}
    for p, r in zip(positions[1:], results[1:-1]):
        row = rows[p.id]
        assert (row["status"], row["close_reason"], row["pnl"]) == ("closed", "stop_loss", r[0])
        assert row["exit_price"] == trigger[p.symbol].last  # each priced from its own trigger (a gapped stop: last)
    assert await pool.fetchval("SELECT count(*) FROM signals WHERE status = 'closed' AND close_reason = 'stop_loss'") == 5
    for p in positions:  # nothing locked any more; the quote balance is start + realised PnL
        bal = await balances(pool, p.trader_id)
        pnl = await pool.fetchval("SELECT sum(pnl) FROM positions WHERE trader_id = $1", p.trader_id)
        assert bal["USDT"] == (D("10000") + pnl, D(0)) and all(locked == 0 for _, locked in bal.values())
    assert len(closed) == 6


async def test_a_failed_order_in_a_batch_leaves_that_position_open_and_closes_the_others(env, monkeypatch):
    from machine.execution import CloseRequest

    pool, user_id, trader, service, signals, prices, opened, closed = env
    positions = await _open_many(env, n_traders=2)
    executor = service._executors["paper"]
    real_submit = executor.submit

    async def submit(order):
        if order.symbol == "DOGEUSDT":
            raise ConnectionError("venue unreachable")
        return await real_submit(order)

    monkeypatch.setattr(executor, "submit", submit)
    results = await service.close_many([CloseRequest(p, "analysis_close") for p in positions])
    by_symbol = {p.symbol: [] for p in positions}
    for p, r in zip(positions, results):
        by_symbol[p.symbol].append(r)
    assert all(isinstance(r, ConnectionError) for r in by_symbol["DOGEUSDT"])
    assert all(isinstance(r, tuple) for r in by_symbol["BTCUSDT"])
    rows = await pool.fetch("SELECT p.symbol, p.status, t.status AS trade, t.error_message FROM positions p "
                            "JOIN trades t ON t.position_id = p.id AND t.purpose = 'close'")
    assert sorted((r["symbol"], r["status"], r["trade"]) for r in rows) == [
        ("BTCUSDT", "closed", "filled")] * 2 + [("DOGEUSDT", "open", "cancelled")] * 2
    assert all("venue unreachable" in r["error_message"] for r in rows if r["trade"] == "cancelled")


async def test_a_batch_whose_booking_fails_books_each_fill_on_its_own(env, monkeypatch):
    from machine.execution import CloseRequest

    pool, user_id, trader, service, signals, prices, opened, closed = env
    positions = await _open_many(env, n_traders=2)
    repo = service._repo
    real = repo.record_close_fills
    sizes = []

    async def no_batches(fills):
        sizes.append(len(fills))
        if len(fills) > 1:
            raise ConnectionError("connection lost mid-batch")
        return await real(fills)

    monkeypatch.setattr(repo, "record_close_fills", no_batches)
    sent = service.orders_sent
    results = await service.close_many([CloseRequest(p, "analysis_close") for p in positions])
    assert all(isinstance(r, tuple) for r in results) and sizes == [4, 1, 1, 1, 1]
    assert service.orders_sent == sent + 4  # each order sent once; the retry only books
    assert await pool.fetchval("SELECT count(*) FROM positions WHERE status = 'closed'") == 4
    assert await pool.fetchval("SELECT count(*) FROM trades WHERE purpose = 'close' AND status = 'filled'") == 4
