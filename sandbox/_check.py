"""Validation before save: compile with the production policy, run on real klines in a worker.

:func:`validate_filter` (and ``python -m sandbox check FILE``) compiles the
filter exactly as :meth:`SandboxPool.load` does, then loads the newest real
1m klines of a set of symbols from a replay directory, builds every interval
the filter names (string literals such as ``"1h"`` in the code, or the
``intervals`` given) by aggregation, writes them into temporary shared-memory
segments (``closed_only``: every window ends at a closed candle) and runs one
batch in a real, fully isolated worker.

Outcomes: ``match`` / ``no_match`` (the filter returned a bool for every
symbol, at least one / no ``True``), ``rejected`` (policy or syntax error),
``error`` (a symbol raised or returned a non-bool, module code raised, no
replay data, worker crash), ``timeout``, ``memory``.
"""

from __future__ import annotations

import ast
import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

import orjson

from ._errors import FilterRejected
from ._policy import compile_filter
from ._pool import SandboxPool
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

__all__ = ["CheckResult", "DEFAULT_SYMBOLS", "referenced_intervals", "validate_filter", "validate_filter_async"]

CheckOutcome = Literal["match", "no_match", "rejected", "error", "timeout", "memory"]
DEFAULT_SYMBOLS: Final = (
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "ADAUSDT", "XRPUSDT", "DOGEUSDT", "DOTUSDT", "LTCUSDT", "LINKUSDT",
    "BCHUSDT", "SOLUSDT", "MATICUSDT", "ETCUSDT", "TRXUSDT", "EOSUSDT", "XLMUSDT", "AVAXUSDT", "ATOMUSDT",
    "UNIUSDT", "FILUSDT",
)  # fmt: skip
"""Symbols a check runs on by default (those present in the replay directory, up to 20)."""
_MAX_DAYS: Final = 60


@dataclass(frozen=True)
class CheckResult:
    """Result of validating one filter.

    Attributes:
        outcome: see the module doc.
        detail: reason or summary for the user.
        symbols: symbols the filter ran on.
        matches: symbols it returned True for.
        elapsed_ms: wall-clock time of the whole check, in ms.
        matched: the matching symbols.
        errors: symbol -> error text, for symbols that raised or returned a non-bool.
        printed: the filter's ``print`` output (at most 4 KiB).
    """

    outcome: CheckOutcome
    detail: str
    symbols: int = 0
    matches: int = 0
    elapsed_ms: float = 0.0
    matched: tuple[str, ...] = ()
    errors: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    printed: str = ""

    @property
    def ok(self) -> bool:
        """True for ``match`` and ``no_match``: the filter ran cleanly."""
        return self.outcome in ("match", "no_match")

    def to_json(self) -> str:
        """The CLI's one-line JSON: outcome, detail, symbols, matches, elapsed_ms."""
        return orjson.dumps(
            {
                "outcome": self.outcome,
                "detail": self.detail,
                "symbols": self.symbols,
                "matches": self.matches,
                "elapsed_ms": round(self.elapsed_ms, 1),
            }
        ).decode()


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
        The check result; never raises for anything the filter does.
    """
    started = time.monotonic()

    def elapsed() -> float:
        return (time.monotonic() - started) * 1000

    try:
        compile_filter(code)
    except FilterRejected as exc:
        return CheckResult("rejected", str(exc), elapsed_ms=elapsed())
    chosen_intervals = list(dict.fromkeys(intervals or referenced_intervals(code) or ["1m"]))
    unsupported = [i for i in chosen_intervals if i not in INTERVAL_MS]
    if unsupported:
        return CheckResult("error", f"unsupported interval(s) {', '.join(unsupported)}", elapsed_ms=elapsed())
    root = Path(replay_dir) if replay_dir is not None else default_replay_dir()
    if root is None or not (root / "spot" / "1m").is_dir():
        return CheckResult(
            "error",
            f"no replay data found at {root or '../shared/data/binance'}; pass --replay DIR",
            elapsed_ms=elapsed(),
        )
    try:
        names = _pick_symbols(root, symbols)
        market = await asyncio.to_thread(load_replay_market, root, names, chosen_intervals, limit)
    except (FileNotFoundError, ValueError, OSError) as exc:
        return CheckResult("error", f"cannot load replay klines: {exc}", elapsed_ms=elapsed())
    try:
        async with SandboxPool(
            market.spec, workers=1, batch_timeout_s=timeout_s, memory_limit_mb=memory_limit_mb
        ) as pool:
            await pool.load("check", code)
            batch = await pool.evaluate(
                "check", market.symbols, chosen_intervals, closed_only=True, tick_id=1, capture_print=True
            )
    finally:
        market.close()
    n = len(market.symbols)
    common = {"symbols": n, "matches": len(batch.matches), "matched": tuple(sorted(batch.matches)),
              "errors": batch.errors, "printed": batch.printed}  # fmt: skip
    if batch.outcome in ("timeout", "memory"):
        return CheckResult(batch.outcome, batch.detail, elapsed_ms=elapsed(), **common)  # type: ignore[arg-type]
    if batch.outcome != "ok":
        return CheckResult("error", batch.detail or batch.outcome, elapsed_ms=elapsed(), **common)  # type: ignore[arg-type]
    if batch.errors:
        return CheckResult("error", _summarise(batch.errors, batch.evaluated), elapsed_ms=elapsed(), **common)  # type: ignore[arg-type]
    outcome: CheckOutcome = "match" if batch.matches else "no_match"
    detail = f"matched {len(batch.matches)} of {n} symbols on {', '.join(chosen_intervals)}"
    if batch.matches:
        detail += f": {', '.join(sorted(batch.matches)[:10])}"
    return CheckResult(outcome, detail, elapsed_ms=elapsed(), **common)  # type: ignore[arg-type]


def validate_filter(code: str, **kwargs: object) -> CheckResult:
    """Synchronous :func:`validate_filter_async` (runs its own event loop; not from inside one)."""
    return asyncio.run(validate_filter_async(code, **kwargs))  # type: ignore[arg-type]
