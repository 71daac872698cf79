"""Market feed: the stream and the REST backfill wired into the store.

Order at start (so that no candle is lost between the two): open the stream
first, wait (bounded) until it is connected, then backfill every (symbol,
interval) over REST with bounded concurrency inside the weight budget. The
store's ``load`` keeps any stream candle at least as new as the REST answer.
After a dropped connection reconnects, the pairs of that connection are
backfilled again, since candles may have closed while it was down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from machine.store import MarketStore, StoreError, check_interval

from ._errors import MarketDataError
from ._events import KlineEvent, TickerEvent
from ._rest import BinanceRest
from ._stream import KlineStream, kline_stream_name, ticker_stream_name

__all__ = ["MarketFeed", "FeedStats", "BackfillReport", "Pair"]

Pair = tuple[str, str]
"""(symbol, interval), e.g. ``("BTCUSDT", "1m")``."""

_log = structlog.get_logger("machine.market")


@dataclass(frozen=True, slots=True)
class BackfillReport:
    """Outcome of one backfill round.

    Attributes:
        loaded: pairs whose klines were loaded into the store.
        failed: pair -> error text, for pairs that could not be loaded (they stay
            subscribed; the stream fills them from now on).
    """

    loaded: tuple[Pair, ...] = ()
    failed: Mapping[Pair, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeedStats:
    """Market data health for ``/health`` and ``/metrics``.

    Attributes:
        ready: the first backfill finished.
        connected: every stream connection is open.
        connections, streams: stream connections and stream names subscribed.
        messages, malformed, ignored: stream messages received, dropped as malformed,
            well-formed but not market events.
        reconnects, disconnects, connect_failures: stream connection history.
        callback_errors, store_rejected: events the store could not take.
        stale_klines: kline updates dropped as older than the stored candle.
        last_message_ms: local wall-clock time of the last stream message.
        newest_kline_ms: exchange event time of the newest applied kline update.
        newest_kline_age_s: seconds since that update arrived (local clock), or None.
        backfilled, backfill_failures: pairs loaded / failed over REST, all rounds.
        rest: the REST client's counters (requests, retries, failures, used weight).
    """

    ready: bool
    connected: bool
    connections: int
    streams: int
    messages: int
    malformed: int
    ignored: int
    reconnects: int
    disconnects: int
    connect_failures: int
    callback_errors: int
    store_rejected: int
    stale_klines: int
    last_message_ms: int | None
    newest_kline_ms: int | None
    newest_kline_age_s: float | None
    backfilled: int
    backfill_failures: int
    rest: Mapping[str, int | None]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class MarketFeed:
    """Keeps a :class:`MarketStore` fed for a set of (symbol, interval) pairs and ticker symbols.

    Args:
        rest: REST client for backfills (not closed here).
        ws_url: combined-stream base URL.
        store: the store written to (not closed here).
        backfill_concurrency: REST backfills in flight at once.
        connect_timeout_s: how long :meth:`start` waits for the stream before backfilling anyway.
        max_streams_per_connection: passed to :class:`KlineStream`.
    """

    def __init__(
        self,
        rest: BinanceRest,
        ws_url: str,
        store: MarketStore,
        *,
        backfill_concurrency: int = 8,
        connect_timeout_s: float = 10.0,
        max_streams_per_connection: int = 200,
    ) -> None:
        self._rest = rest
        self._ws_url = ws_url
        self._store = store
        self._concurrency = max(1, backfill_concurrency)
        self._connect_timeout_s = connect_timeout_s
        self._per_conn = max_streams_per_connection
        self._pairs: frozenset[Pair] = frozenset()
        self._tickers: frozenset[str] = frozenset()
        self._by_stream: dict[str, Pair] = {}
        self._stream: KlineStream | None = None
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._store_rejected = 0
        self._backfilled = 0
        self._backfill_failures = 0
        self._stopped = False

    # ------------------------------------------------------------------ state
    @property
    def ready(self) -> bool:
        """True once the first backfill finished."""
        return self._ready.is_set()

    async def wait_ready(self, timeout_s: float) -> None:
        """Raises TimeoutError when not ready within ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            await self._ready.wait()

    @property
    def pairs(self) -> frozenset[Pair]:
        return self._pairs

    @property
    def ticker_symbols(self) -> frozenset[str]:
        return self._tickers

    @property
    def stream(self) -> KlineStream | None:
        """The stream client (for its counters and ``wait_until``), once started."""
        return self._stream

    def stats(self) -> FeedStats:
        """A snapshot of the feed's counters."""
        s = self._stream
        store = self._store.stats()
        received = store.newest_kline_received_ms
        return FeedStats(
            ready=self.ready,
            connected=s.connected if s else False,
            connections=len(s.connections) if s else 0,
            streams=len(s.streams) if s else 0,
            messages=s.messages if s else 0,
            malformed=s.malformed if s else 0,
            ignored=s.ignored if s else 0,
            reconnects=s.reconnects if s else 0,
            disconnects=s.disconnects if s else 0,
            connect_failures=s.connect_failures if s else 0,
            callback_errors=s.callback_errors if s else 0,
            store_rejected=self._store_rejected,
            stale_klines=store.stale_klines,
            last_message_ms=s.last_message_ms if s else None,
            newest_kline_ms=store.newest_kline_ms,
            newest_kline_age_s=None if received is None else max(0.0, time.time() - received / 1000),
            backfilled=self._backfilled,
            backfill_failures=self._backfill_failures,
            rest=self._rest.stats(),
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self, pairs: Iterable[Pair], ticker_symbols: Iterable[str]) -> BackfillReport:
        """Subscribe, wait for the stream (up to ``connect_timeout_s``), backfill every pair, report ready.

        Calling it again behaves like :meth:`update`.

        Raises:
            UnknownSymbol, UnknownInterval (from ``machine.store``): before anything starts.
        """
        norm_pairs, norm_tickers = self._normalise(pairs, ticker_symbols)
        async with self._lock:
            if self._stream is not None:
                return await self._update_locked(norm_pairs, norm_tickers)
            self._stopped = False
            self._set_subscriptions(norm_pairs, norm_tickers)
            self._stream = KlineStream(
                self._ws_url,
                self._stream_names(),
                self._on_event,
                on_reconnect=self._on_reconnect,
                max_streams_per_connection=self._per_conn,
                connect_timeout_s=self._connect_timeout_s,
            )
            await self._stream.start()
            if self._stream.streams:
                try:
                    await self._stream.wait_connected(self._connect_timeout_s)
                except TimeoutError:
                    _log.warning("market_stream_not_connected", timeout_s=self._connect_timeout_s)
            report = await self._backfill(sorted(norm_pairs), reason="start")
            self._ready.set()
            _log.info("market_feed_ready", pairs=len(norm_pairs), tickers=len(norm_tickers),
                      loaded=len(report.loaded), failed=len(report.failed))
            return report

    async def update(self, pairs: Iterable[Pair], ticker_symbols: Iterable[str]) -> BackfillReport:
        """Change the subscriptions (trader reload); only pairs not subscribed before are backfilled.

        Raises:
            UnknownSymbol, UnknownInterval: nothing is changed.
            RuntimeError: before :meth:`start`.
        """
        norm_pairs, norm_tickers = self._normalise(pairs, ticker_symbols)
        async with self._lock:
            if self._stream is None:
                raise RuntimeError("MarketFeed.update() before start()")
            return await self._update_locked(norm_pairs, norm_tickers)

    async def stop(self) -> None:
        """Close the stream and cancel pending backfills (idempotent)."""
        self._stopped = True
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.stop()
        self._ready.clear()

    async def __aenter__(self) -> "MarketFeed":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ internals
    def _normalise(self, pairs: Iterable[Pair], tickers: Iterable[str]) -> tuple[frozenset[Pair], frozenset[str]]:
        norm_pairs = frozenset((sym.upper(), check_interval(iv)) for sym, iv in pairs)
        norm_tickers = frozenset(t.upper() for t in tickers)
        for sym in {s for s, _ in norm_pairs} | norm_tickers:
            self._store.slot(sym)  # raises UnknownSymbol
        return norm_pairs, norm_tickers

    def _set_subscriptions(self, pairs: frozenset[Pair], tickers: frozenset[str]) -> None:
        self._pairs, self._tickers = pairs, tickers
        self._by_stream = {kline_stream_name(s, i): (s, i) for s, i in sorted(pairs)}

    def _stream_names(self) -> list[str]:
        return list(self._by_stream) + [ticker_stream_name(t) for t in sorted(self._tickers)]

    async def _update_locked(self, pairs: frozenset[Pair], tickers: frozenset[str]) -> BackfillReport:
        assert self._stream is not None
        new_pairs = pairs - self._pairs
        self._set_subscriptions(pairs, tickers)
        await self._stream.update_streams(self._stream_names())
        report = await self._backfill(sorted(new_pairs), reason="update")
        self._ready.set()
        return report

    def _on_event(self, event: KlineEvent | TickerEvent) -> None:
        try:
            if isinstance(event, KlineEvent):
                self._store.apply_kline(event)
            else:
                self._store.apply_ticker(event)
        except StoreError as exc:
            self._store_rejected += 1
            if self._store_rejected <= 10 or self._store_rejected % 1000 == 0:
                _log.warning("market_event_rejected", symbol=event.symbol, reason=str(exc), count=self._store_rejected)

    def _on_reconnect(self, streams: tuple[str, ...]) -> None:
        pairs = sorted(p for name in streams if (p := self._by_stream.get(name)) is not None)
        if pairs and not self._stopped:
            self._spawn(self._backfill(pairs, reason="reconnect"))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                _log.exception("background_backfill_failed")

        task = asyncio.create_task(guarded(), name="market-backfill")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _backfill(self, pairs: list[Pair], *, reason: str) -> BackfillReport:
        if not pairs:
            return BackfillReport()
        try:
            server_now_ms: int | None = await self._rest.server_time_ms()
        except MarketDataError as exc:
            server_now_ms = None
            _log.warning("backfill_server_time_failed", error=str(exc))
        sem = asyncio.Semaphore(self._concurrency)

        async def one(pair: Pair) -> None:
            symbol, interval = pair
            async with sem:
                rows = await self._rest.klines(symbol, interval, limit=self._store.limit)
            last_closed = bool(server_now_ms is not None and rows.shape[0] and rows[-1, 6] < server_now_ms)
            self._store.load(symbol, interval, rows, last_closed)

        results = await asyncio.gather(*(one(p) for p in pairs), return_exceptions=True)
        loaded: list[Pair] = []
        failed: dict[Pair, str] = {}
        for pair, result in zip(pairs, results):
            if result is None:
                loaded.append(pair)
            elif isinstance(result, (MarketDataError, StoreError)):
                failed[pair] = f"{type(result).__name__}: {result}"
            elif isinstance(result, BaseException):
                raise result
        self._backfilled += len(loaded)
        self._backfill_failures += len(failed)
        if failed:
            _log.warning("backfill_failed", reason=reason, failed=len(failed), first=next(iter(failed.values())))
        _log.info("backfill_done", reason=reason, loaded=len(loaded), failed=len(failed))
        return BackfillReport(loaded=tuple(loaded), failed=failed)
