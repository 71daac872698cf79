"""The replay clock and the loop that turns replay time into stream events.

Clock: ``now = start + (wall time since start) * speed`` in ms; speed 60 runs one
1m candle per wall second. It is the simulator's "now" for REST and streams.

Ticks: every replayed minute M has ``updates_per_minute`` (N) in-progress ticks at
``M + k * 60,000 // (N + 1)`` (k = 1..N; with the default N = 2, at 1/3 and 2/3 of
the minute) and a closing tick at ``M + 60,000``. On each tick, for every replayed
symbol someone listens to:

- ``@kline_1m``: the minute's partial row (x=false), or on the closing tick the
  file row itself (x=true);
- ``@kline_<longer>``: the closed 1m rows of the bucket so far plus the partial
  minute (x=false); on the closing tick of the bucket's last minute, the exact
  aggregate with x=true (also when its last minutes fall in a gap);
- ``@ticker``: the rolling 24h statistics at the tick time.

Minutes without a row (exchange outages, see shared gaps.csv) produce no events.
The event time ``E`` is the tick's replay time. When the loop falls behind the
clock, in-progress ticks are skipped (counted in ``skipped_ticks``); closing ticks
are never skipped, so every x=true kline is delivered.

A symbol alias (:mod:`._aliases`) gets its source's event of the same tick with the
alias name in ``s`` (and ``k.s``): each (source, feed) event is built once per tick,
whatever the number of aliases listening.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import structlog

from ._candles import Accumulator, kline_event, partial_row
from ._history import MarketHistory
from ._intervals import DAY_MS, MINUTE_MS, bucket_end, bucket_start, day_start
from ._ticker import TickerCalculator
from ._ws import StreamHub

_log = structlog.get_logger("exchange_sim.replay")


class ReplayClock:
    """Replay time in ms since the epoch UTC, running ``speed`` times faster than wall time."""

    def __init__(self, start_ms: int, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.start_ms = int(start_ms)
        self.speed = float(speed)
        self._wall_start: float | None = None
        self._frozen: int | None = None

    def start(self) -> None:
        self._wall_start = time.monotonic()

    def freeze(self, at_ms: int) -> None:
        """Stop the clock at ``at_ms`` (end of data)."""
        self._frozen = at_ms

    def now_ms(self) -> int:
        if self._frozen is not None:
            return self._frozen
        if self._wall_start is None:
            return self.start_ms
        return self.start_ms + int((time.monotonic() - self._wall_start) * 1000.0 * self.speed)

    def seconds_until(self, t_ms: int) -> float:
        """Wall seconds until the clock reads ``t_ms`` (<= 0 when already there)."""
        return (t_ms - self.now_ms()) / 1000.0 / self.speed


class Replayer:
    """Emits kline and ticker events for the streams someone listens to.

    Args:
        updates_per_minute: in-progress updates per 1m candle (0 = closing updates only).
        stop_at_end: after the last minute of data, freeze the clock and set ``ended``.
    """

    def __init__(
        self,
        history: MarketHistory,
        tickers: TickerCalculator,
        hub: StreamHub,
        clock: ReplayClock,
        symbols: list[str],
        *,
        updates_per_minute: int = 2,
        stop_at_end: bool = False,
    ) -> None:
        if updates_per_minute < 0:
            raise ValueError("updates_per_minute must be >= 0")
        self._history = history
        self._tickers = tickers
        self._hub = hub
        self._clock = clock
        self._symbols = symbols
        in_progress = {k * MINUTE_MS // (updates_per_minute + 1) for k in range(1, updates_per_minute + 1)}
        self._offsets = [*sorted(o for o in in_progress if 0 < o < MINUTE_MS), MINUTE_MS]
        self._stop_at_end = stop_at_end
        self._buckets: dict[tuple[str, str], _Forming] = {}
        self._names: dict[tuple[str, str], str] = {}
        self.ended = asyncio.Event()
        self.skipped_ticks = 0
        self.ticks = 0

    def _next_tick(self, t: int) -> int:
        """The first tick strictly after ``t``."""
        minute = t - t % MINUTE_MS
        for offset in self._offsets:
            if minute + offset > t:
                return minute + offset
        raise AssertionError("unreachable: the last offset is a whole minute")

    def data_end(self) -> int | None:
        """Close of the last minute of data over all replayed symbols (ms)."""
        ends = [b[1] for b in (self._history.bounds(s) for s in self._symbols) if b is not None]
        return max(ends) + MINUTE_MS if ends else None

    async def run(self) -> None:
        end = self.data_end() if self._stop_at_end else None
        spacing_ms = MINUTE_MS // len(self._offsets)
        t = self._next_tick(self._clock.now_ms())
        while True:
            if end is not None and t > end:
                self._clock.freeze(max(end, self._clock.now_ms()))
                self.ended.set()
                _log.info("replay_ended", at=end)
                return
            delay = self._clock.seconds_until(t)
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            closing = t % MINUTE_MS == 0
            if closing or self._clock.now_ms() - t < spacing_ms:
                try:
                    self.tick(t)
                except Exception:  # one bad tick must not stop the replay
                    _log.exception("tick_failed", t=t)
            else:
                self.skipped_ticks += 1
            t = self._next_tick(t)

    def _name(self, symbol: str, feed: str) -> str:
        key = (symbol, feed)
        name = self._names.get(key)
        if name is None:
            suffix = "ticker" if feed == "ticker" else f"kline_{feed}"
            name = self._names[key] = f"{symbol.lower()}@{suffix}"
        return name

    def _forming(self, symbol: str, interval: str, minute: int) -> _Forming:
        """The forming kline of ``interval`` holding ``minute``, with every closed minute
        before ``minute`` folded in (rebuilt from history when out of step)."""
        start = bucket_start(minute, interval)
        state = self._buckets.get((symbol, interval))
        if state is not None and state.open_time == start and state.next_minute == minute:
            return state
        state = _Forming(start, interval, minute)
        today = max(start, day_start(minute))
        if today > start:
            state.days.add_all(self._history.aggregate_range(symbol, start, today))
        if minute > today:
            state.today.add_all(self._history.aggregate_range(symbol, today, minute))
        self._buckets[(symbol, interval)] = state
        return state

    def tick(self, t: int) -> None:
        """Emit the events of replay time ``t`` (an in-progress or a closing tick)."""
        self.ticks += 1
        closing = t % MINUTE_MS == 0
        minute = t - MINUTE_MS if closing else t - t % MINUTE_MS
        publish = self._hub.publish
        source_of = self._history.source
        events: dict[tuple[str, str], dict[str, Any] | None] = {}  # per (source, feed), this tick
        rows: dict[str, list[float] | None] = {}
        for symbol, feeds in list(self._hub.active.items()):
            source = source_of(symbol)
            if source not in rows:
                raw = self._history.minute_row(source, minute)
                rows[source] = None if raw is None else (list(raw) if closing else partial_row(raw, t - minute))
            row = rows[source]
            for feed in list(feeds):
                key = (source, feed)
                if key in events:
                    event = events[key]
                else:
                    event = events[key] = self._event(source, feed, minute, row, closing, t)
                if event is not None:
                    payload = event if symbol == source else _renamed(event, symbol)
                    publish(self._name(symbol, feed), orjson.dumps(payload))

    def _event(
        self, symbol: str, feed: str, minute: int, row: list[float] | None, closing: bool, t: int
    ) -> dict[str, Any] | None:
        """The payload of ``feed`` (``"ticker"`` or an interval) for ``symbol`` at ``t``, or None."""
        if feed == "ticker":
            if row is None:
                return None
            stats = self._tickers.compute(symbol, t)
            return None if stats is None else stats.event(t)
        if feed == "1m":
            return None if row is None else kline_event(symbol, feed, row, closing, t)
        return self._longer(symbol, feed, minute, row, closing, t)

    def _longer(
        self, symbol: str, interval: str, minute: int, row: list[float] | None, closing: bool, t: int
    ) -> dict[str, Any] | None:
        forming = self._forming(symbol, interval, minute)
        if not closing:
            value = forming.value(row) if row is not None else None
            return None if value is None else kline_event(symbol, interval, value, False, t)
        if row is not None:
            forming.today.add(row)
        bucket_closed = bucket_end(forming.open_time, interval) == t
        value = forming.value(None)
        forming.advance(t)
        if bucket_closed:
            del self._buckets[(symbol, interval)]
        if value is None or (row is None and not bucket_closed):
            return None
        return kline_event(symbol, interval, value, bucket_closed, t)


def _renamed(event: dict[str, Any], symbol: str) -> dict[str, Any]:
    """A kline or ticker payload with ``symbol`` in ``s`` (and in the kline's ``k.s``)."""
    out = dict(event)
    out["s"] = symbol
    kline = event.get("k")
    if isinstance(kline, dict):
        out["k"] = {**kline, "s": symbol}
    return out


class _Forming:
    """A forming kline as the stream keeps it: the completed UTC days of its bucket
    (3d/1w/1M only) and the minutes of the current day, each added in time order, so
    the values equal :meth:`MarketHistory.klines` (daily candles, then minutes) to the bit.
    """

    __slots__ = ("days", "interval", "next_minute", "open_time", "today")

    def __init__(self, open_time: int, interval: str, next_minute: int) -> None:
        self.open_time = open_time
        self.interval = interval
        self.next_minute = next_minute
        self.days = Accumulator(open_time, interval)
        self.today = Accumulator(open_time, interval)

    def value(self, partial: list[float] | None) -> list[float] | None:
        """The kline with the partial current minute (None: without one)."""
        today = self.today.with_row(partial)
        return self.days.with_row(today)

    def advance(self, t: int) -> None:
        """The minute ending at ``t`` is folded in; at 00:00 UTC the day is complete."""
        self.next_minute = t
        if t % DAY_MS == 0 and self.today.row is not None:
            self.days.add(self.today.row)
            self.today = Accumulator(self.open_time, self.interval)
