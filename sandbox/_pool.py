"""The pool of sandbox worker processes the screener talks to.

One :class:`SandboxPool` per machine. ``evaluate`` sends one trader's whole
symbol list to a free worker in one round trip and waits at most
``batch_timeout_s`` (wall clock) for the reply. A worker that overruns is
killed with SIGKILL and replaced, and the batch reports ``timeout``; a worker
that hits its memory limit reports ``memory`` and is replaced; a worker that
dies or breaks the reply format reports ``crashed`` and is replaced. None of
these raises: the next tick runs normally on the fresh worker. Several
``evaluate`` calls may run at once (one per free worker; the others wait for a
worker, at most ``acquire_timeout_s``).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import structlog

from ._errors import ProtocolError, SandboxUnavailable, UnknownFilter
from ._limits import NOBODY, WorkerLimits
from ._market import CACHE_LIMIT_MB
from ._policy import compile_filter
from ._process import WorkerDied, WorkerProcess
from ._protocol import EXIT_MEMORY, parse_batch_reply
from ._residue import watermark_mb
from ._types import SYMBOL_MAX_CHARS, BatchResult, MarketSpec

__all__ = ["SandboxPool", "MAX_BATCH_SYMBOLS"]

MAX_BATCH_SYMBOLS: Final = 1024
_CPU_RECYCLE_SHARE: Final = 0.8
_RESPAWN_MAX_DELAY_S: Final = 5.0
log = structlog.get_logger("sandbox")


@dataclass(frozen=True, slots=True)
class _Filter:
    source: str
    version: str


class SandboxPool:
    """Worker processes that run filter batches (see module doc and ``sandbox/README.md``).

    Args:
        market: where the workers find klines and tickers.
        workers: number of worker processes (one per core is a good default).
        batch_timeout_s: wall-clock limit of one batch, in seconds.
        memory_limit_mb: address space a worker may use above its baseline, in MiB.
        cpu_limit_s: RLIMIT_CPU of a worker (CPU seconds over its life); the pool
            recycles a worker before it gets there.
        start_timeout_s: how long a worker may take to start.
        acquire_timeout_s: how long ``evaluate`` waits for a free worker
            (default: ``batch_timeout_s``) before raising ``SandboxUnavailable``.
        uid, gid: identity workers drop to when the pool runs as root.
        cache_limit_mb: budget of the helper results a worker keeps for one tick,
            in MiB (``sandbox/README.md``, *Memory*); past it results are computed
            per call.
        memory_watermark_mb: growth of a worker's memory above its ready
            baseline, in MiB, past which it is recycled after the batch that left
            it there (default ``sandbox._residue.watermark_mb``: two ticks' cache
            plus 32 MiB, at most half of ``memory_limit_mb``).
    """

    def __init__(
        self,
        market: MarketSpec,
        *,
        workers: int = 2,
        batch_timeout_s: float = 5.0,
        memory_limit_mb: int = 512,
        cpu_limit_s: int = 3600,
        start_timeout_s: float = 15.0,
        acquire_timeout_s: float | None = None,
        uid: int = NOBODY,
        gid: int = NOBODY,
        cache_limit_mb: int = CACHE_LIMIT_MB,
        memory_watermark_mb: int | None = None,
    ) -> None:
        if memory_watermark_mb is not None and memory_watermark_mb < 1:
            raise ValueError("memory_watermark_mb >= 1 required")
        if workers < 1 or batch_timeout_s <= 0 or memory_limit_mb < 32 or cpu_limit_s < 1 or cache_limit_mb < 0:
            raise ValueError(
                "workers >= 1, batch_timeout_s > 0, memory_limit_mb >= 32, cpu_limit_s >= 1 and "
                "cache_limit_mb >= 0 required"
            )
        self._market = market
        self._size = workers
        self.batch_timeout_s = batch_timeout_s
        self.acquire_timeout_s = batch_timeout_s if acquire_timeout_s is None else acquire_timeout_s
        self.start_timeout_s = start_timeout_s
        self._limits = WorkerLimits(
            memory_limit_mb=memory_limit_mb, cpu_limit_s=cpu_limit_s, uid=uid, gid=gid, cache_limit_mb=cache_limit_mb,
            memory_watermark_mb=memory_watermark_mb or watermark_mb(memory_limit_mb, cache_limit_mb),
        )  # fmt: skip
        self._state: Literal["new", "running", "stopped"] = "new"
        self._idle: asyncio.Queue[WorkerProcess] = asyncio.Queue()
        self._workers: set[WorkerProcess] = set()
        self._filters: dict[str, _Filter] = {}
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_info: dict[str, Any] = {}
        self._counters = dict.fromkeys(
            ("batches", "restarts", "recycles", "timeouts", "memory", "crashes", "spawn_failures", "errors"), 0
        )

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the workers (idempotent).

        Raises:
            SandboxUnavailable: not a single worker could start (the message has its stderr).
        """
        if self._state == "running":
            return
        if self._state == "stopped":
            raise SandboxUnavailable("a stopped pool cannot be restarted; create a new one")
        self._state = "running"
        results = await asyncio.gather(*(self._spawn() for _ in range(self._size)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        started = [r for r in results if isinstance(r, WorkerProcess)]
        if not started:
            self._state = "stopped"
            raise SandboxUnavailable(f"no sandbox worker could start: {_error_text(errors[0])}")
        for worker in started:
            self._adopt(worker)
        for _ in errors:
            self._schedule_replacement()

    async def stop(self) -> None:
        """Stop every worker (idempotent); later ``evaluate`` calls raise ``SandboxUnavailable``."""
        if self._state == "stopped":
            return
        self._state = "stopped"
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        workers = list(self._workers)
        self._workers.clear()
        await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)

    async def set_market(self, market: MarketSpec) -> None:
        """Switch to new segments: idle workers are replaced now, busy ones after their batch."""
        self._market = market
        self._generation += 1
        while not self._idle.empty():
            worker = self._idle.get_nowait()
            await self._discard(worker, "market changed", restart=False)

    # ------------------------------------------------------------ filters
    async def load(self, filter_id: str, code: str) -> None:
        """Compile ``code`` under the policy and keep it as ``filter_id`` (replacing any previous version).

        Raises:
            FilterRejected: syntax or policy error (message for the user).
        """
        compiled = compile_filter(code)
        previous = self._filters.get(filter_id)
        self._filters[filter_id] = _Filter(code, compiled.version)
        if previous is not None and previous.version != compiled.version:
            self._drop_version(previous.version)

    async def unload(self, filter_id: str) -> None:
        """Forget ``filter_id`` (idempotent)."""
        previous = self._filters.pop(filter_id, None)
        if previous is not None:
            self._drop_version(previous.version)

    def _drop_version(self, version: str) -> None:
        if any(f.version == version for f in self._filters.values()):
            return
        for worker in self._workers:
            if version in worker.loaded:
                worker.loaded.discard(version)
                worker.pending_drops.add(version)

    # ------------------------------------------------------------ batches
    async def evaluate(
        self,
        filter_id: str,
        symbols: Sequence[tuple[str, int]],
        intervals: Sequence[str],
        *,
        closed_only: bool,
        tick_id: int,
        capture_print: bool = False,
    ) -> BatchResult:
        """Run ``filter_id`` over ``symbols`` in one worker.

        Args:
            symbols: ``(symbol, slot)`` pairs, at most :data:`MAX_BATCH_SYMBOLS`.
            intervals: the trader's timeframes: the keys of ``klines`` in the filter.
            closed_only: True on candle-close ticks (each window ends at its newest
                closed candle), False on fixed-interval ticks (the last candle is the
                forming one).
            tick_id: the screening tick; batches with the same id share indicator
                results and see the same candles (per worker).
            capture_print: return the filter's ``print`` output in ``printed``.

        Returns:
            The batch result; limits and crashes are outcomes, not exceptions.

        Raises:
            UnknownFilter: ``filter_id`` is not loaded.
            SandboxUnavailable: the pool is not running or no worker became free in time.
            ValueError: malformed ``symbols``/``intervals``/``tick_id``.
        """
        started = time.monotonic()
        names, pairs, interval_list = _check_batch(symbols, intervals, tick_id)
        flt = self._filters.get(filter_id)
        if flt is None:
            raise UnknownFilter(f"filter {filter_id!r} is not loaded")
        missing = [i for i in interval_list if i not in self._market.klines]
        if missing:
            self._counters["errors"] += 1
            return BatchResult("error", detail=f"no market data for interval(s) {', '.join(missing)}")
        if not pairs:
            return BatchResult("ok", elapsed_ms=_ms(started))
        worker = await self._acquire()
        message: dict[str, Any] = {
            "op": "eval",
            "version": flt.version,
            "intervals": interval_list,
            "closed_only": bool(closed_only),
            "tick_id": tick_id,
            "symbols": pairs,
            "want_print": bool(capture_print),
        }
        if flt.version not in worker.loaded:
            message["code"] = flt.source
        drops = list(worker.pending_drops)
        if drops:
            message["drop"] = drops
        self._counters["batches"] += 1
        try:
            reply = await worker.request(message, self.batch_timeout_s)
            parsed = parse_batch_reply(reply, names)
        except TimeoutError:
            self._counters["timeouts"] += 1
            await self._discard(worker, "timeout")
            detail = f"the filter batch exceeded the {self.batch_timeout_s:g} s wall-clock limit; worker killed"
            return self._limit_result("timeout", detail, started)
        except WorkerDied as exc:
            return await self._died(worker, exc, started)
        except ProtocolError as exc:
            self._counters["crashes"] += 1
            await self._discard(worker, f"protocol error: {exc}")
            return self._limit_result("crashed", f"the worker broke the reply format: {exc}", started)
        except BaseException:
            await self._discard(worker, "request interrupted")
            raise
        worker.loaded.add(flt.version)
        worker.pending_drops.difference_update(drops)
        worker.batches += 1
        worker.cpu_s = parsed["cpu_s"]
        if parsed["outcome"] == "memory":
            self._counters["memory"] += 1
            await self._discard(worker, "memory limit")
            return self._limit_result("memory", parsed["detail"], started)
        if parsed["outcome"] == "error":
            self._counters["errors"] += 1
        if parsed["recycle"]:
            self._counters["recycles"] += 1
            self._background(self._discard(worker, "recycled above its memory watermark", restart=False))
        else:
            self._release(worker)
        return BatchResult(
            outcome=parsed["outcome"],
            matches=parsed["matches"],
            errors=parsed["errors"],
            detail=parsed["detail"],
            elapsed_ms=_ms(started),
            evaluated=parsed["evaluated"],
            printed=parsed["printed"],
        )

    def _limit_result(
        self, outcome: Literal["timeout", "memory", "crashed"], detail: str, started: float
    ) -> BatchResult:
        if self._state != "running":
            raise SandboxUnavailable("the sandbox pool was stopped during the batch")
        return BatchResult(outcome, detail=detail, elapsed_ms=_ms(started))

    async def _died(self, worker: WorkerProcess, exc: WorkerDied, started: float) -> BatchResult:
        code = exc.returncode
        if code == EXIT_MEMORY:
            self._counters["memory"] += 1
            outcome, detail = "memory", "the filter exceeded the worker's memory limit"
        elif code == -signal.SIGXCPU:
            self._counters["timeouts"] += 1
            outcome, detail = "timeout", f"the worker exceeded its CPU limit ({self._limits.cpu_limit_s} s)"
        else:
            self._counters["crashes"] += 1
            tail = exc.stderr.strip().splitlines()[-1:] if exc.stderr.strip() else []
            detail = f"the worker crashed ({worker.describe_exit()})" + (f": {tail[0]}" if tail else "")
            outcome = "crashed"
        await self._discard(worker, detail)
        return self._limit_result(outcome, detail, started)  # type: ignore[arg-type]

    # ------------------------------------------------------------ workers
    async def _spawn(self) -> WorkerProcess:
        worker = await WorkerProcess.spawn(
            self._market, self._limits, generation=self._generation, start_timeout_s=self.start_timeout_s
        )
        self._last_info = dict(worker.info)
        log.info("sandbox_worker_started", **worker.info)
        return worker

    def _adopt(self, worker: WorkerProcess) -> None:
        if self._state != "running":
            self._spawn_close(worker)
            return
        self._workers.add(worker)
        self._idle.put_nowait(worker)

    def _spawn_close(self, worker: WorkerProcess) -> None:
        task = asyncio.get_running_loop().create_task(worker.close())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _acquire(self) -> WorkerProcess:
        deadline = time.monotonic() + self.acquire_timeout_s
        while True:
            if self._state != "running":
                raise SandboxUnavailable(f"the sandbox pool is {self._state}")
            remaining = deadline - time.monotonic()
            try:
                worker = await asyncio.wait_for(self._idle.get(), max(remaining, 0.0))
            except TimeoutError:
                raise SandboxUnavailable(f"no sandbox worker became free within {self.acquire_timeout_s:g} s") from None
            if worker.alive and worker.generation == self._generation and worker in self._workers:
                return worker
            await self._discard(worker, "stale or dead while idle", restart=worker.generation == self._generation)

    def _release(self, worker: WorkerProcess) -> None:
        if worker.generation != self._generation:
            self._background(self._discard(worker, "market changed", restart=False))
        elif worker.cpu_s >= _CPU_RECYCLE_SHARE * self._limits.cpu_limit_s:
            self._background(self._discard(worker, "recycled before its CPU limit", restart=False))
        elif self._state == "running":
            self._idle.put_nowait(worker)

    async def _discard(self, worker: WorkerProcess, reason: str, *, restart: bool = True) -> None:
        """Kill ``worker`` and start a replacement in the background."""
        was_member = worker in self._workers
        self._workers.discard(worker)
        await worker.kill()
        if was_member and self._state == "running":
            if restart:
                self._counters["restarts"] += 1
            log.warning("sandbox_worker_replaced", pid=worker.pid, reason=reason[:300])
            self._schedule_replacement()

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_replacement(self) -> None:
        self._background(self._replace())

    async def _replace(self) -> None:
        delay = 0.05
        while self._state == "running":
            try:
                worker = await self._spawn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._counters["spawn_failures"] += 1
                log.error("sandbox_worker_start_failed", error=_error_text(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RESPAWN_MAX_DELAY_S)
                continue
            if worker.generation != self._generation:
                await worker.close()
                continue
            self._adopt(worker)
            return

    # ------------------------------------------------------------ health
    def health(self) -> Mapping[str, object]:
        """Pool state for ``/health`` and ``/metrics``.

        Keys: ``state``, ``workers`` (configured), ``alive``, ``pids``, ``idle``,
        ``network_isolated``/``uid_dropped`` (true only if every live worker got
        it), ``uid``, ``isolation_detail``, limits, counters (``batches``,
        ``restarts``, ``recycles`` (memory watermark), ``timeouts``, ``memory``, ``crashes``, ``errors``,
        ``spawn_failures``), and of the latest worker start ``worker_start_ms``,
        ``memory_baseline_mb`` (anonymous resident memory when ready),
        ``address_space_baseline_mb`` (its address space then) and
        ``memory_watermark_mb`` (growth past which it is recycled; ``sandbox._residue``).
        """
        infos = [w.info for w in self._workers] or ([self._last_info] if self._last_info else [])
        return {
            "state": self._state,
            "workers": self._size,
            "alive": sum(1 for w in self._workers if w.alive),
            "pids": sorted(w.pid for w in self._workers if w.alive),
            "idle": self._idle.qsize(),
            "network_isolated": bool(infos) and all(i.get("network_isolated") for i in infos),
            "uid_dropped": bool(infos) and all(i.get("uid_dropped") for i in infos),
            "uid": infos[0].get("uid") if infos else None,
            "no_new_privs": bool(infos) and all(i.get("no_new_privs") for i in infos),
            "isolation_detail": infos[0].get("network_detail", "") if infos else "",
            "worker_start_ms": self._last_info.get("start_ms"),
            "memory_baseline_mb": self._last_info.get("memory_baseline_mb"),
            "address_space_baseline_mb": self._last_info.get("address_space_baseline_mb"),
            "memory_watermark_mb": self._last_info.get("memory_watermark_mb"),
            "batch_timeout_s": self.batch_timeout_s,
            "memory_limit_mb": self._limits.memory_limit_mb,
            "cpu_limit_s": self._limits.cpu_limit_s,
            "cache_limit_mb": self._limits.cache_limit_mb,
            "filters": len(self._filters),
            **self._counters,
        }


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, WorkerDied):
        return f"{exc}: {exc.stderr.strip()[-500:]}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def _check_batch(
    symbols: Sequence[tuple[str, int]], intervals: Sequence[str], tick_id: int
) -> tuple[list[str], list[list[Any]], list[str]]:
    if type(tick_id) is not int:
        raise ValueError("tick_id must be an int")
    if isinstance(intervals, str) or not intervals:
        raise ValueError("intervals must be a non-empty sequence of interval names")
    interval_list = [str(i) for i in intervals]
    if len(symbols) > MAX_BATCH_SYMBOLS:
        raise ValueError(f"at most {MAX_BATCH_SYMBOLS} symbols per batch, got {len(symbols)}")
    names, pairs = [], []
    for item in symbols:
        symbol, slot = item
        if type(symbol) is not str or not 0 < len(symbol) <= SYMBOL_MAX_CHARS or type(slot) is not int or slot < 0:
            raise ValueError(f"bad (symbol, slot) pair: {item!r}")
        names.append(symbol)
        pairs.append([symbol, slot])
    return names, pairs, interval_list
