"""The orchestration layer's signal pipeline, end to end in one process: a match becomes a signal
row, a real analysis service is asked over HTTP (scripted backends, the rules backend, 5xx and
timeouts), the decision is stored, then executed as an order sequence on a real Postgres.
Market data: real recorded BTCUSDT klines."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from decimal import Decimal as D
from typing import Any

import pytest
from aiohttp import web

from control_plane.analysis import AnalysisResult, Decision, RulesBackend, create_analysis_app
from machine.analysis import AnalysisClient
from machine.execution import ExecutionService, PaperExecutor, SymbolRules
from machine.persistence import (
    AnalysisRepository,
    RiskRepository,
    SequenceRepository,
    SignalRepository,
    TraderRepository,
    TradingRepository,
    open_pool,
)
from machine.risk import RiskService
from machine.sequences import MarketView, SequenceEngine
from machine.signals import SignalPipeline
from sandbox._replay import default_replay_dir, load_1m, to_klines

TOKEN = "analysis-token-0123"
RULES = {"BTCUSDT": SymbolRules(D("0.01"), D("0.00001"), D("0.00001"), D("5"), "BTC", "USDT")}
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "backoff_jitter_s": 0.0}


class Scripted:
    """Answers the queued results in order; an exception instance is raised (the service answers 5xx)."""

    name = "scripted"

    def __init__(self) -> None:
        self.queue: deque[Any] = deque()
        self.gate: asyncio.Event | None = None

    async def analyze(self, request: Any) -> AnalysisResult:
        if self.gate is not None:
            await self.gate.wait()
        item = self.queue.popleft()
        if isinstance(item, Exception):
            raise item
        return item


def result(decision: str, **metadata: Any) -> AnalysisResult:
    levels = {k: D(str(metadata.pop(k))) for k in ("stop_loss", "take_profit") if k in metadata}
    return AnalysisResult(Decision(decision), "scripted", 70, extra_metadata=metadata, **levels)


@pytest.fixture(scope="module")
def window() -> Any:
    rows = load_1m(default_replay_dir(), "BTCUSDT", 300)
    return to_klines(rows[-300:], "1m").T.copy()


class Stack:
    pass


async def _serve(backend: Any, port_holder: list[web.AppRunner]) -> str:
    runner = web.AppRunner(create_analysis_app(backend, TOKEN, backend_timeout_s=5))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port_holder.append(runner)
    return f"http://127.0.0.1:{runner.addresses[0][1]}/analyze-signal"


@pytest.fixture
async def stack(db_url, window):
    s = Stack()
    s.pool = await open_pool(db_url)
    s.user_id = await s.pool.fetchval("INSERT INTO users (email, tier, subscription_status) VALUES ('p@x', 'pro', "
                                      "'active') RETURNING id")
    await s.pool.execute(
        "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, "
        "reanalysis_interval, position_size_pct, max_positions) VALUES ($1, 't', 'x', 'y', '{1m}', '1m_close', '5m', "
        "10, 3)", s.user_id)
    [s.trader] = await TraderRepository(s.pool).load_active(s.user_id)
    s.price = D(str(window[4, -1])).quantize(D("0.01"))
    s.market_ms = int(window[0, -1])
    prices = {"BTCUSDT": s.price}
    s.trading = TradingRepository(s.pool)
    s.signals = SignalRepository(s.pool)
    s.analyses = AnalysisRepository(s.pool)

    async def trader_equity(_):
        return D(10000)

    s.risk = RiskService(user_id=s.user_id, repo=RiskRepository(s.pool), equity=trader_equity,
                         start_capital=trader_equity, period_s=3600)
    await s.risk.start([s.trader])
    s.execution = ExecutionService(
        user_id=s.user_id, repo=s.trading, executors={"paper": PaperExecutor(prices.get, D("0.001"), RULES.__getitem__)},
        rules=RULES.get, last_price=prices.get, quote_asset="USDT", start_balance=D("10000"),
        on_opened=lambda p: None, on_closed=lambda p, r: None, gate=s.risk.check)
    s.engine = SequenceEngine(user_id=s.user_id, sequences=SequenceRepository(s.pool), trading=s.trading,
                              execution=s.execution, market=lambda sym, mode: MarketView(prices.get(sym), RULES.get(sym),
                                                                                         D("0.001")),
                              trader=lambda tid: s.trader)
    s.runners = []
    s.backend = Scripted()
    s.client = AnalysisClient(await _serve(s.backend, s.runners), TOKEN, timeout_s=2, max_attempts=2, **FAST)

    def pipeline(client: AnalysisClient | None = None) -> SignalPipeline:
        return SignalPipeline(user_id=s.user_id, signals=s.signals, analyses=s.analyses, trading=s.trading,
                              analysis=client or s.client, sequences=s.engine,
                              windows=lambda sym, tf: window, ticker=lambda sym: {"symbol": sym, "lastPrice": str(s.price)},
                              last_price=prices.get, risk=s.risk)

    s.make_pipeline = pipeline
    s.pipeline = pipeline()

    async def match() -> dict[str, Any]:
        await s.pipeline.on_match(s.trader, "BTCUSDT", s.market_ms)
        await s.pipeline.drain()
        s.market_ms += 60_000  # the next match is on the next candle
        return dict(await s.pool.fetchrow("SELECT * FROM signals ORDER BY created_at DESC LIMIT 1"))

    s.match = match
    yield s
    await s.client.aclose()
    for runner in s.runners:
        await runner.cleanup()
    await s.risk.stop()
    await s.pool.close()


async def analyses(pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch("SELECT decision, executable, rejection_reason, metadata FROM "
                                              "analysis_history ORDER BY timestamp")]


async def test_an_open_with_levels_from_the_decision(stack):
    sl, tp = (stack.price * D("0.98")).quantize(D("0.01")), (stack.price * D("1.05")).quantize(D("0.01"))
    stack.backend.queue.append(result("open_long", stop_loss=sl, take_profit=tp))
    signal = await stack.match()
    position = await stack.pool.fetchrow("SELECT * FROM positions")
    assert signal["status"] == "position_open" and (position["stop_loss"], position["take_profit"]) == (sl, tp)
    [stored] = await analyses(stack.pool)
    assert stored["decision"] == "open_long" and stored["executable"]


async def test_the_rules_backend_decides_on_real_klines_and_is_stored(stack):
    client = AnalysisClient(await _serve(RulesBackend(), stack.runners), TOKEN, timeout_s=5, max_attempts=1, **FAST)
    stack.pipeline = stack.make_pipeline(client)
    try:
        signal = await stack.match()
    finally:
        await client.aclose()
    [stored] = await analyses(stack.pool)
    assert stored["executable"] and stored["metadata"]["rule"]  # the rules backend's own explanation
    expected = {"open_long": "position_open", "open_short": "position_open", "watch": "watching",
                "no_trade": "closed"}[stored["decision"]]
    assert signal["status"] == expected


@pytest.mark.parametrize(("answer", "reason"), [
    (result("open_long", stop_loss=90000, take_profit=80000), "stopLoss 90000 >= takeProfit 80000"),
    (result("hedge"), "hedge is refused"),
    (result("partial_close", closePercentage=0), "closePercentage"),
])
async def test_an_invalid_decision_is_stored_and_never_executed(stack, answer, reason):
    stack.backend.queue.append(answer)
    signal = await stack.match()
    [stored] = await analyses(stack.pool)
    assert not stored["executable"] and reason in stored["rejection_reason"]
    assert signal["status"] == "closed" and signal["close_reason"] == "invalid_decision"
    assert await stack.pool.fetchval("SELECT count(*) FROM trades") == 0


async def test_a_decision_that_needs_a_position_is_refused_with_its_reason(stack):
    stack.backend.queue.append(result("partial_close"))
    signal = await stack.match()
    [stored] = await analyses(stack.pool)
    assert not stored["executable"] and "needs an open position" in stored["rejection_reason"]
    assert signal["close_reason"] == "nothing_to_close"


async def test_no_trade_closes_the_signal_and_watch_keeps_it(stack):
    stack.backend.queue.extend([result("no_trade"), result("watch")])
    assert (await stack.match())["close_reason"] == "no_trade"
    assert (await stack.match())["status"] == "watching"


@pytest.mark.parametrize("failure", ["5xx", "timeout"])
async def test_an_analysis_that_fails_closes_the_signal_and_trades_nothing(stack, failure):
    if failure == "5xx":
        stack.backend.queue.extend([RuntimeError("backend down")] * 2)
    else:
        stack.backend.gate = asyncio.Event()  # never answers within the client's 2 s
    signal = await stack.match()
    if stack.backend.gate is not None:
        stack.backend.gate.set()
    assert signal["status"] == "closed" and signal["close_reason"] == "analysis_failed"
    assert await analyses(stack.pool) == [] and await stack.pool.fetchval("SELECT count(*) FROM trades") == 0
    assert stack.pipeline.analysis_failures == 1


async def test_the_decision_is_stored_before_it_is_executed(stack, monkeypatch):
    class Crash(BaseException):
        pass

    async def dies(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(stack.engine, "execute", dies)
    stack.backend.queue.append(result("open_long"))
    with pytest.raises(Crash):
        await stack.pipeline._new_signal(stack.trader, "BTCUSDT", stack.market_ms)
    [stored] = await analyses(stack.pool)
    assert stored["decision"] == "open_long" and stored["executable"]
    assert await stack.pool.fetchval("SELECT count(*) FROM trades") == 0


async def test_a_reanalysis_executes_close_and_position_decisions(stack):
    stack.backend.queue.append(result("open_long"))
    await stack.match()
    stack.backend.queue.extend([result("update_stop_loss", newStopLoss=str(stack.price * D("0.97"))),
                                result("partial_close", closePercentage=0.5), result("close")])
    for _ in range(3):
        await stack.pipeline.reanalyse(stack.trader, stack.market_ms)
    position = await stack.pool.fetchrow("SELECT * FROM positions")
    assert position["status"] == "closed" and position["close_reason"] == "analysis_close"
    assert position["stop_loss"] == (stack.price * D("0.97")).quantize(D("0.01"))
    decisions = [r["decision"] for r in await stack.pool.fetch(
        "SELECT decision FROM order_sequences WHERE status = 'done' ORDER BY created_at")]
    assert decisions == ["open_long", "update_stop_loss", "partial_close", "close"]


async def test_a_halted_trader_gets_no_new_signals(stack):
    await stack.risk.set_state("trader", stack.trader.id, "HALTED", "by hand")
    await stack.pipeline.on_match(stack.trader, "BTCUSDT", stack.market_ms)
    await stack.pipeline.drain()
    assert await stack.pool.fetchval("SELECT count(*) FROM signals") == 0


async def test_an_entry_is_traced_signal_then_analysis_then_fill_and_only_a_fill_is_sampled(stack):
    from machine.latency import LatencyBook, TickTiming

    book = LatencyBook()
    stack.backend.queue.extend([result("no_trade"), result("open_long")])
    traces = []
    for _ in range(2):
        open_time = stack.market_ms - 60_000
        book.on_kline_closed("BTCUSDT", "1m", open_time)
        now = time.perf_counter()
        trace = book.entry(str(stack.trader.id), "BTCUSDT", "1m", open_time, TickTiming(now, now))
        traces.append(trace)
        await stack.pipeline.on_match(stack.trader, "BTCUSDT", stack.market_ms, trace)
        await stack.pipeline.drain()
        stack.market_ms += 60_000
    no_trade, opened = traces
    assert "filled" not in no_trade.marks and set(no_trade.marks) >= {"signal", "analysed"}
    m = opened.marks
    assert m["arrived"] <= m["screen_start"] <= m["screen_end"] <= m["signal"] <= m["analysed"] <= m["filled"]
    assert await stack.pool.fetchval("SELECT count(*) FROM positions WHERE status = 'open'") == 1
    gauges = book.gauges()
    assert gauges["latency_entry_total_p50_ms"] == round(opened.stages_ms()["total"], 3)  # one sample: the fill
