"""Trader timers on APScheduler 3.x's ``AsyncIOScheduler``.

* Fixed schedules (``5s``, ``1m``): an ``IntervalTrigger`` job per trader with
  ``max_instances=1`` and ``coalesce=True``: a tick that is still running when
  the next one is due makes APScheduler skip the new one (counted in
  ``skipped``), so ticks never queue up.
* Candle-close schedules (``1h_close``): driven by the market data, not the
  wall clock. The store reports every closed kline; a trader's tick for candle
  ``open_time`` fires once, when the closed kline of that candle has arrived
  for all of the trader's symbols, or ``grace_s`` seconds after the first of
  them arrived (symbols that never report must not stall the others), or as
  soon as a later candle of the same interval closes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["Timers"]

log = structlog.get_logger(__name__)

FixedCallback = Callable[[], Awaitable[None]]
CloseCallback = Callable[[int], Awaitable[None]]


@dataclass
class _CloseSub:
    interval: str
    symbols: frozenset[str]
    callback: CloseCallback
    seen: dict[int, set[str]] = field(default_factory=dict)
    fired_upto: int = -1


class Timers:
    """Owns the scheduler and every trader's timer."""

    def __init__(self, *, close_grace_s: float = 3.0) -> None:
        self._scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self._scheduler.add_listener(self._on_skip, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self._grace = close_grace_s
        self._close: dict[str, _CloseSub] = {}
        self.skipped = 0
        self.close_ticks = 0

    def start(self) -> None:
        if not self._scheduler.running:
            self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._close.clear()

    def add_fixed(self, key: str, seconds: float, callback: FixedCallback) -> None:
        """Run ``callback`` every ``seconds``, on multiples of ``seconds`` since the epoch.

        Aligning the phase makes every trader with the same period fire at the same
        instant, so their screening ticks can share indicator work.
        """
        self.remove(key)
        now = time.time()
        start = datetime.fromtimestamp((int(now // seconds) + 1) * seconds, tz=timezone.utc)
        self._scheduler.add_job(
            callback,
            IntervalTrigger(seconds=seconds, start_date=start, timezone=timezone.utc),
            id=key,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(seconds)),
            replace_existing=True,
        )

    def add_close(self, key: str, interval: str, symbols: frozenset[str], callback: CloseCallback) -> None:
        """Run ``callback(open_time_ms)`` once per closed ``interval`` candle of ``symbols``."""
        self.remove(key)
        self._close[key] = _CloseSub(interval, symbols, callback)

    def remove(self, key: str) -> None:
        self._close.pop(key, None)
        for job in self._scheduler.get_jobs():
            if job.id == key or job.id.startswith(key + ":grace:"):
                job.remove()

    def on_kline_closed(self, symbol: str, interval: str, open_time_ms: int) -> None:
        """Feed from the store: the candle ``open_time_ms`` of ``symbol``/``interval`` closed."""
        for key, sub in self._close.items():
            if sub.interval != interval or symbol not in sub.symbols or open_time_ms <= sub.fired_upto:
                continue
            # A later candle closing means every earlier one is complete: run one tick
            # for the newest of them; older pending candles are skipped, not queued.
            older = [t for t in sub.seen if t < open_time_ms]
            if older:
                self.skipped += len(older) - 1
                self._fire(key, sub, max(older))
            seen = sub.seen.setdefault(open_time_ms, set())
            first = not seen
            seen.add(symbol)
            if len(seen) >= len(sub.symbols):
                self._fire(key, sub, open_time_ms)
            elif first and self._scheduler.running:
                self._scheduler.add_job(
                    self._grace_expired,
                    DateTrigger(run_date=datetime.now(timezone.utc) + timedelta(seconds=self._grace)),
                    args=(key, open_time_ms),
                    id=f"{key}:grace:{open_time_ms}",
                    replace_existing=True,
                    misfire_grace_time=None,
                )

    def _grace_expired(self, key: str, open_time_ms: int) -> None:
        sub = self._close.get(key)
        if sub is not None and open_time_ms in sub.seen:
            self._fire(key, sub, open_time_ms)

    def _fire(self, key: str, sub: _CloseSub, open_time_ms: int) -> None:
        sub.seen.pop(open_time_ms, None)
        if open_time_ms <= sub.fired_upto:
            return
        sub.fired_upto = open_time_ms
        for stale in [t for t in sub.seen if t <= open_time_ms]:
            sub.seen.pop(stale)
        self.close_ticks += 1
        self._scheduler.add_job(sub.callback, args=(open_time_ms,), id=f"{key}:close:{open_time_ms}",
                                misfire_grace_time=None, replace_existing=True)

    def _on_skip(self, event: JobExecutionEvent) -> None:
        self.skipped += 1
        log.warning("tick_skipped", job=event.job_id, reason="previous tick still running")
