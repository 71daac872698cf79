"""One screening tick = one sandbox batch for one trader.

A trader's whole symbol list goes to the sandbox in one round trip. A tick that
starts while the trader's previous one is still running is skipped and counted
(``overruns``), never queued. Outcomes that hit a sandbox limit (timeout,
memory, crash) or where every symbol errored count as failures; three failed
ticks in a row put the trader in ``error`` with the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from machine.latency import TickTiming
from machine.traders import TraderConfig
from sandbox import BatchResult, SandboxPool, SandboxUnavailable, UnknownFilter

__all__ = ["Screener", "TraderRuntime"]

log = structlog.get_logger(__name__)

MAX_CONSECUTIVE_FAILURES = 3
_LIMIT_OUTCOMES = frozenset({"timeout", "memory", "crashed"})


@dataclass
class TraderRuntime:
    """Mutable run state of one loaded trader."""

    config: TraderConfig
    symbols: list[tuple[str, int]]          # (symbol, store slot)
    filter_id: str
    running: bool = False
    failures: int = 0
    ticks: int = 0
    overruns: int = 0
    matches: int = 0
    symbol_errors: int = 0
    checked: int = 0
    last_tick_ms: float = 0.0
    last_outcome: str = ""
    # per wall-clock minute: [minute, checked, matched]; the last hour is enough for /metrics
    history: deque[list[int]] = field(default_factory=lambda: deque(maxlen=61))

    def record(self, checked: int, matched: int) -> None:
        minute = int(time.time() // 60)
        if self.history and self.history[-1][0] == minute:
            self.history[-1][1] += checked
            self.history[-1][2] += matched
        else:
            self.history.append([minute, checked, matched])

    def last_hour(self) -> tuple[int, int]:
        """(symbols checked, matches) over the last 60 minutes."""
        since = int(time.time() // 60) - 60
        checked = matched = 0
        for minute, n, m in self.history:
            if minute > since:
                checked += n
                matched += m
        return checked, matched


MatchHandler = Callable[[TraderConfig, str, int, TickTiming], Awaitable[None]]
BrokenHandler = Callable[[TraderRuntime, str], Awaitable[None]]


class Screener:
    """Runs ticks and hands matches to the signal pipeline.

    Args:
        sandbox: the worker pool.
        on_match: ``(trader, symbol, market_time_ms, tick)`` for each matching symbol; ``tick``
            says when the batch ran (``machine.latency``).
        on_broken: called once when a trader reaches the failure limit.
        market_time_ms: the exchange's current time (for fixed ticks).
    """

    def __init__(
        self,
        sandbox: SandboxPool,
        on_match: MatchHandler,
        on_broken: BrokenHandler,
        market_time_ms: Callable[[], int],
    ) -> None:
        self._sandbox = sandbox
        self._on_match = on_match
        self._on_broken = on_broken
        self._market_time_ms = market_time_ms
        self.ticks = 0
        self.overruns = 0
        self.unavailable = 0
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self) -> None:
        """Return when no tick is running (shutdown drains ticks before stopping the sandbox)."""
        await self._idle.wait()

    async def tick(self, rt: TraderRuntime, *, closed_only: bool, tick_id: int, market_time_ms: int | None = None) -> BatchResult | None:
        """Evaluate the trader's filter over all its symbols once; None when skipped."""
        if rt.running:
            rt.overruns += 1
            self.overruns += 1
            log.warning("tick_overrun", trader_id=str(rt.config.id), user_id=str(rt.config.user_id))
            return None
        if not rt.symbols:
            return None
        rt.running = True
        self._inflight += 1
        self._idle.clear()
        started = time.perf_counter()
        try:
            result = await self._sandbox.evaluate(
                rt.filter_id, rt.symbols, rt.config.timeframes, closed_only=closed_only, tick_id=tick_id
            )
        except UnknownFilter:
            return None  # unloaded by a reload while this tick was due
        except SandboxUnavailable as exc:
            # The machine's pool is down or saturated: not the trader's fault, so it
            # does not count towards the trader's failure limit.
            self.unavailable += 1
            log.error("sandbox_unavailable", trader_id=str(rt.config.id), error=str(exc))
            return None
        finally:
            rt.running = False
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()
        ended = time.perf_counter()
        rt.last_tick_ms = (ended - started) * 1000
        rt.ticks += 1
        self.ticks += 1
        rt.last_outcome = result.outcome
        rt.checked += result.evaluated
        rt.symbol_errors += len(result.errors)
        rt.record(result.evaluated, len(result.matches))
        failure = self._failure_reason(result)
        if failure:
            rt.failures += 1
            log.warning("tick_failed", trader_id=str(rt.config.id), outcome=result.outcome, detail=failure,
                        consecutive=rt.failures)
            if rt.failures >= MAX_CONSECUTIVE_FAILURES:
                await self._on_broken(rt, f"filter failed {rt.failures} ticks in a row: {failure}")
            return result
        rt.failures = 0
        if result.errors:
            sample_symbol, sample = next(iter(result.errors.items()))
            log.info("filter_symbol_errors", trader_id=str(rt.config.id), errors=len(result.errors),
                     symbol=sample_symbol, error=sample[:300])
        when = market_time_ms if market_time_ms is not None else self._market_time_ms()
        timing = TickTiming(started, ended)
        for symbol in sorted(result.matches):
            rt.matches += 1
            await self._on_match(rt.config, symbol, when, timing)
        return result

    @staticmethod
    def _failure_reason(result: BatchResult) -> str | None:
        if result.outcome in _LIMIT_OUTCOMES or result.outcome == "error":
            return f"{result.outcome}: {result.detail}".strip(": ")
        if result.evaluated and len(result.errors) >= result.evaluated:
            first = next(iter(result.errors.values()))
            return f"every symbol raised an error, e.g. {first}"
        return None
