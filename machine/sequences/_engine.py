"""Running order sequences: record, then take each step, paper and live behind one executor interface.

:meth:`SequenceEngine.execute` plans a decision (``_plan``), writes the sequence and all
its steps (``pending``) before anything is sent, then runs the steps in order: each is
marked ``running`` before it is taken and ``done`` with its result after
(``machine.persistence.SequenceRepository``). A step that fails (a risk denial, no price,
an order error) fails the sequence; later steps are never taken.

**Restarts** (:meth:`SequenceEngine.resume`, at boot, before any timer starts): a
sequence left ``running`` resumes its steps that take risk off (``close``, ``reduce``,
``set_levels``: each is idempotent, a ``close`` of a closed position or a ``reduce``
whose order was booked does nothing, and a pending order is resolved by asking the
executor, never by sending it again); a step that adds risk (``open``, ``increase``)
ends the sequence instead (``failed``: the analysis it came from is stale by then).
So a crash at any step resumes or ends its sequence cleanly, and never sends an order
twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog

from machine.analysis import AnalysisDecision
from machine.execution import ExecutionService, ExecutionError
from machine.persistence import PositionRecord, SequenceRecord, SequenceRepository, StepRecord, TradingRepository
from machine.sequences._plan import MarketView, Refused, plan
from machine.traders import TraderConfig

__all__ = ["SequenceEngine", "SequenceResult"]

log = structlog.get_logger(__name__)

#: Steps that add risk: not resumed after a restart.
_ADDS_RISK = frozenset({"open", "increase"})


@dataclass(frozen=True, slots=True)
class SequenceResult:
    """What a decision came to.

    ``status``: ``empty`` (nothing to do: no_trade, watch), ``refused`` (did not fit the
    state; ``error`` says why, nothing was sent; ``needs_position``: it acts on a position and
    there is none), ``done`` or ``failed`` (``error``: the
    failed step's reason; earlier steps stay done). ``position``: the symbol's position
    after it (None when there is none open).
    """

    status: str
    sequence_id: UUID | None = None
    error: str | None = None
    position: PositionRecord | None = None
    needs_position: bool = False


def _d(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


class SequenceEngine:
    """Plans and runs one user's order sequences (module doc).

    Args:
        user_id: the machine's user.
        sequences, trading: persistence.
        execution: the execution service (open, close, reduce, increase, set_levels).
        market: symbol -> its :class:`MarketView` (last price, rules, taker rate).
        trader: trader id -> its config (None when it is no longer loaded).
    """

    def __init__(
        self, *, user_id: UUID, sequences: SequenceRepository, trading: TradingRepository,
        execution: ExecutionService, market: Callable[[str, str], MarketView],
        trader: Callable[[UUID], TraderConfig | None],
    ) -> None:
        self._user_id = user_id
        self._sequences = sequences
        self._trading = trading
        self._execution = execution
        self._market = market
        self._trader = trader
        self.sequences_run = 0
        self.sequences_failed = 0

    async def execute(
        self, trader: TraderConfig, decision: AnalysisDecision, *, symbol: str, signal_id: UUID,
        analysis_id: UUID | None, position: PositionRecord | None,
    ) -> SequenceResult:
        """Plan ``decision`` against ``position`` (the trader's open position on ``symbol``, or None),
        record the sequence, run it."""
        planned = plan(decision, trader.mode, position, self._market(symbol, trader.mode), uuid.uuid4())
        if isinstance(planned, Refused):
            return SequenceResult("refused", error=planned.reason, position=position,
                                  needs_position=planned.needs_position)
        if not planned:
            return SequenceResult("empty", position=position)
        sequence_id = uuid.uuid4()
        await self._sequences.create(
            sequence_id=sequence_id, user_id=self._user_id, trader_id=trader.id, signal_id=signal_id,
            analysis_id=analysis_id, position_id=position.id if position else None, symbol=symbol,
            decision=decision.decision, steps=[(s.kind, s.params) for s in planned])
        steps = tuple(StepRecord(i, s.kind, "pending", s.params, None) for i, s in enumerate(planned))
        return await self._run(trader, sequence_id, symbol, signal_id, position, steps)

    async def resume(self) -> list[SequenceResult]:
        """Resume or end every sequence a restart interrupted (module doc); call before timers start."""
        results = []
        for record in await self._sequences.running(self._user_id):
            results.append(await self._resume_one(record))
        return results

    async def _resume_one(self, record: SequenceRecord) -> SequenceResult:
        log_ = log.bind(user_id=str(self._user_id), trader_id=str(record.trader_id), symbol=record.symbol,
                        sequence_id=str(record.id))
        remaining = tuple(s for s in record.steps if s.status != "done")
        trader = self._trader(record.trader_id)
        first = remaining[0] if remaining else None
        if first is None:
            await self._sequences.finish_step(record.id, record.steps[-1].step, record.steps[-1].result or {}, last=True)
            return SequenceResult("done", record.id)
        if trader is None:
            why = "its trader is not loaded"
            await self._sequences.fail(record.id, first.step, why)
            log_.warning("sequence_ended", step=first.step, kind=first.kind, reason=why)
            self.sequences_failed += 1
            return SequenceResult("failed", record.id, why)
        position = await self._trading.position(record.position_id) if record.position_id else None
        log_.info("sequence_resumed", step=first.step, kind=first.kind)
        assert record.signal_id is not None
        return await self._run(trader, record.id, record.symbol, record.signal_id, position, remaining, resumed=True)

    async def _settle_written(self, sequence_id: UUID, step: StepRecord, position: PositionRecord | None
                              ) -> PositionRecord | None:
        """A risk-adding step ends at a restart, but an order it already wrote may have reached the
        venue: it is booked when the venue filled it, cancelled when it never saw it; never sent again
        (``ExecutionService.settle_step``; the opening step's intent is resolved at recovery)."""
        trade = await self._trading.step_trade(sequence_id, step.step)
        if trade is None or trade.status != "pending" or step.kind != "increase":
            return position
        try:
            return await self._execution.settle_step(trade) or position
        except ExecutionError as exc:  # the venue could not tell: reconciliation asks again
            log.warning("step_order_unresolved", sequence_id=str(sequence_id), step=step.step, error=str(exc))
            return position

    async def _run(
        self, trader: TraderConfig, sequence_id: UUID, symbol: str, signal_id: UUID,
        position: PositionRecord | None, steps: tuple[StepRecord, ...], *, resumed: bool = False,
    ) -> SequenceResult:
        log_ = log.bind(user_id=str(self._user_id), trader_id=str(trader.id), symbol=symbol,
                        sequence_id=str(sequence_id))
        last = steps[-1].step
        for step in steps:
            if resumed and step.kind in _ADDS_RISK:
                position = await self._settle_written(sequence_id, step, position)
                why = f"interrupted before its {step.kind} step; not resumed after a restart (the analysis is stale)"
                await self._sequences.fail(sequence_id, step.step, why)
                log_.warning("sequence_ended", step=step.step, kind=step.kind, reason=why)
                self.sequences_failed += 1
                return SequenceResult("failed", sequence_id, why, await self._current(position))
            await self._sequences.start_step(sequence_id, step.step)
            try:
                position, result = await self._take(trader, sequence_id, symbol, signal_id, position, step)
            except ExecutionError as exc:
                await self._sequences.fail(sequence_id, step.step, str(exc))
                log_.warning("sequence_failed", step=step.step, kind=step.kind, error=str(exc))
                self.sequences_failed += 1
                return SequenceResult("failed", sequence_id, str(exc), await self._current(position))
            except Exception as exc:
                await self._sequences.fail(sequence_id, step.step, f"{type(exc).__name__}: {exc}")
                self.sequences_failed += 1
                raise
            await self._sequences.finish_step(sequence_id, step.step, result, last=step.step == last)
            log_.info("sequence_step_done", step=step.step, kind=step.kind, **{k: v for k, v in result.items() if v})
        self.sequences_run += 1
        return SequenceResult("done", sequence_id, position=await self._current(position))

    async def _current(self, position: PositionRecord | None) -> PositionRecord | None:
        if position is None:
            return None
        fresh = await self._trading.position(position.id)
        return fresh if fresh is not None and fresh.status == "open" else None

    async def _take(
        self, trader: TraderConfig, sequence_id: UUID, symbol: str, signal_id: UUID,
        position: PositionRecord | None, step: StepRecord,
    ) -> tuple[PositionRecord | None, dict[str, Any]]:
        """Take one step; returns the position after it and the step's result (JSON values)."""
        p = step.params
        if step.kind == "open":
            position_id = UUID(p["position_id"])
            opened = await self._trading.position(position_id)
            if opened is None:
                opened = await self._execution.open(trader, signal_id, symbol, p["side"], stop_loss=_d(p["stop_loss"]),
                                                    take_profit=_d(p["take_profit"]), position_id=position_id)
            return opened, {"position_id": str(opened.id), "side": opened.side, "size": str(opened.size),
                            "entry_price": str(opened.entry_price)}
        if position is None:
            raise _NoPosition("the position this step acts on is gone")
        if step.kind == "close":
            pnl = await self._execution.close(position, p.get("reason", "analysis_close"))
            return None, {"pnl": None if pnl is None else str(pnl[0])}
        if step.kind == "reduce":
            after = await self._execution.reduce(position, sequence_id=sequence_id, step=step.step,
                                                 quantity=Decimal(p["quantity"]))
            return after, {"size": str(after.size), "realized_pnl": str(after.realized_pnl)}
        if step.kind == "increase":
            after = await self._execution.increase(trader, position, sequence_id=sequence_id, step=step.step,
                                                   quantity=_d(p.get("quantity")))
            return after, {"size": str(after.size), "entry_price": str(after.entry_price)}
        if step.kind == "set_levels":
            after = await self._execution.set_levels(position, stop_loss=_d(p.get("stop_loss")),
                                                     take_profit=_d(p.get("take_profit")))
            return after, {"stop_loss": str(after.stop_loss), "take_profit": str(after.take_profit)}
        raise ValueError(f"unknown step kind {step.kind!r}")


class _NoPosition(ExecutionError):
    """The position a step acts on does not exist."""

