"""Validation before save: compile with the production policy, run on real klines in a worker.

:func:`validate_filter` (and ``python -m sandbox check FILE``) compiles the
filter exactly as :meth:`SandboxPool.load` does, then loads the newest real
1m klines of a set of symbols from a replay directory, builds every interval
the filter names (string literals such as ``"1h"`` in the code, or the
``intervals`` given) by aggregation, writes them into temporary shared-memory
segments (``closed_only``: every window ends at a closed candle) and runs one
batch in a real, fully isolated worker.

:func:`check_filters` (``python -m sandbox check FILE [FILE ...] --ticks N``)
checks a set of filters the way a machine runs them: ONE worker, the filters
in the order given, each on every tick, for N consecutive 1m closes of the
replay ending at its newest data (tick N is what a single check sees; what a
tick's windows hold: ``sandbox._replay_ticks``). All filters run on the same
symbols; the market holds the union of their intervals and each filter gets
its own. :func:`validate_filter` is that run with one filter and one tick.

Outcomes of one tick: ``match`` / ``no_match`` (the filter returned a bool for
every symbol, at least one / no ``True``), ``error`` (a symbol raised or
returned a non-bool, module code raised, worker crash, no worker available),
``timeout``, ``memory``. Before any tick: ``rejected`` (policy or syntax
error: the filter never runs, the others still do) and ``error`` (unsupported
interval, no replay data, replay files unreadable).

Over several ticks a filter's outcome is the worst of its ticks, in the order
of :data:`OUTCOME_ORDER`: ``no_match < match < error < timeout < memory``
(a filter that matched at some tick and never failed is ``match``; a limit,
which costs the machine a worker, ranks above a plain error). ``rejected``
(ranked last) never mixes with the others: a rejected filter has no ticks.
A failing outcome's detail is that of the first tick that had it, prefixed
with ``tick k of N:`` when N > 1.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from ._errors import FilterRejected
from ._policy import compile_filter
from ._replay import (
    INTERVAL_MS,
    ReplayMarket,
    aggregate,
    default_replay_dir,
    interval_ms,
    list_symbols,
    load_1m,
    to_klines,
)
from ._replay_ticks import MAX_TICKS, FilterToRun, TickedReplay, run_ticks
from ._types import BatchResult

__all__ = [
    "DEFAULT_SYMBOLS",
    "OUTCOME_ORDER",
    "CheckResult",
    "CheckRun",
    "check_filters",
    "check_filters_async",
    "referenced_intervals",
    "validate_filter",
    "validate_filter_async",
    "worst_outcome",
]

CheckOutcome = Literal["match", "no_match", "rejected", "error", "timeout", "memory"]
OUTCOME_ORDER: Final[tuple[CheckOutcome, ...]] = ("no_match", "match", "error", "timeout", "memory", "rejected")
"""Outcomes from best to worst (module doc); ``ok`` are the first two."""
_RANK: Final = {o: i for i, o in enumerate(OUTCOME_ORDER)}
DEFAULT_SYMBOLS: Final = (
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "ADAUSDT", "XRPUSDT", "DOGEUSDT", "DOTUSDT", "LTCUSDT", "LINKUSDT",
    "BCHUSDT", "SOLUSDT", "MATICUSDT", "ETCUSDT", "TRXUSDT", "EOSUSDT", "XLMUSDT", "AVAXUSDT", "ATOMUSDT",
    "UNIUSDT", "FILUSDT",
)  # fmt: skip
"""Symbols a check runs on by default (those present in the replay directory, up to 20)."""
_MAX_DAYS: Final = 60


def _dumps(obj: object) -> str:
    """Compact JSON, pure ASCII: filter-controlled text (errors, details) cannot reach a terminal raw."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"))


@dataclass(frozen=True)
class CheckResult:
    """Result of validating one filter (over one or more ticks).

    Attributes:
        outcome: see the module doc (the worst over the ticks).
        detail: reason or summary for the user.
        symbols: number of symbols the filter ran on (0 when it never ran).
        matches: number of True results, summed over the ticks.
        elapsed_ms: wall-clock time in ms: of the whole check for
            :func:`validate_filter`; in a :class:`CheckRun`, the filter's own
            time (compile + its batches over all ticks, as the pool saw them).
        matched: symbols matched at any tick, sorted.
        errors: symbol -> error text (its first), for symbols that raised or returned a non-bool.
        printed: the filter's ``print`` output, every tick's in order (at most 4 KiB per tick).
        per_tick: per tick (oldest first), the sorted matched symbols; empty when it never ran.
    """

    outcome: CheckOutcome
    detail: str
    symbols: int = 0
    matches: int = 0
    elapsed_ms: float = 0.0
    matched: tuple[str, ...] = ()
    errors: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    printed: str = ""
    per_tick: tuple[tuple[str, ...], ...] = ()

    @property
    def ok(self) -> bool:
        """True for ``match`` and ``no_match``: the filter ran cleanly."""
        return self.outcome in ("match", "no_match")

    def to_dict(self, file: str | None = None) -> dict[str, Any]:
        """The CLI's report: file, outcome, detail, symbols, matches, matched (per tick), elapsed_ms."""
        return {
            "file": file,
            "outcome": self.outcome,
            "detail": self.detail,
            "symbols": self.symbols,
            "matches": self.matches,
            "matched": [list(m) for m in self.per_tick],
            "elapsed_ms": round(self.elapsed_ms, 1),
        }

    def to_json(self, file: str | None = None) -> str:
        """:meth:`to_dict` as one line of ASCII JSON (``file`` null when not given)."""
        return _dumps(self.to_dict(file))


@dataclass(frozen=True)
class CheckRun:
    """Result of :func:`check_filters`.

    Attributes:
        results: one per filter, in the order given.
        ticks: number of ticks N.
        symbols: number of symbols the filters ran on (0 when none ran).
        elapsed_ms: wall-clock time of the whole run (loading, worker start, all batches), in ms.
    """

    results: tuple[CheckResult, ...]
    ticks: int
    symbols: int
    elapsed_ms: float

    @property
    def ok(self) -> bool:
        """True when every filter ended ``match`` or ``no_match``."""
        return all(r.ok for r in self.results)

    def summary(self) -> dict[str, Any]:
        """``{"summary": true, "files", "ok", "failed", "ticks", "symbols", "outcomes", "elapsed_ms"}``.

        ``files`` filters checked, ``ok``/``failed`` how many ended cleanly/not,
        ``outcomes`` outcome -> number of filters, ``elapsed_ms`` the whole run.
        """
        ok = sum(r.ok for r in self.results)
        return {
            "summary": True,
            "files": len(self.results),
            "ok": ok,
            "failed": len(self.results) - ok,
            "ticks": self.ticks,
            "symbols": self.symbols,
            "outcomes": dict(Counter(r.outcome for r in self.results)),
            "elapsed_ms": round(self.elapsed_ms, 1),
        }

    def summary_json(self) -> str:
        """:meth:`summary` as one line of ASCII JSON."""
        return _dumps(self.summary())


def worst_outcome(outcomes: Sequence[CheckOutcome]) -> CheckOutcome:
    """The worst of ``outcomes`` in :data:`OUTCOME_ORDER` (``no_match`` for none)."""
    return max(outcomes, key=_RANK.__getitem__, default="no_match")


def referenced_intervals(code: str) -> list[str]:
    """Interval names used as string literals in ``code`` (e.g. ``klines["1h"]``), shortest first."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    found = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in INTERVAL_MS
    }
    return sorted(found, key=interval_ms)


def _pick_symbols(replay_dir: Path, symbols: Sequence[str] | None) -> list[str]:
    available = list_symbols(replay_dir)
    if symbols:
        missing = [s for s in symbols if s not in available]
        if missing:
            raise FileNotFoundError(f"no 1m klines for {', '.join(missing)} under {replay_dir}")
        return list(dict.fromkeys(symbols))
    chosen = [s for s in DEFAULT_SYMBOLS if s in available]
    chosen += [s for s in available if s not in chosen]
    return chosen[: len(DEFAULT_SYMBOLS)]


def load_replay_market(replay_dir: Path, symbols: Sequence[str], intervals: Sequence[str], limit: int) -> ReplayMarket:
    """Segments with the newest ``limit`` candles of every symbol x interval, built from 1m files.

    Raises:
        FileNotFoundError: a symbol without 1m files.
        ValueError: an interval that cannot be built from 1m.
    """
    longest = max(interval_ms(i) for i in intervals)
    minutes = min((limit + 1) * longest // 60_000, _MAX_DAYS * 1440)
    data: dict[str, dict[str, object]] = {}
    day_rows = {}
    for symbol in symbols:
        rows = load_1m(replay_dir, symbol, max(minutes, 1440))
        day_rows[symbol] = rows
        data[symbol] = {i: to_klines(aggregate(rows, i)[-limit:], i) for i in intervals}
    return ReplayMarket.build(data, limit, day_rows)  # type: ignore[arg-type]


def _summarise(result_errors: Mapping[str, str], evaluated: int) -> str:
    symbol, text = next(iter(result_errors.items()))
    return f"{len(result_errors)} of {evaluated} symbols failed; {symbol}: {text}"


def _classify(batch: BatchResult, n: int, intervals: Sequence[str]) -> tuple[CheckOutcome, str]:
    """One tick's outcome and detail."""
    if batch.outcome in ("timeout", "memory"):
        return batch.outcome, batch.detail  # type: ignore[return-value]
    if batch.outcome != "ok":
        return "error", batch.detail or batch.outcome
    if batch.errors:
        return "error", _summarise(batch.errors, batch.evaluated)
    detail = f"matched {len(batch.matches)} of {n} symbols on {', '.join(intervals)}"
    if batch.matches:
        detail += f": {', '.join(sorted(batch.matches)[:10])}"
    return ("match" if batch.matches else "no_match"), detail


def _combine(batches: Sequence[BatchResult], n: int, intervals: Sequence[str], own_ms: float) -> CheckResult:
    """A filter's result over its ticks (worst outcome: module doc)."""
    ticks = [_classify(b, n, intervals) for b in batches]
    outcome = worst_outcome([o for o, _ in ticks])
    per_tick = tuple(tuple(sorted(b.matches)) for b in batches)
    union = sorted({s for m in per_tick for s in m})
    errors: dict[str, str] = {}
    for b in batches:
        for symbol, text in b.errors.items():
            errors.setdefault(symbol, text)
    if len(ticks) == 1:
        detail = ticks[0][1]
    elif outcome in ("match", "no_match"):
        counts = ", ".join(str(len(m)) for m in per_tick)
        detail = f"matched {sum(map(len, per_tick))} times in {len(ticks)} ticks ({counts}) of {n} symbols on "
        detail += ", ".join(intervals) + (f": {', '.join(union[:10])}" if union else "")
    else:
        k = next(i for i, (o, _) in enumerate(ticks, 1) if o == outcome)
        failed = sum(1 for o, _ in ticks if o not in ("match", "no_match"))
        detail = f"tick {k} of {len(ticks)}: {ticks[k - 1][1]} ({failed} of {len(ticks)} ticks failed)"
    return CheckResult(
        outcome,
        detail,
        symbols=n,
        matches=sum(map(len, per_tick)),
        elapsed_ms=own_ms + sum(b.elapsed_ms for b in batches),
        matched=tuple(union),
        errors=MappingProxyType(errors),
        printed="".join(b.printed for b in batches),
        per_tick=per_tick,
    )


async def check_filters_async(
    codes: Sequence[str],
    *,
    replay_dir: str | Path | None = None,
    symbols: Sequence[str] | None = None,
    intervals: Sequence[str] | None = None,
    ticks: int = 1,
    limit: int = 500,
    timeout_s: float = 5.0,
    memory_limit_mb: int = 512,
) -> CheckRun:
    """Check a set of filters like a machine: one worker, in order, every tick (module doc).

    Args:
        codes: the filter sources, in the order they run within a tick.
        replay_dir: replay root (``DIR/spot/1m/<SYMBOL>/...``); default
            ``../shared/data/binance`` beside the repository if it exists.
        symbols: symbols every filter runs on (default: up to 20 of :data:`DEFAULT_SYMBOLS`).
        intervals: timeframes of every filter (default: each filter's interval
            literals, else ``1m``).
        ticks: number of consecutive 1m closes N, 1..``MAX_TICKS`` (1440).
        limit: candles per window.
        timeout_s: the wall-clock limit of one batch, in seconds.
        memory_limit_mb: the worker's memory headroom, in MiB.

    Returns:
        One result per filter; never raises for anything a filter does.

    Raises:
        ValueError: ``ticks`` out of range.
    """
    if not 1 <= ticks <= MAX_TICKS:
        raise ValueError(f"ticks must be 1..{MAX_TICKS}, got {ticks}")
    started = time.monotonic()
    results: list[CheckResult | None] = [None] * len(codes)
    runnable: list[tuple[int, FilterToRun, float]] = []  # (index, filter, compile ms)
    for index, code in enumerate(codes):
        t0 = time.monotonic()
        try:
            compile_filter(code)
        except FilterRejected as exc:
            results[index] = CheckResult("rejected", str(exc), elapsed_ms=_ms(t0))
            continue
        chosen = tuple(dict.fromkeys(intervals or referenced_intervals(code) or ["1m"]))
        unsupported = [i for i in chosen if i not in INTERVAL_MS]
        if unsupported:
            detail = f"unsupported interval(s) {', '.join(unsupported)}"
            results[index] = CheckResult("error", detail, elapsed_ms=_ms(t0))
            continue
        runnable.append((index, FilterToRun(f"check-{index}", code, chosen), _ms(t0)))
    n_symbols = 0
    if runnable:
        failure, replay = await _load_replay(replay_dir, symbols, [f for _, f, _ in runnable], limit, ticks)
        if replay is None:
            for index, _, own in runnable:
                results[index] = CheckResult("error", failure, elapsed_ms=own)
        else:
            try:
                n_symbols = len(replay.symbols)
                batches = await run_ticks(
                    replay, [f for _, f, _ in runnable], timeout_s=timeout_s, memory_limit_mb=memory_limit_mb
                )
            finally:
                replay.close()
            for (index, f, own), per_filter in zip(runnable, batches, strict=True):
                results[index] = _combine(per_filter, n_symbols, f.intervals, own)
    done = tuple(r for r in results if r is not None)
    return CheckRun(done, ticks=ticks, symbols=n_symbols, elapsed_ms=_ms(started))


async def _load_replay(
    replay_dir: str | Path | None,
    symbols: Sequence[str] | None,
    filters: Sequence[FilterToRun],
    limit: int,
    ticks: int,
) -> tuple[str, TickedReplay | None]:
    """The ticked replay of every filter's intervals, or the reason it cannot be loaded."""
    root = Path(replay_dir) if replay_dir is not None else default_replay_dir()
    if root is None or not (root / "spot" / "1m").is_dir():
        return f"no replay data found at {root or '../shared/data/binance'}; pass --replay DIR", None
    wanted = sorted({i for f in filters for i in f.intervals}, key=interval_ms)
    try:
        names = _pick_symbols(root, symbols)
        return "", await asyncio.to_thread(TickedReplay.load, root, names, wanted, limit, ticks)
    except (FileNotFoundError, ValueError, OSError) as exc:
        return f"cannot load replay klines: {exc}", None


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


def check_filters(codes: Sequence[str], **kwargs: object) -> CheckRun:
    """Synchronous :func:`check_filters_async` (runs its own event loop; not from inside one)."""
    return asyncio.run(check_filters_async(codes, **kwargs))  # type: ignore[arg-type]


async def validate_filter_async(
    code: str,
    *,
    replay_dir: str | Path | None = None,
    symbols: Sequence[str] | None = None,
    intervals: Sequence[str] | None = None,
    limit: int = 500,
    timeout_s: float = 5.0,
    memory_limit_mb: int = 512,
) -> CheckResult:
    """Compile ``code`` with the production policy and run it once on real klines in a worker.

    Args:
        code: the filter source.
        replay_dir: replay root (``DIR/spot/1m/<SYMBOL>/...``); default
            ``../shared/data/binance`` beside the repository if it exists.
        symbols: symbols to run on (default: up to 20 of :data:`DEFAULT_SYMBOLS`).
        intervals: the trader's timeframes (default: the interval literals in the code, else ``1m``).
        limit: candles per window.
        timeout_s: the batch's wall-clock limit.
        memory_limit_mb: the worker's memory headroom.

    Returns:
        The check result (``elapsed_ms``: the whole check); never raises for anything the filter does.
    """
    run = await check_filters_async(
        [code], replay_dir=replay_dir, symbols=symbols, intervals=intervals, ticks=1, limit=limit,
        timeout_s=timeout_s, memory_limit_mb=memory_limit_mb,
    )  # fmt: skip
    return dataclasses.replace(run.results[0], elapsed_ms=run.elapsed_ms)


def validate_filter(code: str, **kwargs: object) -> CheckResult:
    """Synchronous :func:`validate_filter_async` (runs its own event loop; not from inside one)."""
    return asyncio.run(validate_filter_async(code, **kwargs))  # type: ignore[arg-type]
