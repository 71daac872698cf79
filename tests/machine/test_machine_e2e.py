"""A real machine process trading on replayed real klines, checked in Postgres."""

from __future__ import annotations

import json

from decimal import Decimal

import pytest

from machine_harness import add_trader, wait_for

pytestmark = pytest.mark.timeout(240)

ALWAYS = "def check_signal(symbol, ticker, klines):\n    return len(klines['1m']) > 20\n"
RSI_ANY = (
    "def check_signal(symbol, ticker, klines):\n"
    "    rsi = get_latest_rsi(klines['1m'], 14)\n"
    "    return rsi is not None and rsi >= 0 and ticker['last_price'] > 0\n"
)
BROKEN = "def check_signal(symbol, ticker, klines)\n    return True\n"


async def count(pool, sql, *args) -> int:
    return await pool.fetchval(sql, *args)


async def assert_consistent(pool, user_id) -> None:
    """Every trade -> position -> signal; every analysis -> signal; balances to the cent; no duplicate orders."""
    assert await count(pool, "SELECT count(*) FROM trades t LEFT JOIN positions p ON p.id = t.position_id "
                             "WHERE p.id IS NULL") == 0
    assert await count(pool, "SELECT count(*) FROM positions p LEFT JOIN signals s ON s.id = p.signal_id "
                             "WHERE s.id IS NULL") == 0
    assert await count(pool, "SELECT count(*) FROM analysis_history a LEFT JOIN signals s ON s.id = a.signal_id "
                             "WHERE s.id IS NULL") == 0
    # one filled opening and at most one filled closing order per position
    assert await count(pool, "SELECT count(*) FROM (SELECT position_id, purpose FROM trades WHERE status = 'filled' "
                             "GROUP BY 1, 2 HAVING count(*) > 1) d") == 0
    assert await count(pool, "SELECT count(*) FROM positions p WHERE p.status IN ('open', 'closed') AND "
                             "(SELECT count(*) FROM trades t WHERE t.position_id = p.id AND t.purpose = 'open' "
                             "AND t.status = 'filled') <> 1") == 0
    assert await count(pool, "SELECT count(*) FROM positions p WHERE p.status = 'closed' AND "
                             "(SELECT count(*) FROM trades t WHERE t.position_id = p.id AND t.purpose = 'close' "
                             "AND t.status = 'filled') <> 1") == 0
    # a position with a signal is reflected in the signal's state
    assert await count(pool, "SELECT count(*) FROM positions p JOIN signals s ON s.id = p.signal_id "
                             "WHERE p.status = 'open' AND s.status <> 'position_open'") == 0
    # every asset's total = start + bought - sold - commissions paid in it, from the filled trades alone
    accounts = await pool.fetch("SELECT trader_id, quote_asset, start_balance FROM paper_accounts WHERE user_id = $1",
                                user_id)
    assert accounts, "no paper accounts"
    for account in accounts:
        expected: dict[str, Decimal] = {account["quote_asset"]: account["start_balance"]}
        for t in await pool.fetch("SELECT symbol, side, price, quantity, fee, fee_asset FROM trades "
                                  "WHERE trader_id = $1 AND status = 'filled'", account["trader_id"]):
            quote = account["quote_asset"]
            base = t["symbol"][: -len(quote)]
            sign = 1 if t["side"] == "BUY" else -1
            expected[base] = expected.get(base, Decimal(0)) + sign * t["quantity"]
            expected[quote] = expected.get(quote, Decimal(0)) - sign * (t["price"] * t["quantity"]).quantize(Decimal("1e-8"))
            expected[t["fee_asset"]] = expected.get(t["fee_asset"], Decimal(0)) - t["fee"]
        booked = {r["asset"]: r["free"] + r["locked"] for r in await pool.fetch(
            "SELECT asset, free, locked FROM paper_balances WHERE trader_id = $1", account["trader_id"])}
        assert {a: v for a, v in booked.items() if v} == {a: v for a, v in expected.items() if v}, account["trader_id"]
        # what is locked is exactly what the live positions reserve
        locked = await pool.fetchval("SELECT COALESCE(sum(locked), 0) FROM paper_balances WHERE trader_id = $1",
                                     account["trader_id"])
        reserved = await pool.fetchval("SELECT COALESCE(sum(reserved), 0) FROM positions WHERE trader_id = $1 "
                                       "AND status IN ('pending', 'open')", account["trader_id"])
        assert locked == reserved
    # closed positions: pnl equals the quote flow of the position's fills
    bad = await pool.fetch(
        "SELECT p.id FROM positions p JOIN trades t ON t.position_id = p.id AND t.status = 'filled' "
        "WHERE p.status = 'closed' GROUP BY p.id, p.pnl HAVING p.pnl <> sum(CASE WHEN t.side = 'SELL' "
        "THEN round(t.price * t.quantity, 8) ELSE -round(t.price * t.quantity, 8) END) "
        "- sum(CASE WHEN t.side = 'SELL' THEN t.fee ELSE 0 END)"
    )
    assert not bad, bad


async def test_machine_trades_end_to_end_and_guards_its_api(machine_stack):
    make_machine, pool, user_id, sim = machine_stack
    good = await add_trader(pool, user_id, "always", ALWAYS)
    rsi = await add_trader(pool, user_id, "rsi fixed", RSI_ANY, check_interval="2s", max_positions=2)
    broken = await add_trader(pool, user_id, "broken", BROKEN)
    machine = make_machine()
    await machine.start()

    row = await pool.fetchrow("SELECT status, error_message FROM traders WHERE id = $1", broken)
    assert row["status"] == "error"
    assert "SyntaxError" in row["error_message"] or "syntax" in row["error_message"].lower()

    await wait_for(lambda: count(pool, "SELECT count(*) FROM positions WHERE status = 'closed' AND trader_id = $1", good),
                   150, "a position closed by stop-loss/take-profit")
    await wait_for(lambda: count(pool, "SELECT count(*) FROM positions WHERE trader_id = $1", rsi),
                   60, "the fixed-interval trader to open a position")

    assert await count(pool, "SELECT count(*) FROM signals WHERE trader_id = $1", good) > 0
    assert await count(pool, "SELECT count(*) FROM analysis_history WHERE trader_id = $1", good) > 0
    reasons = {r["close_reason"] for r in await pool.fetch("SELECT close_reason FROM positions WHERE status = 'closed'")}
    assert reasons <= {"stop_loss", "take_profit"} and reasons
    assert await count(pool, "SELECT count(DISTINCT symbol) FROM signals WHERE user_id = $1", user_id) >= 4
    hb = await pool.fetchrow("SELECT status, last_heartbeat, stats FROM fly_machines WHERE machine_id = 'test-machine-1'")
    assert hb["status"] == "running" and hb["last_heartbeat"] is not None and hb["stats"] is not None

    health = (await machine.get("/health")).json()
    assert health["activeTraders"] == 2 and health["websocketConnected"] is True
    assert health["newestKlineAgeMs"] is not None and health["newestKlineAgeMs"] < 10_000
    assert health["stalePrices"] == []  # the replay streams every traded symbol
    metrics = (await machine.get("/metrics")).json()
    assert metrics["activeTraders"] == 2 and metrics["signalsChecked1h"] > 0
    prom = await machine.get("/metrics", headers={"Accept": "text/plain"})
    assert prom.headers["content-type"].startswith("text/plain")
    assert "trader_machine_orders_sent_total" in prom.text

    for path in ("/reload-traders", "/shutdown"):
        assert (await machine.post(path)).status_code == 401
        assert (await machine.post(path, token="wrong")).status_code == 401

    # pause a trader: reload takes it out without a restart
    await pool.execute("UPDATE traders SET status = 'paused' WHERE id = $1", rsi)
    reload = (await machine.post("/reload-traders", token=machine.token)).json()
    assert reload["success"] is True and reload["tradersLoaded"] == 1 and reload["removed"] == 1

    resp = await machine.post("/shutdown", token=machine.token, json={"reason": "test"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is True
    assert body["openPositions"] == await count(pool, "SELECT count(*) FROM positions WHERE status = 'open'")
    assert machine.proc.wait(30) == 0
    await assert_consistent(pool, user_id)


async def test_sigkill_restart_resumes_monitoring_without_duplicate_orders(machine_stack):
    make_machine, pool, user_id, sim = machine_stack
    # wide levels: positions stay open until we move them after the kill
    trader = await add_trader(pool, user_id, "always", ALWAYS, stop_loss_pct=50, take_profit_pct=50, max_positions=3)
    machine = make_machine()
    await machine.start()
    async def three_open() -> bool:
        return await count(pool, "SELECT count(*) FROM positions WHERE status = 'open' AND trader_id = $1", trader) == 3

    await wait_for(three_open, 90, "three open positions", every_s=0.1)
    machine.kill()
    trades_before = await count(pool, "SELECT count(*) FROM trades")
    open_ids = [r["id"] for r in await pool.fetch("SELECT id FROM positions WHERE status = 'open'")]
    assert len(open_ids) == 3
    # an order intent that was written but never sent when the process died
    pending = await pool.fetchval(
        "WITH s AS (INSERT INTO signals (trader_id, user_id, symbol, timestamp, status, trigger_price) "
        "VALUES ($1, $2, 'ZZZUSDT', NOW(), 'new', 1) RETURNING id), "
        "p AS (INSERT INTO positions (signal_id, trader_id, user_id, mode, symbol, side, status, size) "
        "SELECT id, $1, $2, 'paper', 'ZZZUSDT', 'long', 'pending', 1 FROM s RETURNING id) "
        "INSERT INTO trades (position_id, trader_id, user_id, type, purpose, side, symbol, client_order_id, quantity, status) "
        "SELECT id, $1, $2, 'paper', 'open', 'BUY', 'ZZZUSDT', 'o01pending', 1, 'pending' FROM p RETURNING id",
        trader, user_id,
    )
    # make every recovered long hit its take-profit at once: only a monitor that resumed can close them
    await pool.execute("UPDATE positions SET take_profit = entry_price * 0.5 WHERE status = 'open'")

    machine2 = make_machine()
    await machine2.start()
    async def recovered_closed() -> bool:
        n = await count(pool, "SELECT count(*) FROM positions WHERE id = ANY($1) AND status = 'closed' "
                              "AND close_reason = 'take_profit'", open_ids)
        return n == 3

    await wait_for(recovered_closed, 30, "recovered positions closed by the resumed monitor")
    assert await pool.fetchval("SELECT status FROM trades WHERE id = $1", pending) == "cancelled"
    # every trade since the restart is new: none re-sent for the recovered positions' openings
    opens = await count(pool, "SELECT count(*) FROM trades WHERE position_id = ANY($1) AND purpose = 'open'", open_ids)
    assert opens == 3
    assert await count(pool, "SELECT count(*) FROM trades") >= trades_before + 3
    await machine2.post("/shutdown", token=machine2.token)
    assert machine2.proc.wait(30) == 0
    await pool.execute("DELETE FROM positions WHERE symbol = 'ZZZUSDT'")
    await assert_consistent(pool, user_id)


async def test_watched_signals_are_reanalysed_then_expire(machine_stack, monkeypatch):
    from machine_harness import AlwaysOpenLong

    monkeypatch.setattr(AlwaysOpenLong, "decision", "watch")
    make_machine, pool, user_id, sim = machine_stack
    trader = await add_trader(pool, user_id, "watcher", ALWAYS, reanalysis_interval="1s",
                              symbols=["BTCUSDT", "ETHUSDT"])
    machine = make_machine()
    await machine.start()

    async def expired() -> int:
        return await count(pool, "SELECT count(*) FROM signals WHERE trader_id = $1 AND close_reason = 'watch_expired'",
                           trader)

    await wait_for(expired, 60, "a watched signal to expire")
    row = await pool.fetchrow(
        "SELECT s.id, (SELECT count(*) FROM analysis_history a WHERE a.signal_id = s.id) AS n FROM signals s "
        "WHERE trader_id = $1 AND close_reason = 'watch_expired' LIMIT 1", trader)
    assert row["n"] == 6  # the first analysis and five re-analyses, all "watch"
    # while watched, a symbol produces no second signal
    assert await count(pool, "SELECT count(*) FROM (SELECT symbol FROM signals WHERE trader_id = $1 AND status = 'watching' "
                             "GROUP BY symbol HAVING count(*) > 1) d", trader) == 0
    assert await count(pool, "SELECT count(*) FROM positions WHERE trader_id = $1", trader) == 0
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0


async def test_reanalysis_on_the_close_of_an_interval_the_filter_does_not_read(machine_stack, monkeypatch):
    """Timeframes ``1m``, re-analysis ``5m_close`` (the demo traders' settings).

    Before the fix no 5m klines were subscribed, so the re-analysis timer never
    fired: watched signals stayed ``watching`` forever (blocking their symbol)
    and open positions were never re-analysed.
    """
    from machine_harness import AlwaysOpenLong

    monkeypatch.setattr(AlwaysOpenLong, "per_symbol", {"BTCUSDT": "watch"})
    make_machine, pool, user_id, sim = machine_stack
    trader = await add_trader(pool, user_id, "five-minute", ALWAYS, reanalysis_interval="5m_close",
                              symbols=["BTCUSDT", "ETHUSDT", "BNBUSDT"], stop_loss_pct=50, take_profit_pct=50)
    # a signal watched since long before the replay: past MAX_WATCH_AGE_MS it expires at the next re-analysis
    stale = await pool.fetchval(
        "INSERT INTO signals (trader_id, user_id, symbol, timestamp, status, trigger_price, current_price) "
        "VALUES ($1, $2, 'BNBUSDT', '2001-01-01', 'watching', 1, 1) RETURNING id", trader, user_id)
    machine = make_machine()
    await machine.start()

    async def expired() -> int:
        return await count(pool, "SELECT count(*) FROM signals WHERE trader_id = $1 AND symbol = 'BTCUSDT' "
                                 "AND close_reason = 'watch_expired'", trader)

    async def position_reanalysed() -> int:
        return await count(pool, "SELECT count(*) FROM analysis_history WHERE trader_id = $1 AND position_id IS NOT NULL",
                           trader)

    await wait_for(expired, 90, "the watched BTCUSDT signal to be re-analysed on 5m closes until it expires")
    await wait_for(position_reanalysed, 30, "the ETHUSDT position to be re-analysed on a 5m close")
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM analysis_history a WHERE a.signal_id = s.id) AS n FROM signals s "
        "WHERE trader_id = $1 AND symbol = 'BTCUSDT' AND close_reason = 'watch_expired' LIMIT 1", trader)
    assert row["n"] == 6
    stale_row = await pool.fetchrow("SELECT status, close_reason FROM signals WHERE id = $1", stale)
    assert (stale_row["status"], stale_row["close_reason"]) == ("closed", "watch_expired")
    assert await count(pool, "SELECT count(*) FROM analysis_history WHERE signal_id = $1", stale) == 0
    # the re-analyses came on 5m closes: their market times are 5 minutes apart
    times = [r["t"] for r in await pool.fetch(
        "SELECT (market_data->>'timestamp')::bigint AS t FROM analysis_history WHERE trader_id = $1 "
        "AND position_id IS NOT NULL ORDER BY timestamp", trader)]
    assert all(t % 300_000 == 0 for t in times), times
    # Each analysis stores the full input it was given: candles as sent, and the rest of the request.
    stored = await pool.fetchrow(
        "SELECT market_data FROM analysis_history WHERE trader_id = $1 AND position_id IS NOT NULL LIMIT 1", trader)
    market_data = stored["market_data"] if isinstance(stored["market_data"], dict) else json.loads(stored["market_data"])
    assert market_data["klines"] and all(len(row) >= 6 for rows in market_data["klines"].values() for row in rows)
    assert market_data["request"]["position"]["side"] in ("long", "short")
    assert market_data["request"]["userId"] and market_data["request"]["mode"] == "paper"
    assert market_data["request"]["modelTier"] == "standard"
    assert all(len(rows) <= 100 for rows in market_data["klines"].values())  # the trader's analysis_candles
    metrics = (await machine.get("/metrics")).json()
    assert metrics["counters"]["reanalyses_total"] >= 6
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0
