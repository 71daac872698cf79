"""Replayed 1m closes, ticked one after another, with filters run on each the way a machine runs them.

:class:`TickedReplay` loads the 1m files of a set of symbols once, builds every
interval from them (``sandbox._replay.aggregate``) and writes the market as of
one replay minute into shared-memory segments (a :class:`ReplayMarket`).

Ticks: for ``ticks = N``, tick ``k`` (1..N) is the close of the 1m candle that
opened at ``end - (N - k) * 60_000`` ms, where ``end`` is the open time of the
newest 1m candle of any of the symbols: the N consecutive 1m closes ending at
the newest replay data, so tick N sees what a single check sees. As of tick
``k`` (1m candle opening at ``M``), each interval's window holds the newest
``limit`` candles that are closed by then, i.e. whose ``open_time +
interval_ms <= M + 60_000`` (a 1h candle still forming at ``M`` is left out,
as ``closed_only`` leaves it out on a machine); the 24 h ticker is built from
the last 1440 1m candles up to ``M``. A symbol without a 1m candle at ``M``
(a gap, or data ending earlier) keeps its newest candles before ``M``.
With replay files of whole days (as in ``../shared/data/binance``) tick N's
windows equal those of ``sandbox._check.load_replay_market`` for 1m..1d; for
3d and 1w that helper keeps the still-forming newest candle (labelled closed),
which a machine's ``closed_only`` tick leaves out, and so does this module.

:func:`run_ticks` runs filters over the ticks in ONE worker of ONE
:class:`SandboxPool` (``workers=1``): tick after tick, every filter in the
given order, ``closed_only=True``, ``tick_id = M // 1000`` (seconds, as the
machine's close ticks; distinct per tick, shared by the filters of a tick, so
they share the worker's per-tick helper cache exactly as on a machine).
Between ticks the segments are rewritten in place (``KlineSegment.load``), so
the worker stays attached. A worker killed by a limit is replaced by the pool
and the next batch waits for the replacement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from ._errors import SandboxUnavailable
from ._pool import SandboxPool
from ._replay import ReplayMarket, _ticker_values, aggregate, interval_ms, load_1m, to_klines
from ._segment import TICKER_FIELDS
from ._types import BatchResult

__all__ = ["MAX_TICKS", "FilterToRun", "TickedReplay", "run_ticks"]

_MINUTE: Final = 60_000
_DAY_MINUTES: Final = 1440
MAX_DAYS: Final = 60
"""At most this many days of 1m candles (plus the extra ticks) are loaded per symbol."""
MAX_TICKS: Final = 1440
"""At most one day of consecutive 1m closes."""
_START_TIMEOUT_S: Final = 15.0


@dataclass(frozen=True)
class FilterToRun:
    """One filter of a set, as :func:`run_ticks` runs it.

    Attributes:
        name: the pool's filter id (unique within the set).
        code: the filter source (already accepted by the policy).
        intervals: the trader's timeframes (each must be in the replay's intervals).
    """

    name: str
    code: str
    intervals: tuple[str, ...]


class TickedReplay:
    """Replay data of ``symbols`` x ``intervals`` that can be set to any of its ``ticks`` 1m closes.

    Build with :meth:`load`; close with :meth:`close` (unlinks the segments).

    Attributes:
        market: the segments the workers attach to (holding tick 1 after :meth:`load`);
            slots follow the order of ``symbols``.
        minutes: open times (ms) of the 1m candles whose closes are ticks 1..N, oldest first.
        limit: candles per window.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        rows_1m: dict[str, np.ndarray],
        candles: dict[str, dict[str, np.ndarray]],
        minutes: list[int],
        limit: int,
    ) -> None:
        self._rows = rows_1m
        self._candles = candles
        self._ends = {
            s: {i: c[:, 0] + interval_ms(i) for i, c in per.items()} for s, per in candles.items()
        }  # close boundary (ms) of every candle
        self.minutes = minutes
        self.limit = limit
        self.market = ReplayMarket.build(
            {s: self._windows(s, minutes[0]) for s in symbols}, limit, {s: rows_1m[s] for s in symbols}
        )
        try:
            self.set_tick(1)
        except BaseException:
            self.market.close()
            raise

    @classmethod
    def load(
        cls, replay_dir: Path, symbols: Sequence[str], intervals: Sequence[str], limit: int, ticks: int
    ) -> TickedReplay:
        """Read the 1m files and build ``intervals`` for ``ticks`` consecutive 1m closes.

        Args:
            replay_dir: replay root (``DIR/spot/1m/<SYMBOL>/...``).
            symbols: the symbols, in slot order.
            intervals: intervals to build (``INTERVAL_MS`` names).
            limit: candles per window (>= 2).
            ticks: number of consecutive 1m closes, 1..:data:`MAX_TICKS`.

        Raises:
            FileNotFoundError: a symbol without 1m files.
            ValueError: an interval that cannot be built from 1m, or a bad ``ticks``.
        """
        if not 1 <= ticks <= MAX_TICKS:
            raise ValueError(f"ticks must be 1..{MAX_TICKS}, got {ticks}")
        longest = max(interval_ms(i) for i in intervals)
        minutes = min((limit + 1) * longest // _MINUTE, MAX_DAYS * _DAY_MINUTES) + ticks - 1
        rows = {s: load_1m(replay_dir, s, max(minutes, _DAY_MINUTES + ticks - 1)) for s in symbols}
        end = int(max(r[-1, 0] for r in rows.values()))
        candles = {s: {i: to_klines(aggregate(r, i), i) for i in intervals} for s, r in rows.items()}
        tick_minutes = [end - (ticks - k) * _MINUTE for k in range(1, ticks + 1)]
        return cls(symbols, rows, candles, tick_minutes, limit)

    @property
    def symbols(self) -> list[tuple[str, int]]:
        """``(symbol, slot)`` pairs, in slot order."""
        return self.market.symbols

    @property
    def ticks(self) -> int:
        """Number of ticks N."""
        return len(self.minutes)

    def tick_id(self, k: int) -> int:
        """The batch ``tick_id`` of tick ``k`` (1..N): the 1m candle's open time in seconds."""
        return self.minutes[k - 1] // 1000

    def set_tick(self, k: int) -> None:
        """Rewrite every window and ticker to the market as of tick ``k`` (1..N)."""
        minute = self.minutes[k - 1]
        tickers = self.market.ticker_segment
        for symbol, slot in self.market.symbols:
            for interval, rows in self._windows(symbol, minute).items():
                self.market.kline_segment(interval).load(slot, rows, last_closed=True)
            day = self._day(symbol, minute)
            tickers.write(slot, _ticker_values(day) if day.shape[0] else (math.nan,) * len(TICKER_FIELDS))

    def close(self) -> None:
        """Unlink the segments."""
        self.market.close()

    def _windows(self, symbol: str, minute: int) -> dict[str, np.ndarray]:
        """Interval -> the newest ``limit`` candles ``(n, 11)`` closed by the close of the 1m candle at ``minute``."""
        out = {}
        for interval in self._candles[symbol]:
            n = int(np.searchsorted(self._ends[symbol][interval], minute + _MINUTE, side="right"))
            out[interval] = self._candles[symbol][interval][max(0, n - self.limit) : n]
        return out

    def _day(self, symbol: str, minute: int) -> np.ndarray:
        rows = self._rows[symbol]
        n = int(np.searchsorted(rows[:, 0], minute, side="right"))
        return rows[max(0, n - _DAY_MINUTES) : n]


async def run_ticks(
    replay: TickedReplay,
    filters: Sequence[FilterToRun],
    *,
    timeout_s: float = 5.0,
    memory_limit_mb: int = 512,
) -> list[list[BatchResult]]:
    """Run ``filters`` on every tick of ``replay`` in one worker (see module doc).

    Args:
        replay: the market; left at its last tick afterwards.
        filters: filters in the order they run within a tick.
        timeout_s: wall-clock limit of one batch, in seconds.
        memory_limit_mb: the worker's memory headroom, in MiB.

    Returns:
        ``results[f][k - 1]``: filter ``f``'s batch at tick ``k``. When the pool
        cannot start, or no worker becomes free, the batch is an ``error`` with
        the reason; nothing here raises for what a filter does.
    """
    results: list[list[BatchResult]] = [[] for _ in filters]
    if not filters:
        return results
    pool = SandboxPool(
        replay.market.spec,
        workers=1,
        batch_timeout_s=timeout_s,
        memory_limit_mb=memory_limit_mb,
        start_timeout_s=_START_TIMEOUT_S,
        acquire_timeout_s=_START_TIMEOUT_S + timeout_s,  # a killed worker's replacement must start first
    )
    try:
        await pool.start()
    except SandboxUnavailable as exc:
        failed = BatchResult("error", detail=f"sandbox unavailable: {exc}")
        return [[failed] * replay.ticks for _ in filters]
    try:
        for f in filters:
            await pool.load(f.name, f.code)
        for k in range(1, replay.ticks + 1):
            if k > 1:
                replay.set_tick(k)
            for f, out in zip(filters, results, strict=True):
                try:
                    batch = await pool.evaluate(
                        f.name, replay.symbols, f.intervals, closed_only=True, tick_id=replay.tick_id(k),
                        capture_print=True,
                    )  # fmt: skip
                except SandboxUnavailable as exc:
                    batch = BatchResult("error", detail=f"sandbox unavailable: {exc}")
                out.append(batch)
    finally:
        await pool.stop()
    return results
