"""Stage timings of entries and exits, kept in memory and logged per sample.

Entry path, for a candle-close trader (``1m_close``), each mark a
``time.perf_counter()`` reading in this process:

* ``arrived``: the symbol's closed kline was applied to the store (the same
  event-loop turn that read it from the WebSocket);
* ``screen_start`` / ``screen_end``: the trader's sandbox batch ran (the tick
  starts once every symbol of the trader closed, or ``CLOSE_GRACE_S`` after
  the first did);
* ``signal``: the ``signals`` row is committed;
* ``analysed``: the analysis answered and its result is committed;
* ``filled``: the entry's fill is committed.

Stages reported (ms): ``wait`` (arrived -> screen_start), ``screen``,
``signal``, ``analysis``, ``execution``; ``total`` = arrived -> filled.
Fixed-interval ticks have no closing kline; their entries are not sampled.

Exit path: from the price update that crosses a stop-loss or take-profit
(``PositionMonitor.on_price``, the store's update path) to the close
committed, ``kind`` being ``stop_loss`` or ``take_profit``.

Percentiles are over the newest ``keep`` samples of each series (nearest-rank).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

__all__ = ["ENTRY_STAGES", "EntryTrace", "LatencyBook", "TickTiming"]

log = structlog.get_logger(__name__)

ENTRY_STAGES = ("wait", "screen", "signal", "analysis", "execution", "total")
_MARKS = ("arrived", "screen_start", "screen_end", "signal", "analysed", "filled")


@dataclass(frozen=True, slots=True)
class TickTiming:
    """When a screening tick's sandbox batch started and ended (``perf_counter`` seconds)."""

    started: float
    ended: float


@dataclass(slots=True)
class EntryTrace:
    """Marks of one match on its way to a fill (``perf_counter`` seconds); see the module doc."""

    book: LatencyBook
    trader_id: str
    symbol: str
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        """Record ``name`` (one of ``signal``, ``analysed``, ``filled``) as now."""
        self.marks[name] = time.perf_counter()

    def stages_ms(self) -> dict[str, float] | None:
        """Stage durations in ms, or None while a mark is missing."""
        if any(m not in self.marks for m in _MARKS):
            return None
        m = self.marks
        pairs = {"wait": ("arrived", "screen_start"), "screen": ("screen_start", "screen_end"),
                 "signal": ("screen_end", "signal"), "analysis": ("signal", "analysed"),
                 "execution": ("analysed", "filled"), "total": ("arrived", "filled")}
        return {stage: (m[b] - m[a]) * 1000 for stage, (a, b) in pairs.items()}

    def filled(self) -> None:
        """The entry's fill is committed: record the sample in the book and log it."""
        self.mark("filled")
        self.book.record_entry(self)


def percentile(samples: Iterable[float], q: float) -> float | None:
    """Nearest-rank ``q``-th percentile (0 < q <= 100) of ``samples``; None when empty."""
    ordered = sorted(samples)
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


class LatencyBook:
    """Arrival times of closed klines and the latency samples of entries and exits.

    Args:
        keep: samples kept per series for the percentiles.
    """

    def __init__(self, keep: int = 2048) -> None:
        self._arrivals: dict[tuple[str, str], tuple[int, float]] = {}
        self._entries: dict[str, deque[float]] = {s: deque(maxlen=keep) for s in ENTRY_STAGES}
        self._exits: dict[str, deque[float]] = {"stop_loss": deque(maxlen=keep), "take_profit": deque(maxlen=keep)}

    # ------------------------------------------------------------ entry path
    def on_kline_closed(self, symbol: str, interval: str, open_time_ms: int) -> None:
        """Store close listener: remember when the closed candle ``open_time_ms`` arrived."""
        self._arrivals[(symbol, interval)] = (open_time_ms, time.perf_counter())

    def entry(self, trader_id: str, symbol: str, interval: str, open_time_ms: int, tick: TickTiming) -> EntryTrace | None:
        """A trace for a match of a candle-close tick, or None when that candle's arrival is unknown."""
        arrival = self._arrivals.get((symbol, interval))
        if arrival is None or arrival[0] != open_time_ms:
            return None
        return EntryTrace(self, trader_id, symbol, {"arrived": arrival[1], "screen_start": tick.started,
                                                    "screen_end": tick.ended})

    def record_entry(self, trace: EntryTrace) -> None:
        stages = trace.stages_ms()
        if stages is None:
            return
        for stage, ms in stages.items():
            self._entries[stage].append(ms)
        log.info("entry_latency", trader_id=trace.trader_id, symbol=trace.symbol,
                 **{f"{k}_ms": round(v, 3) for k, v in stages.items()})

    # ------------------------------------------------------------ exit path
    def record_exit(self, trader_id: str, symbol: str, kind: str, started: float) -> None:
        """A ``kind`` exit crossed at ``started`` (``perf_counter``) is committed now."""
        ms = (time.perf_counter() - started) * 1000
        self._exits.setdefault(kind, deque(maxlen=self._entries["total"].maxlen)).append(ms)
        log.info("exit_latency", trader_id=trader_id, symbol=symbol, kind=kind, total_ms=round(ms, 3))

    # ------------------------------------------------------------ reading
    def gauges(self) -> dict[str, float]:
        """p50/p99 in ms of every series with samples, for ``/metrics``:
        ``latency_entry_<stage>_p50_ms``, ``latency_exit_<kind>_p99_ms``, ..."""
        out: dict[str, float] = {}
        series = {**{f"entry_{s}": v for s, v in self._entries.items()},
                  **{f"exit_{k}": v for k, v in self._exits.items()}}
        for name, samples in series.items():
            for q in (50, 99):
                value = percentile(samples, q)
                if value is not None:
                    out[f"latency_{name}_p{q}_ms"] = round(value, 3)
        return out
