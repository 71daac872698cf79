"""Signal pipeline: match -> signal row -> analysis -> stored decision -> execution.

Order of effects (each persisted before the next step):

1. a ``signals`` row (status ``new``) before the analysis call;
2. the analysis result in ``analysis_history`` (also when it is invalid or
   unknown: stored with ``executable = false`` and never executed);
3. execution as an order sequence (:class:`~machine.sequences.SequenceEngine`): the
   sequence and its steps are written before the first order, each order's intent
   (with its client order id) before the order. A decision that does not fit the state
   (``machine.sequences.plan``) is stored with its reason and never executed.

A watched signal is re-analysed on the trader's re-analysis interval; after
``MAX_WATCH_ANALYSES`` analyses that all said ``watch``, or once it is
``MAX_WATCH_AGE_MS`` (24 h) of market time old, it is closed with reason
``watch_expired`` (the setup is stale), so watched signals do not pile up and
never block their symbol for long. Open positions are re-analysed on the same
interval and the decision executed (close, partial close, scale in/out, moved levels,
flip; a new open is refused).

Deduplication: while a trader has a signal in flight or being watched, or a
position open on a symbol, further matches of that symbol are ignored; and at
most one signal per trader, symbol and candle of the trader's first interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog

from machine.analysis import AnalysisClient, AnalysisDecision, AnalysisError, AnalysisRequest, OpenPosition
from machine.latency import EntryTrace
from machine.persistence import AnalysisRepository, PositionRecord, SignalRecord, SignalRepository, TradingRepository
from machine.risk import RiskService
from machine.sequences import SequenceEngine
from machine.signals._payload import build_market_payload
from machine.timers import INTERVAL_MS
from machine.traders import TraderConfig

__all__ = ["SignalPipeline"]

log = structlog.get_logger(__name__)

MAX_WATCH_ANALYSES = 6
MAX_WATCH_AGE_MS = 24 * 3_600_000
"""A watched signal older than this (market time since its match) expires at its next re-analysis."""


class SignalPipeline:
    """Handles matches and re-analyses for one user's traders."""

    def __init__(
        self,
        *,
        user_id: UUID,
        signals: SignalRepository,
        analyses: AnalysisRepository,
        trading: TradingRepository,
        analysis: AnalysisClient,
        sequences: SequenceEngine,
        windows: Callable[[str, str], Any],
        ticker: Callable[[str], dict[str, Any] | None],
        last_price: Callable[[str], Decimal | None],
        max_concurrent: int = 8,
        risk: RiskService | None = None,
    ) -> None:
        self._user_id = user_id
        self._signals = signals
        self._analyses = analyses
        self._trading = trading
        self._analysis = analysis
        self._sequences = sequences
        self._windows = windows
        self._ticker = ticker
        self._last_price = last_price
        self._risk = risk
        self._limit = asyncio.Semaphore(max_concurrent)
        self._busy: set[tuple[UUID, str]] = set()
        self._watching: set[tuple[UUID, str]] = set()
        self._last_candle: dict[tuple[UUID, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.signals_created = 0
        self.analyses = 0
        self.reanalyses = 0
        self.analysis_failures = 0
        self.decisions_rejected = 0

    # ------------------------------------------------------------ state
    def mark_busy(self, trader_id: UUID, symbol: str, *, watching: bool = False) -> None:
        """A position (or, with ``watching``, a watched signal) exists on the symbol."""
        self._busy.add((trader_id, symbol))
        if watching:
            self._watching.add((trader_id, symbol))

    def release(self, trader_id: UUID, symbol: str) -> None:
        self._busy.discard((trader_id, symbol))
        self._watching.discard((trader_id, symbol))

    @property
    def watching_count(self) -> int:
        """Signals currently watched."""
        return len(self._watching)

    def _settle(self, trader_id: UUID, symbol: str, outcome: str) -> None:
        if outcome == "watching":
            self._watching.add((trader_id, symbol))
        else:
            self._watching.discard((trader_id, symbol))
            if outcome != "position_open":
                self._busy.discard((trader_id, symbol))

    async def drain(self) -> None:
        """Wait for every in-flight signal to finish (shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------ matches
    async def on_match(self, trader: TraderConfig, symbol: str, market_time_ms: int,
                       trace: EntryTrace | None = None) -> None:
        """Called by the screener for each matching symbol; returns at once.

        ``trace`` (optional) is marked at the signal, the analysis and the entry fill.
        """
        key = (trader.id, symbol)
        if key in self._busy:
            return
        if self._risk is not None and not self._risk.allows_entries(trader.id):
            return  # REDUCING or HALTED: no new entries, so no new signals
        candle = market_time_ms // INTERVAL_MS.get(trader.timeframes[0], 60_000)
        if self._last_candle.get(key) == candle:
            return
        self._last_candle[key] = candle
        self._busy.add(key)
        task = asyncio.create_task(self._guarded(self._new_signal(trader, symbol, market_time_ms, trace)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coro: Any) -> None:
        async with self._limit:
            try:
                await coro
            except Exception:
                log.exception("signal_pipeline_error")

    async def _new_signal(self, trader: TraderConfig, symbol: str, market_time_ms: int,
                          trace: EntryTrace | None = None) -> None:
        log_ = log.bind(user_id=str(self._user_id), trader_id=str(trader.id), symbol=symbol)
        price = self._last_price(symbol)
        if price is None:
            self.release(trader.id, symbol)
            log_.warning("signal_without_price")
            return
        signal_id = await self._signals.create(trader.id, self._user_id, symbol, market_time_ms, price)
        self.signals_created += 1
        log_.info("signal_created", signal_id=str(signal_id), price=str(price))
        if trace is not None:
            trace.mark("signal")
        outcome = await self._analyse_and_act(trader, symbol, signal_id, market_time_ms, None, trace)
        self._settle(trader.id, symbol, outcome)

    # ------------------------------------------------------------ re-analysis
    async def reanalyse(self, trader: TraderConfig, market_time_ms: int) -> None:
        """Re-analyse the trader's open positions and watched signals.

        Args:
            market_time_ms: exchange time of the re-analysis (the close of the
                candle that fired it, or the newest kline for fixed intervals), ms UTC.
        """
        if self._risk is not None and not self._risk.allows_analysis(trader.id):
            return  # HALTED: nothing the analysis decides runs
        for position in await self._trading.open_positions(self._user_id):
            if position.trader_id == trader.id:
                self.reanalyses += 1
                await self._guarded(self._analyse_and_act(trader, position.symbol, position.signal_id, market_time_ms, position))
        for signal in await self._signals.watching(self._user_id):
            if signal.trader_id == trader.id:
                await self._guarded(self._reanalyse_watching(trader, signal, market_time_ms))

    async def _reanalyse_watching(self, trader: TraderConfig, signal: SignalRecord, market_time_ms: int) -> None:
        too_old = signal.market_time_ms and market_time_ms - signal.market_time_ms >= MAX_WATCH_AGE_MS
        if too_old or await self._analyses.count_for_signal(signal.id) >= MAX_WATCH_ANALYSES:
            await self._signals.close(signal.id, "watch_expired", self._last_price(signal.symbol))
            self._settle(trader.id, signal.symbol, "closed")
            return
        self.reanalyses += 1
        outcome = await self._analyse_and_act(trader, signal.symbol, signal.id, market_time_ms, None)
        self._settle(trader.id, signal.symbol, outcome)

    # ------------------------------------------------------------ core
    async def _analyse_and_act(
        self, trader: TraderConfig, symbol: str, signal_id: UUID, market_time_ms: int, position: PositionRecord | None,
        trace: EntryTrace | None = None,
    ) -> str:
        """Returns the signal's resulting state: ``position_open``, ``watching`` or ``closed``."""
        log_ = log.bind(user_id=str(self._user_id), trader_id=str(trader.id), symbol=symbol, signal_id=str(signal_id))
        windows = {tf: self._windows(symbol, tf) for tf in trader.timeframes}
        klines, values = build_market_payload(windows, trader.timeframes, trader.analysis_candles)
        ticker = self._ticker(symbol) or {"symbol": symbol}
        request = AnalysisRequest(
            trader_id=str(trader.id),
            signal_id=str(signal_id),
            symbol=symbol,
            timestamp_ms=market_time_ms,
            ticker=ticker,
            klines=klines,
            indicators=values,
            ai_instructions=trader.ai_instructions,
            position=OpenPosition(position.side, position.entry_price, position.size, position.stop_loss, position.take_profit)
            if position is not None and position.entry_price is not None
            else None,
            mode=trader.mode,  # type: ignore[arg-type]
            user_id=str(self._user_id),
            model_tier=trader.model_tier,  # type: ignore[arg-type]
        )
        try:
            decision = await self._analysis.analyze(request)
        except AnalysisError as exc:
            self.analysis_failures += 1
            log_.warning("analysis_failed", error=str(exc))
            if position is None:
                await self._signals.close(signal_id, "analysis_failed")
                return "closed"
            return "position_open"
        self.analyses += 1
        # The full input the analysis was given (klines as sent included): a stored analysis can be re-run.
        wire = request.to_wire()
        market_data = {**wire["marketData"], "indicators": values,
                       "request": {k: v for k, v in wire.items() if k not in ("marketData", "traderId", "signalId")}}
        analysis_id = await self._analyses.record(
            signal_id=signal_id,
            trader_id=trader.id,
            user_id=self._user_id,
            position_id=position.id if position else None,
            decision=decision.decision,
            executable=decision.valid,
            rejection_reason=decision.invalid_reason,
            reasoning=decision.reasoning,
            confidence=decision.confidence,
            market_data=market_data,
            metadata=decision.metadata,
        )
        log_.info("analysis_stored", decision=decision.decision, valid=decision.valid, confidence=decision.confidence)
        if trace is not None:
            trace.mark("analysed")
        if not decision.valid:
            self.decisions_rejected += 1
            if position is None:
                await self._signals.close(signal_id, "invalid_decision")
                return "closed"
            return "position_open"
        return await self._act(trader, symbol, signal_id, position, decision, analysis_id, log_, trace)

    async def _act(
        self, trader: TraderConfig, symbol: str, signal_id: UUID, position: PositionRecord | None,
        decision: AnalysisDecision, analysis_id: UUID, log_: Any, trace: EntryTrace | None = None,
    ) -> str:
        """Execute a valid decision as an order sequence; returns the signal's state."""
        kind = decision.decision
        price = self._last_price(symbol)
        if position is None and kind == "no_trade":
            await self._signals.close(signal_id, "no_trade", price)
            return "closed"
        if position is None and kind == "watch":
            await self._signals.set_watching(signal_id, price)
            return "watching"
        result = await self._sequences.execute(trader, decision, symbol=symbol, signal_id=signal_id,
                                               analysis_id=analysis_id, position=position)
        if trace is not None and position is None and result.status == "done" and result.position is not None:
            trace.filled()  # the entry's fill is committed
        if result.status == "refused":
            await self._refuse(analysis_id, result.error or "refused", log_)
            if position is None:
                reason = "nothing_to_close" if result.needs_position else "risk_denied"
                await self._signals.close(signal_id, reason, price)
                return "closed"
            return "position_open"
        if result.status == "failed":
            log_.warning("decision_failed", decision=kind, error=result.error)
            if result.position is None and position is None:
                await self._refuse(analysis_id, result.error or "failed", log_)
                await self._signals.close(signal_id, "risk_denied", price)
                return "closed"
        return "position_open" if result.position is not None else "closed"

    async def _refuse(self, analysis_id: UUID, reason: str, log_: Any) -> None:
        self.decisions_rejected += 1
        await self._analyses.reject(analysis_id, reason)
        log_.info("decision_refused", reason=reason)
