"""Every decision as an order sequence (machine.sequences) over the paper executor and a real
Postgres: the plan, the steps recorded before they are taken, balances and PnL checked
against an independent computation from the fills, and a crash at each step."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_EVEN, Decimal as D
from typing import Any

import orjson
import pytest

from fills_testkit import average_cost_pnl
from machine.accounts import reduce_changes, realised_pnl
from machine.analysis import parse_analysis_response
from machine.execution import ExecutionService, PaperExecutor, SymbolRules, step_order_id
from machine.persistence import (
    PositionRecord,
    SequenceRepository,
    SignalRepository,
    TraderRepository,
    TradingRepository,
    open_pool,
)
from machine.sequences import MarketView, Refused, SequenceEngine, plan

RULES = {"BTCUSDT": SymbolRules(D("0.01"), D("0.00001"), D("0.00001"), D("5"), "BTC", "USDT"),
         "DOGEUSDT": SymbolRules(D("0.00001"), D("1"), D("1"), D("5"), "DOGE", "USDT")}
RATE = D("0.001")
EIGHT = D("0.00000001")


def decision(kind: str, **metadata: Any):
    body = {"success": True, "analysis": {"decision": kind, "reasoning": "r", "confidence": 70, "metadata": metadata}}
    parsed = parse_analysis_response(orjson.dumps(body))
    assert parsed.valid, parsed.invalid_reason
    return parsed


def position(side="long", size=D("0.02"), **kw: Any) -> PositionRecord:
    base = dict(id=uuid.uuid4(), signal_id=uuid.uuid4(), trader_id=uuid.uuid4(), mode="paper", symbol="BTCUSDT",
                side=side, status="open", entry_price=D("50000"), size=size, stop_loss=D("49000"),
                take_profit=D("52000"), fees=D(0), cost_basis=D("1000"))
    base.update(kw)
    return PositionRecord(**base)


MARKET = MarketView(D("50000"), RULES["BTCUSDT"], RATE)


# -- the plan (pure) ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "metadata", "held", "mode", "steps"), [
    ("no_trade", {}, None, "paper", []),
    ("watch", {}, "long", "paper", []),
    ("open_long", {"stopLoss": 49000}, None, "paper", ["open"]),
    ("open_short", {}, None, "paper", ["open"]),
    ("close", {}, "long", "paper", ["close"]),
    ("partial_close", {"closePercentage": 0.5}, "long", "paper", ["reduce"]),
    ("partial_close", {"closePercentage": 100}, "long", "paper", ["close"]),
    ("scale_out", {}, "short", "paper", ["reduce"]),
    ("scale_in", {"scaleInAmount": 0.01}, "long", "live", ["increase"]),
    ("update_stop_loss", {"newStopLoss": 49500}, "long", "paper", ["set_levels"]),
    ("update_take_profit", {"newTakeProfit": 48000}, "short", "paper", ["set_levels"]),
    ("flip_position", {}, "long", "paper", ["close", "open"]),
    ("flip_position", {}, "short", "live", ["close", "open"]),  # into a long: fine on spot
])
def test_each_decision_plans_its_steps(kind, metadata, held, mode, steps):
    planned = plan(decision(kind, **metadata), mode, position(held) if held else None, MARKET, uuid.uuid4())
    assert not isinstance(planned, Refused), planned
    assert [s.kind for s in planned] == steps


@pytest.mark.parametrize(("kind", "metadata", "held", "mode", "reason"), [
    ("close", {}, None, "paper", "needs an open position"),
    ("partial_close", {}, None, "paper", "needs an open position"),
    ("update_stop_loss", {"newStopLoss": 1}, None, "paper", "needs an open position"),
    ("flip_position", {}, None, "paper", "needs an open position"),
    ("open_long", {}, "long", "paper", "already open"),
    ("open_short", {}, None, "live", "live spot cannot short"),
    ("flip_position", {}, "long", "live", "cannot flip into a short"),
    ("scale_in", {}, "short", "live", "live spot cannot short"),
    ("update_stop_loss", {"newStopLoss": 50500}, "long", "paper", "not below the current price"),
    ("update_stop_loss", {"newStopLoss": 49500}, "short", "paper", "not above the current price"),
    ("update_take_profit", {"newTakeProfit": 49000}, "long", "paper", "not above the current price"),
    ("flip_position", {"stopLoss": 49000}, "long", "paper", "flip into a short: stop-loss"),
    ("partial_close", {"closePercentage": 0.0001}, "long", "paper", "rounds to nothing"),
    ("partial_close", {"closePercentage": 0.001}, "long", "paper", "below the exchange minimum"),
    ("partial_close", {"closePercentage": 0.9999}, "long", "paper", "would leave"),
])
def test_a_decision_that_does_not_fit_the_state_is_refused(kind, metadata, held, mode, reason):
    planned = plan(decision(kind, **metadata), mode, position(held) if held else None, MARKET, uuid.uuid4())
    assert isinstance(planned, Refused) and reason in planned.reason, planned


def test_no_price_refuses_everything_but_no_trade_and_watch():
    blind = MarketView(None, RULES["BTCUSDT"], RATE)
    assert plan(decision("watch"), "paper", None, blind, uuid.uuid4()) == ()
    assert isinstance(plan(decision("open_long"), "paper", None, blind, uuid.uuid4()), Refused)


def test_step_order_ids_are_deterministic_and_binance_safe():
    seq = uuid.UUID("12345678-1234-5678-1234-567812345678")
    coid = step_order_id(seq, 3, 2)
    assert coid == step_order_id(seq, 3, 2) != step_order_id(seq, 3, 1) != step_order_id(seq, 4, 2)
    assert len(coid) <= 36 and all(c.isalnum() or c in "-_" for c in coid) and coid.startswith("q0302")


# -- average-cost accounting (pure) -------------------------------------------------------------------


def test_a_single_reduce_to_nothing_matches_the_one_open_one_close_pnl():
    # long: bought 0.02 at 50,000 (0.00002 BTC commission), holds 0.01998, sells all at 51,000
    r = reduce_changes("long", "BTC", "USDT", D("51000"), D("0.01998"), D("1.01898"), D("0.01998"), D(0), D("1000"))
    assert r.pnl == realised_pnl("long", D("50000"), D("0.02"), D("0.00002"), D("51000"), D("0.01998"),
                                 D("1.01898"))[0]
    assert (r.size, r.cost_basis) == (D(0), D(0))


def test_a_short_reduce_releases_its_share_of_the_lock():
    # short 0.1 at 50,000: proceeds 4,995 kept, 9,995 locked; buy back 0.05005 at 40,000 (repays 0.05)
    fee = (D("0.05005") * RATE).quantize(EIGHT, rounding=ROUND_HALF_EVEN)
    r = reduce_changes("short", "BTC", "USDT", D("40000"), D("0.05005"), fee, D("0.1"), D("9995"), D("4995"))
    repaid = D("0.05005") - fee
    assert r.size == D("0.1") - repaid and r.locked == D("9995") - (D("9995") * repaid / D("0.1")).quantize(EIGHT)
    assert r.pnl == (D("4995") * repaid / D("0.1")).quantize(EIGHT) - D("0.05005") * D("40000")


# -- through the execution service and Postgres ------------------------------------------------------


async def add_trader(pool, user_id, name="t", size_pct=10, max_positions=3):
    await pool.execute(
        "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, reanalysis_interval, "
        "stop_loss_pct, take_profit_pct, position_size_pct, max_positions) "
        "VALUES ($1, $2, 'x', 'y', '{1m}', '1m_close', '5m', 2, 4, $3, $4)", user_id, name, size_pct, max_positions)
    return next(t for t in await TraderRepository(pool).load_active(user_id) if t.name == name)


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the machine catches it)."""


class Machine:
    """One machine's execution stack; ``restart()`` builds a fresh one on the same database, as a reboot does."""

    def __init__(self, pool, user_id, trader, prices) -> None:
        self.pool, self.user_id, self.trader, self.prices = pool, user_id, trader, prices
        self.tracked: dict[uuid.UUID, PositionRecord] = {}
        self.build()

    def build(self) -> None:
        self.trading = TradingRepository(self.pool)
        self.sequences = SequenceRepository(self.pool)
        self.executor = PaperExecutor(self.prices.get, RATE, RULES.__getitem__)
        self.execution = ExecutionService(
            user_id=self.user_id, repo=self.trading, executors={"paper": self.executor}, rules=RULES.get,
            last_price=self.prices.get, quote_asset="USDT", start_balance=D("10000"),
            on_opened=lambda p: self.tracked.__setitem__(p.id, p), on_closed=lambda p, r: self.tracked.pop(p.id, None))
        self.engine = SequenceEngine(
            user_id=self.user_id, sequences=self.sequences, trading=self.trading, execution=self.execution,
            market=lambda s, mode: MarketView(self.prices.get(s), RULES.get(s), RATE),
            trader=lambda tid: self.trader if tid == self.trader.id else None)

    async def restart(self):
        """What the orchestrator's recovery does: cancel paper intents that never filled, resume sequences."""
        self.build()
        for trade in await self.trading.pending_trades(self.user_id):
            await self.trading.cancel_trade(trade, "interrupted before fill (machine restarted)")
        return await self.engine.resume()

    async def decide(self, kind: str, symbol="BTCUSDT", **metadata: Any):
        live = await self.trading.live_position(self.trader.id, symbol)
        signal = live.signal_id if live else await SignalRepository(self.pool).create(
            self.trader.id, self.user_id, symbol, 1, self.prices[symbol])
        return await self.engine.execute(self.trader, decision(kind, **metadata), symbol=symbol, signal_id=signal,
                                         analysis_id=None, position=live)


@pytest.fixture
async def machine(db_url):
    pool = await open_pool(db_url)
    user_id = await pool.fetchval("INSERT INTO users (email, tier, subscription_status) VALUES ('s@x', 'pro', 'active') "
                                  "RETURNING id")
    trader = await add_trader(pool, user_id)
    yield Machine(pool, user_id, trader, {"BTCUSDT": D("50000.00"), "DOGEUSDT": D("0.31234")})
    await pool.close()


async def fills(pool, trader_id) -> list[Any]:
    return await pool.fetch(
        "SELECT position_id, purpose, side, price, quantity, fee, fee_asset, client_order_id FROM trades "
        "WHERE trader_id = $1 AND status = 'filled' ORDER BY executed_at, created_at", trader_id)


def independent_books(rows, start=D("10000")) -> tuple[dict[str, D], dict[uuid.UUID, D]]:
    """Balances (free + locked) per asset and PnL per position from the fills and the fee rule alone:
    a BUY pays quote N and receives base q - fee; a SELL gives base q and receives N - fee; PnL at
    the average cost (``fills_testkit``)."""
    totals: dict[str, D] = {"USDT": start}
    by_position: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for r in rows:
        base = "BTC"  # every fill of these tests is BTCUSDT
        n = r["price"] * r["quantity"]
        if r["side"] == "BUY":
            totals["USDT"] = totals["USDT"] - n
            totals[base] = totals.get(base, D(0)) + r["quantity"] - r["fee"]
        else:
            totals["USDT"] = totals["USDT"] + n - r["fee"]
            totals[base] = totals.get(base, D(0)) - r["quantity"]
        by_position.setdefault(r["position_id"], []).append({**dict(r), "quote_quantity": n})
    return totals, {pid: average_cost_pnl(fills) for pid, fills in by_position.items()}


async def assert_books_match_the_fills(m: Machine) -> None:
    rows = await fills(m.pool, m.trader.id)
    totals, pnl = independent_books(rows)
    balances = await m.trading.balances(m.trader.id)
    assert {a: f + l for a, (f, l) in balances.items() if f + l} == {a: v for a, v in totals.items() if v}
    for position_id, expected in pnl.items():
        row = await m.pool.fetchrow("SELECT status, pnl, realized_pnl FROM positions WHERE id = $1", position_id)
        assert (row["pnl"] if row["status"] == "closed" else row["realized_pnl"]) == expected


async def steps_of(pool, sequence_id) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT kind, status FROM order_sequence_steps WHERE sequence_id = $1 ORDER BY step",
                            sequence_id)
    return [(r["kind"], r["status"]) for r in rows]


async def test_partial_close_scale_in_moved_levels_and_close_book_like_the_fills(machine):
    m = machine
    opened = await m.decide("open_long", takeProfit=60000)
    assert opened.status == "done" and opened.position.size == D("0.01998")
    m.prices["BTCUSDT"] = D("51000.00")
    half = await m.decide("partial_close", closePercentage=0.5)
    assert half.status == "done" and half.position.size == D("0.00999")
    assert await steps_of(m.pool, half.sequence_id) == [("reduce", "done")]
    reduce = await m.pool.fetchrow("SELECT client_order_id, side, quantity FROM trades WHERE purpose = 'reduce'")
    assert reduce["client_order_id"] == step_order_id(half.sequence_id, 0) and reduce["side"] == "SELL"
    assert reduce["quantity"] == D("0.00999")
    m.prices["BTCUSDT"] = D("49000.00")
    more = await m.decide("scale_in", scaleInAmount=0.01)
    assert more.position.size == D("0.00999") + D("0.01") - D("0.00001")
    assert more.position.entry_price == ((D("50000") * D("0.02") + D("49000") * D("0.01")) / D("0.03")).quantize(EIGHT)
    moved = await m.decide("update_stop_loss", newStopLoss=48500)
    assert moved.position.stop_loss == D("48500.00") and m.tracked[moved.position.id].stop_loss == D("48500.00")
    tp = await m.decide("update_take_profit", newTakeProfit=55000)
    assert (tp.position.stop_loss, tp.position.take_profit) == (D("48500.00"), D("55000.00"))
    m.prices["BTCUSDT"] = D("52000.00")
    out = await m.decide("scale_out")  # 25 % by default
    assert out.status == "done" and out.position is not None
    closed = await m.decide("close")
    assert closed.status == "done" and closed.position is None
    await assert_books_match_the_fills(m)
    purposes = [r["purpose"] for r in await fills(m.pool, m.trader.id)]
    assert purposes == ["open", "reduce", "increase", "reduce", "close"]
    assert await m.pool.fetchval("SELECT count(*) FROM order_sequences WHERE status <> 'done'") == 0


async def test_a_short_partially_closed_scaled_in_and_flipped_books_like_the_fills(machine):
    m = machine
    await m.decide("open_short")
    m.prices["BTCUSDT"] = D("48000.00")
    await m.decide("partial_close", closePercentage=40)
    await m.decide("scale_in")  # sized by the trader's risk settings
    m.prices["BTCUSDT"] = D("47000.00")
    flipped = await m.decide("flip_position", takeProfit=50000)
    assert flipped.status == "done" and flipped.position.side == "long" and flipped.position.take_profit == D("50000")
    assert await steps_of(m.pool, flipped.sequence_id) == [("close", "done"), ("open", "done")]
    assert await m.pool.fetchval("SELECT close_reason FROM positions WHERE side = 'short'") == "flip_position"
    (usdt_free, usdt_locked) = (await m.trading.balances(m.trader.id))["USDT"]
    assert usdt_locked == 0 and usdt_free > 0  # the short's collateral and proceeds all released
    await assert_books_match_the_fills(m)


async def test_refused_and_failing_steps_send_nothing(machine):
    m = machine
    nothing = await m.decide("close")
    assert nothing.status == "refused" and "needs an open position" in nothing.error
    await m.decide("open_long")
    before = await m.pool.fetchval("SELECT count(*) FROM trades")
    wrong = await m.decide("update_stop_loss", newStopLoss=51000)
    assert wrong.status == "refused" and "not below the current price" in wrong.error
    greedy = await m.decide("scale_in", scaleInAmount=1)  # 50,000 USDT: more than the account has
    assert greedy.status == "failed" and "insufficient buying power" in greedy.error
    assert await m.pool.fetchval("SELECT count(*) FROM trades") == before
    assert (await m.trading.balances(m.trader.id))["USDT"] == (D("9000"), D(0))  # no reservation left behind
    row = await m.pool.fetchrow("SELECT status, error FROM order_sequences WHERE id = $1", greedy.sequence_id)
    assert row["status"] == "failed" and "insufficient" in row["error"]


# -- a crash at each step --------------------------------------------------------------------------------


def crash_in(monkeypatch, obj, name: str, *, after: bool = False, call: int = 1):
    """Make the ``call``-th call of ``obj.name`` from now kill the process, before (or ``after``) it did its work."""
    original = getattr(obj, name)
    calls = [0]

    async def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] != call:
            return await original(*args, **kwargs)
        if after:
            await original(*args, **kwargs)
        raise Crash(name)

    monkeypatch.setattr(obj, name, dying)


FLIP_CRASHES = [
    ("sequences", "start_step", False, 1),   # step 0 recorded, nothing sent
    ("executor", "submit", False, 1),        # the close intent written, the order never sent
    ("executor", "submit", True, 1),         # the close order filled, its booking lost
    ("trading", "record_close_fills", True, 1),  # the close booked, its step not marked done
    ("sequences", "start_step", False, 2),   # the close done, the open not started
    ("executor", "submit", False, 2),        # the open intent written, not sent
    ("executor", "submit", True, 2),         # the open filled, its booking lost
]


@pytest.mark.parametrize(("target", "method", "after", "call"), FLIP_CRASHES)
async def test_a_crash_at_any_step_of_a_flip_resumes_or_ends_it_cleanly(machine, monkeypatch, target, method, after,
                                                                         call):
    m = machine
    first = await m.decide("open_long")
    owner = {"sequences": m.sequences, "executor": m.executor, "trading": m.trading}[target]
    crash_in(monkeypatch, owner, method, after=after, call=call)
    with pytest.raises(Crash):
        await m.decide("flip_position")
    monkeypatch.undo()
    results = await m.restart()
    assert [r.status for r in results] in (["done"], ["failed"])
    rows = await m.pool.fetch("SELECT side, status FROM positions ORDER BY opened_at")
    live = [r for r in rows if r["status"] in ("open", "pending")]
    assert len(live) <= 1 and all(r["status"] == "open" for r in live)  # flat, or the flip's new position
    assert await m.pool.fetchval("SELECT status FROM positions WHERE id = $1", first.position.id) == "closed"
    filled = await m.pool.fetch("SELECT position_id, purpose FROM trades WHERE status = 'filled'")
    assert len(filled) == len({(r["position_id"], r["purpose"]) for r in filled})  # no order filled twice
    assert await m.pool.fetchval("SELECT count(*) FROM order_sequences WHERE status = 'running'") == 0
    assert await m.pool.fetchval("SELECT count(*) FROM trades WHERE status = 'pending'") == 0
    await assert_books_match_the_fills(m)


PARTIAL_CRASHES = [
    ("sequences", "start_step", False),
    ("executor", "submit", False),
    ("executor", "submit", True),
    ("trading", "record_reduce_fill", True),
    ("sequences", "finish_step", False),
]


@pytest.mark.parametrize(("target", "method", "after"), PARTIAL_CRASHES)
async def test_a_crash_at_any_step_of_a_partial_close_resumes_it_once(machine, monkeypatch, target, method, after):
    m = machine
    opened = await m.decide("open_long")
    owner = {"sequences": m.sequences, "executor": m.executor, "trading": m.trading}[target]
    crash_in(monkeypatch, owner, method, after=after)
    with pytest.raises(Crash):
        await m.decide("partial_close", closePercentage=0.5)
    monkeypatch.undo()
    results = await m.restart()
    assert [r.status for r in results] == ["done"]  # a reduce takes risk off: it is resumed
    reduces = await m.pool.fetch("SELECT status FROM trades WHERE purpose = 'reduce' AND status = 'filled'")
    assert len(reduces) == 1  # exactly once, whatever the crash
    assert (await m.trading.position(opened.position.id)).size == D("0.00999")
    await assert_books_match_the_fills(m)


async def test_an_interrupted_scale_in_is_ended_not_resumed(machine, monkeypatch):
    m = machine
    opened = await m.decide("open_long")
    crash_in(monkeypatch, m.executor, "submit")
    with pytest.raises(Crash):
        await m.decide("scale_in", scaleInAmount=0.01)
    monkeypatch.undo()
    [result] = await m.restart()
    assert result.status == "failed" and "not resumed after a restart" in result.error
    assert (await m.trading.position(opened.position.id)).size == D("0.01998")
    assert (await m.trading.balances(m.trader.id))["USDT"] == (D("9000"), D(0))  # reservation released
