"""Risk and control (machine.risk): the pure gate, transitions and metrics, then the engine over
the execution service and a real Postgres: each limit moves its state, the state survives a
restart, every denial is an event, metrics are stored on every close."""

from __future__ import annotations

import asyncio

from dataclasses import replace
from decimal import Decimal as D

import pytest

from machine.accounts import equity
from machine.execution import ExecutionService, PaperExecutor, RiskDenied, SymbolRules, Trigger
from machine.persistence import RiskRepository, SignalRepository, TraderRepository, TradingRepository, open_pool
from machine.risk import (
    ACTIVE,
    HALTED,
    REDUCING,
    RiskService,
    TraderLimits,
    compute_metrics,
    evaluate_trader,
    evaluate_user,
    gate,
)

RULES = {"BTCUSDT": SymbolRules(D("0.01"), D("0.00001"), D("0.00001"), D("5"), "BTC", "USDT"),
         "ETHUSDT": SymbolRules(D("0.01"), D("0.0001"), D("0.0001"), D("5"), "ETH", "USDT")}
DAY_MS = 86_400_000


# -- pure -------------------------------------------------------------------------------------------------


def test_metrics_of_a_run_of_closes():
    m = compute_metrics([D(10), D(-5), D(20), D(-15), D(0)], D(1000), signals=9, open_positions=1)
    assert (m.closed_positions, m.wins, m.losses, m.signals, m.open_positions) == (5, 2, 2, 9, 1)
    assert (m.total_pnl, m.total_pnl_pct, m.win_rate) == (D(10), D("1.0000"), D("40.0000"))
    assert (m.avg_win, m.avg_loss, m.profit_factor) == (D(15), D(-10), D("1.5"))
    # realised equity 1010, 1005, 1025, 1010, 1010: the deepest fall is 15 from the 1025 peak
    assert (m.max_drawdown, m.max_drawdown_pct) == (D(15), D("1.4634"))
    assert m.to_json()["profitFactor"] == "1.50000000" and m.to_json()["winRate"] == "40.0000"


def test_metrics_without_closes_or_losses():
    empty = compute_metrics([], D(1000))
    assert (empty.win_rate, empty.avg_win, empty.avg_loss, empty.profit_factor) == (None, None, None, None)
    assert compute_metrics([D(5)], D(1000)).profit_factor is None  # no loss: undefined, not infinite


@pytest.mark.parametrize(("kind", "trader", "user", "cooldown", "denied"), [
    ("entry", ACTIVE, ACTIVE, 0, None),
    ("entry", REDUCING, ACTIVE, 0, "trader is REDUCING"),
    ("entry", ACTIVE, REDUCING, 0, "user is REDUCING"),
    ("entry", ACTIVE, HALTED, 0, "user is HALTED"),
    ("entry", ACTIVE, ACTIVE, 60_000, "cooldown"),
    ("exit", REDUCING, ACTIVE, 0, None),
    ("exit", HALTED, ACTIVE, 0, "trader is HALTED"),
    ("protective", HALTED, HALTED, 0, None),
    ("manual", HALTED, HALTED, 0, None),
    ("exit", ACTIVE, ACTIVE, 60_000, None),  # a cooldown holds entries only
])
def test_the_gate(kind, trader, user, cooldown, denied):
    reason = gate(kind, trader, user, in_cooldown_ms=cooldown)
    assert (reason is None) if denied is None else (denied in reason)


def test_trader_transitions():
    limits = TraderLimits(max_drawdown_pct=D(10), daily_loss_limit_pct=D(3))
    assert evaluate_trader(limits, ACTIVE, "risk", equity=D(900), peak=D(1000), day_start=D(900), new_day=False)[0] == HALTED
    state, why = evaluate_trader(limits, ACTIVE, "risk", equity=D(970), peak=D(1000), day_start=D(1000), new_day=False)
    assert state == REDUCING and "daily loss limit" in why
    assert evaluate_trader(limits, REDUCING, "risk", equity=D(970), peak=D(1000), day_start=D(970), new_day=True) == \
        (ACTIVE, "a new UTC day: the daily loss limit is reset")
    # set by hand: not lifted by a new day; a halt is never lifted automatically
    assert evaluate_trader(limits, REDUCING, "user", equity=D(999), peak=D(1000), day_start=D(999), new_day=True)[0] == REDUCING
    assert evaluate_trader(limits, HALTED, "risk", equity=D(999), peak=D(1000), day_start=D(999), new_day=True)[0] == HALTED


def test_the_kill_switch():
    assert evaluate_user(D(20), ACTIVE, equity=D(7999), start_capital=D(10000))[0] == HALTED
    assert evaluate_user(D(20), ACTIVE, equity=D(8001), start_capital=D(10000)) == (ACTIVE, None)
    assert evaluate_user(None, ACTIVE, equity=D(1), start_capital=D(10000)) == (ACTIVE, None)


# -- the engine -------------------------------------------------------------------------------------------


class Stack:
    def __init__(self, pool, user_id, trader, prices):
        self.pool, self.user_id, self.trader, self.prices = pool, user_id, trader, prices
        self.now = [1_700_000_000_000]
        self.trading = TradingRepository(pool)
        self.repo = RiskRepository(pool)
        self.build()

    def build(self) -> None:
        self.risk = RiskService(user_id=self.user_id, repo=self.repo, equity=self._equity,
                                start_capital=lambda _: self._capital(), now_ms=lambda: self.now[0], period_s=3600)
        self.execution = ExecutionService(
            user_id=self.user_id, repo=self.trading, executors={"paper": PaperExecutor(self.prices.get, D("0.001"),
                                                                                       RULES.__getitem__)},
            rules=RULES.get, last_price=self.prices.get, quote_asset="USDT", start_balance=D("10000"),
            on_opened=lambda p: None, on_closed=lambda p, r: None, gate=self.risk.check)

    async def _capital(self) -> D:
        return D("10000")

    async def _equity(self, trader_id) -> D:
        balances = await self.trading.balances(trader_id)
        return equity(balances, "USDT", lambda a: self.prices.get(a + "USDT")) if balances else D("10000")

    async def open(self, symbol="BTCUSDT", trader=None):
        trader = trader or self.trader
        sig = await SignalRepository(self.pool).create(trader.id, self.user_id, symbol, 1, self.prices[symbol])
        return await self.execution.open(trader, sig, symbol, "long", stop_loss=None, take_profit=None)

    async def close(self, position, reason="analysis_close", trigger=None):
        result = await self.execution.close(position, reason, trigger)
        await self.risk.on_closed(position)
        return result

    async def events(self, kind):
        return [r["reason"] for r in await self.pool.fetch(
            "SELECT reason FROM risk_events WHERE kind = $1 ORDER BY created_at", kind)]


async def add_trader(pool, user_id, name="t", **limits):
    await pool.execute(
        "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, reanalysis_interval, "
        "stop_loss_pct, take_profit_pct, position_size_pct, max_positions, max_drawdown_pct, daily_loss_limit_pct, "
        "loss_cooldown_minutes) VALUES ($1, $2, 'x', 'y', '{1m}', '1m_close', '5m', 2, 4, 50, 3, $3, $4, $5)",
        user_id, name, limits.get("max_drawdown_pct"), limits.get("daily_loss_limit_pct"),
        limits.get("loss_cooldown_minutes", 0))
    return next(t for t in await TraderRepository(pool).load_active(user_id) if t.name == name)


@pytest.fixture
async def make_stack(db_url):
    pools = []

    async def make(**limits):
        pool = await open_pool(db_url)
        pools.append(pool)
        user_id = await pool.fetchval("INSERT INTO users (email, tier, subscription_status, kill_switch_loss_pct) "
                                      "VALUES ('r@x', 'pro', 'active', $1) RETURNING id", limits.pop("kill", None))
        trader = await add_trader(pool, user_id, **limits)
        stack = Stack(pool, user_id, trader, {"BTCUSDT": D("50000.00"), "ETHUSDT": D("3000.00")})
        await stack.risk.start([trader])
        return stack

    yield make
    for pool in pools:
        await pool.close()


async def test_max_drawdown_halts_the_trader_and_the_halt_survives_a_restart(make_stack):
    s = await make_stack(max_drawdown_pct=D(5))
    position = await s.open()  # 50 % of 10,000 in BTC
    s.prices["BTCUSDT"] = D("39000.00")  # -22 %: equity about 8,900, 11 % below its peak
    await s.risk.evaluate()
    assert s.risk.states(s.trader.id) == (HALTED, ACTIVE)
    assert "max drawdown" in (await s.events("state"))[0]
    with pytest.raises(RiskDenied, match="HALTED"):
        await s.open("ETHUSDT")
    with pytest.raises(RiskDenied, match="HALTED"):  # an exit the analysis decides
        await s.execution.close(position, "analysis_close")
    assert len(await s.events("denied")) == 2
    await s.risk.stop()
    s.build()  # a restart: the state comes back from the database
    await s.risk.start([s.trader])
    assert s.risk.states(s.trader.id) == (HALTED, ACTIVE) and not s.risk.allows_analysis(s.trader.id)
    trigger = Trigger("stop_loss", D("49000"), D("39000"), D("39000"), D("39000"))
    assert await s.close(position, "stop_loss", trigger) is not None  # a stop-loss still runs
    await s.risk.set_state("trader", s.trader.id, ACTIVE, "resumed by hand")
    assert s.risk.allows_entries(s.trader.id)


async def test_the_daily_loss_limit_allows_exits_only_until_the_next_utc_day(make_stack):
    s = await make_stack(daily_loss_limit_pct=D(2))
    position = await s.open()
    s.prices["BTCUSDT"] = D("47000.00")  # -6 % on half the account: -3 %
    await s.risk.evaluate()
    assert s.risk.states(s.trader.id)[0] == REDUCING and not s.risk.allows_entries(s.trader.id)
    with pytest.raises(RiskDenied, match="REDUCING: exits only"):
        await s.open("ETHUSDT")
    assert await s.close(position) is not None  # exits run
    s.now[0] += DAY_MS
    await s.risk.evaluate()
    assert s.risk.states(s.trader.id)[0] == ACTIVE
    assert await s.open("ETHUSDT") is not None


async def test_a_losing_close_cools_its_symbol_down(make_stack):
    s = await make_stack(loss_cooldown_minutes=30)
    position = await s.open()
    s.prices["BTCUSDT"] = D("49000.00")
    pnl, _ = await s.close(position)
    assert pnl < 0
    closed_at = await s.pool.fetchval("SELECT closed_at FROM positions WHERE id = $1", position.id)
    s.now[0] = int(closed_at.timestamp() * 1000) + 60_000
    with pytest.raises(RiskDenied, match="cooldown"):
        await s.open()
    eth = await s.open("ETHUSDT")  # another symbol is not cooling down
    await s.close(eth)
    s.now[0] += 30 * 60_000
    assert await s.open() is not None


async def test_the_kill_switch_halts_every_trader(make_stack):
    s = await make_stack(kill=D(3))
    other = await add_trader(s.pool, s.user_id, "other")
    s.risk.set_traders([s.trader, other])
    await s.open()
    s.prices["BTCUSDT"] = D("40000.00")  # -20 % on 5,000 of 20,000 capital: -5 %
    await s.risk.evaluate()
    assert s.risk.states(other.id) == (ACTIVE, HALTED)
    with pytest.raises(RiskDenied, match="user is HALTED"):
        await s.open("ETHUSDT", trader=other)
    assert "kill switch" in (await s.events("state"))[0]


async def test_metrics_are_stored_on_every_close(make_stack):
    s = await make_stack()
    pnls = []
    for price in ("51000.00", "49500.00"):
        s.prices["BTCUSDT"] = D("50000.00")
        position = await s.open()
        s.prices["BTCUSDT"] = D(price)
        pnls.append((await s.close(position))[0])
        row = await s.pool.fetchrow("SELECT * FROM trader_metrics WHERE trader_id = $1 AND mode = 'paper'", s.trader.id)
        expected = compute_metrics(pnls, D("10000"), signals=len(pnls), open_positions=0)
        assert (row["closed_positions"], row["total_pnl"], row["wins"], row["losses"]) == (
            expected.closed_positions, expected.total_pnl, expected.wins, expected.losses)
        assert (row["max_drawdown"], row["profit_factor"], row["signals"]) == (
            expected.max_drawdown, expected.profit_factor, len(pnls))
    assert row["win_rate"] == D("50.0000") and row["avg_loss"] == pnls[1] < 0


async def test_a_live_trader_reuses_nothing_of_the_paper_metrics(make_stack):
    s = await make_stack()
    position = await s.open()
    await s.close(position)
    live = replace(s.trader, mode="live")
    await s.risk.update_metrics(live, "live")
    rows = {r["mode"]: r for r in await s.repo.metrics(s.trader.id)}
    assert rows["paper"]["closed_positions"] == 1 and rows["live"]["closed_positions"] == 0


async def test_a_burst_of_closes_is_one_round_of_metrics_and_readings_not_one_per_close(make_stack):
    """Every close used to start its own metrics update and equity reading of every trader: a
    burst of stop-losses queued dozens of full readings behind the closes still being sent."""
    s = await make_stack(max_drawdown_pct=D(5))
    traders = [s.trader] + [await add_trader(s.pool, s.user_id, f"t{i}", max_drawdown_pct=D(5)) for i in (2, 3)]
    s.risk.set_traders(traders)
    positions = [await s.open(trader=t) for t in traders]
    await s.risk.evaluate()  # every trader's equity peak
    s.prices["BTCUSDT"] = D("30000.00")  # -40 %: the closes take every trader past its max drawdown
    evaluations = []
    real_evaluate = s.risk.evaluate

    async def counting_evaluate():
        evaluations.append(1)
        await real_evaluate()

    s.risk.evaluate = counting_evaluate
    trigger = Trigger("stop_loss", D("49000"), D("30000"), D("30000"), D("30000"))
    await asyncio.gather(*(s.execution.close(p, "stop_loss", trigger) for p in positions))
    for position in positions:  # the closes of one price update report in one go
        s.risk.closed(position)  # what the machine's on_closed does; returns at once
    await s.risk.settle()
    assert s.risk.close_rounds == 1 and len(evaluations) == 1  # one round for the three closes
    rows = await s.pool.fetch("SELECT * FROM trader_metrics WHERE mode = 'paper'")
    assert sorted((r["trader_id"], r["closed_positions"], r["losses"]) for r in rows) == sorted(
        (t.id, 1, 1) for t in traders)  # every close is in its trader's metrics
    assert [s.risk.states(t.id)[0] for t in traders] == [HALTED] * 3  # and the one reading saw all of them
    s.risk.closed(positions[0])  # a close reported after the round: another round
    await s.risk.settle()
    assert s.risk.close_rounds == 2
