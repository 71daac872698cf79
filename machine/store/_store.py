"""The machine's in-memory market data: klines and 24 h tickers in shared memory.

One :class:`MarketStore` per machine. It owns one ``sandbox._segment.KlineSegment``
per interval (created on first use) and one ``TickerSegment``; sandbox worker
processes attach to them by the specs of :meth:`MarketStore.market_spec` and read
without any per-tick copy through a pipe.

Memory: every symbol of the universe has a slot in every interval's segment, each
slot a ring of ``limit + 32`` candles of 11 float64 columns (the 32 spare candles
keep a window that a worker pinned readable while new candles arrive), so one
interval costs ``slots * 11 * (limit + 32) * 8`` bytes (+ 32 bytes per slot of
metadata). With 400 USDT symbols and ``limit=500`` that is 18.7 MB per interval.
The ticker segment costs ``slots * 80`` bytes.

One writer: the machine's event loop. Readers (workers, or :meth:`klines` here)
get consistent copies through the segments' sequence locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import structlog

from sandbox import MarketSpec
from sandbox._segment import KLINE_COLUMNS, TICKER_FIELDS, KlineSegment, SegmentSpec, TickerSegment

from ._errors import InvalidKlines, StoreClosed, UnknownSymbol
from ._intervals import check_interval
from ._prices import LastPrices, PriceListener

__all__ = ["MarketStore", "StoreStats", "KlineUpdate", "TickerUpdate", "CloseListener"]

_log = structlog.get_logger("machine.store")
_N = len(KLINE_COLUMNS)
_NO_TIME = np.iinfo(np.int64).min


class KlineUpdate(Protocol):
    """What the store needs of one kline stream event (``machine.market.KlineEvent``)."""

    @property
    def symbol(self) -> str: ...
    @property
    def interval(self) -> str: ...
    @property
    def row(self) -> tuple[float, ...]: ...
    @property
    def closed(self) -> bool: ...
    @property
    def event_time_ms(self) -> int: ...
    @property
    def close_price(self) -> Decimal: ...


class TickerUpdate(Protocol):
    """What the store needs of one 24 h ticker event (``machine.market.TickerEvent``)."""

    @property
    def symbol(self) -> str: ...
    @property
    def values(self) -> tuple[float, ...]: ...
    @property
    def last_price(self) -> Decimal: ...
    @property
    def event_time_ms(self) -> int: ...


CloseListener = Callable[[str, str, int], None]
"""``callback(symbol, interval, open_time_ms)`` called once per closed candle."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counters for ``/metrics``.

    Attributes:
        kline_updates: stream kline updates applied (in place or appended).
        stale_klines: kline updates dropped because they were older than the stored candle.
        closed_klines: closed candles announced to the close listeners.
        ticker_updates: ticker events applied.
        stale_tickers: ticker events dropped because an event with a later time was applied.
        listener_errors: close listeners that raised (logged, never propagated).
        intervals: intervals with a segment.
        newest_kline_ms: event time of the newest applied kline update, or None.
        newest_kline_received_ms: local wall-clock time it was applied, or None.
    """

    kline_updates: int
    stale_klines: int
    closed_klines: int
    ticker_updates: int
    stale_tickers: int
    listener_errors: int
    intervals: tuple[str, ...]
    newest_kline_ms: int | None
    newest_kline_received_ms: int | None


class MarketStore:
    """Klines per (symbol, interval) and the latest ticker per symbol.

    Args:
        symbols: the exchange universe (e.g. every TRADING USDT spot symbol); one slot
            each, fixed for the store's life. Upper-cased, duplicates ignored.
        limit: candles kept per (symbol, interval), the newest ones (KLINE_LIMIT).

    Raises:
        ValueError: no symbols, or ``limit < 2``.
    """

    def __init__(self, symbols: Sequence[str], limit: int = 500) -> None:
        names = list(dict.fromkeys(s.upper() for s in symbols))
        if not names:
            raise ValueError("a MarketStore needs at least one symbol")
        if limit < 2:
            raise ValueError(f"limit must be >= 2, got {limit}")
        self._symbols = tuple(names)
        self._index = {s: i for i, s in enumerate(names)}
        self._limit = limit
        self._klines: dict[str, KlineSegment] = {}
        self._event_ms: dict[str, np.ndarray] = {}  # per interval: newest applied event time per slot
        self._notified: dict[str, np.ndarray] = {}  # per interval: open time of the last announced close
        self._tickers = TickerSegment.create(len(names))
        self._ticker_ms = np.full(len(names), _NO_TIME, dtype=np.int64)
        self._prices = LastPrices(self._symbols)
        self._listeners: list[CloseListener] = []
        self._newest_kline_ms: int | None = None
        self._newest_received_ms: int | None = None
        self._kline_updates = 0
        self._stale_klines = 0
        self._closed_klines = 0
        self._ticker_updates = 0
        self._stale_tickers = 0
        self._listener_errors = 0
        self._closed = False

    # ------------------------------------------------------------------ layout
    @property
    def symbols(self) -> tuple[str, ...]:
        """The universe, in slot order."""
        return self._symbols

    @property
    def limit(self) -> int:
        """Candles kept per (symbol, interval)."""
        return self._limit

    @property
    def intervals(self) -> tuple[str, ...]:
        """Intervals that have a segment."""
        return tuple(self._klines)

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.upper() in self._index

    def slot(self, symbol: str) -> int:
        """The symbol's slot (row) in every segment.

        Raises:
            UnknownSymbol: the symbol is not in the universe.
        """
        try:
            return self._index[symbol]
        except KeyError:
            upper = symbol.upper()
            if upper in self._index:
                return self._index[upper]
            raise UnknownSymbol(upper) from None

    def ensure_interval(self, interval: str) -> KlineSegment:
        """The interval's segment, created (zeroed, all slots empty) on first use.

        Raises:
            UnknownInterval: not a Binance interval.
            StoreClosed: after :meth:`close`.
        """
        seg = self._klines.get(interval)
        if seg is not None:
            return seg
        self._check_open()
        check_interval(interval)
        seg = KlineSegment.create(len(self._symbols), self._limit)
        self._klines[interval] = seg
        self._event_ms[interval] = np.full(len(self._symbols), _NO_TIME, dtype=np.int64)
        self._notified[interval] = np.full(len(self._symbols), _NO_TIME, dtype=np.int64)
        _log.info("kline_segment_created", interval=interval, slots=len(self._symbols), limit=self._limit,
                  bytes=KlineSegment.nbytes(len(self._symbols), self._limit))
        return seg

    # ------------------------------------------------------------------ writes
    def load(
        self,
        symbol: str,
        interval: str,
        rows: np.ndarray,
        last_closed: bool,
        last_price: Decimal | None = None,
    ) -> None:
        """Replace a (symbol, interval) window with backfilled candles.

        Args:
            rows: shape ``(n, 11)``, Binance kline column order, oldest first, strictly
                increasing open times (``BinanceRest.klines``). Only the newest ``limit``
                are kept.
            last_closed: whether the newest row is a closed candle.
            last_price: exact close of the newest row, if the caller has it; used as
                the symbol's last price only while no stream price has arrived.

        Candles the stream delivered before this call that are as new as the newest
        row win over the backfill (the stream starts before the backfill, so its
        data can be newer than the REST answer); a forming stream candle does not
        overwrite a closed REST candle of the same open time.

        Raises:
            InvalidKlines: wrong shape, non-finite open time or unordered rows (nothing written).
            UnknownSymbol, UnknownInterval, StoreClosed.
        """
        arr = np.asarray(rows, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != _N:
            raise InvalidKlines(f"{symbol} {interval}: rows must have shape (n, {_N}), got {arr.shape}")
        if not np.all(np.isfinite(arr[:, 0])) or np.any(np.diff(arr[:, 0]) <= 0):
            raise InvalidKlines(f"{symbol} {interval}: open times must be finite and strictly increasing")
        slot = self.slot(symbol)
        seg = self.ensure_interval(interval)
        newest = seg.newest(slot)
        stream = seg.read(slot) if newest is not None else None
        seg.load(slot, arr, last_closed)
        if stream is not None and stream.shape[1]:
            last_t = arr[-1, 0] if arr.shape[0] else -np.inf
            keep = stream[:, stream[0] >= last_t]
            for j in range(keep.shape[1]):
                is_newest = j == keep.shape[1] - 1
                closed = newest[1] if is_newest else True  # type: ignore[index]
                if keep[0, j] == last_t and last_closed and not closed:
                    continue
                seg.upsert(slot, keep[:, j], closed)
        if not self._prices.has_price(slot) and arr.shape[0]:
            self._prices.seed(slot, last_price if last_price is not None else Decimal(repr(float(arr[-1, 4]))))

    def apply_kline(self, event: KlineUpdate) -> bool:
        """Apply one stream kline update in O(1).

        Same open time as the newest candle: updated in place. Newer: appended (the
        oldest candle beyond ``limit`` drops out). Dropped (and counted as stale):
        an older open time, an event time older than the last applied one for this
        (symbol, interval), or a forming update for a candle already stored closed.
        A closing update (Binance ``k.x = true``) calls the close listeners, once per
        candle.

        Returns:
            True when applied, False when dropped as stale.

        Raises:
            UnknownSymbol, UnknownInterval, StoreClosed.
        """
        slot = self.slot(event.symbol)
        seg = self.ensure_interval(event.interval)
        interval = event.interval
        event_ms = self._event_ms[interval]
        open_time = event.row[0]
        if event.event_time_ms < event_ms[slot]:
            self._stale_klines += 1
            return False
        if not event.closed:
            newest = seg.newest(slot)
            if newest is not None and newest[1] and newest[0] == open_time:
                self._stale_klines += 1
                return False
        if not seg.upsert(slot, event.row, event.closed):
            self._stale_klines += 1
            return False
        event_ms[slot] = event.event_time_ms
        self._kline_updates += 1
        if self._newest_kline_ms is None or event.event_time_ms > self._newest_kline_ms:
            self._newest_kline_ms = event.event_time_ms
        self._newest_received_ms = int(time.time() * 1000)
        self._prices.set(slot, event.close_price, event.event_time_ms)
        self._prices.kline_reached(slot, interval, event.row, event.close_price)
        if event.closed:
            notified = self._notified[interval]
            t = int(open_time)
            if t > notified[slot]:
                notified[slot] = t
                self._closed_klines += 1
                self._notify(self._symbols[slot], interval, t)
        return True

    def apply_ticker(self, event: TickerUpdate) -> bool:
        """Store one 24 h ticker (values in ``TICKER_FIELDS`` order).

        Returns:
            False when dropped because a ticker with a later event time is stored.

        Raises:
            UnknownSymbol, StoreClosed, ValueError (wrong number of values).
        """
        self._check_open()
        slot = self.slot(event.symbol)
        if len(event.values) != len(TICKER_FIELDS):
            raise ValueError(f"ticker needs {len(TICKER_FIELDS)} values, got {len(event.values)}")
        if event.event_time_ms < self._ticker_ms[slot]:
            self._stale_tickers += 1
            return False
        self._tickers.write(slot, event.values)
        self._ticker_ms[slot] = event.event_time_ms
        self._ticker_updates += 1
        self._prices.set(slot, event.last_price, event.event_time_ms)
        self._prices.ticker_reached(slot, event.last_price)
        return True

    def add_price_listener(self, callback: PriceListener) -> Callable[[], None]:
        """Call ``callback(symbol, low, high, last)`` for every price update (``LastPrices.add_listener``)."""
        return self._prices.add_listener(callback)

    def last_price_time_ms(self, symbol: str) -> int | None:
        """Exchange event time (ms) of the symbol's last price, or None before any stream event."""
        return self._prices.event_time_ms(self.slot(symbol))

    def price_age_s(self, symbol: str) -> float | None:
        """Seconds since the symbol's last price was received, or None when it has none (backfill counts as never)."""
        return self._prices.age_s(self.slot(symbol))

    # ------------------------------------------------------------------ listeners
    def add_close_listener(self, callback: CloseListener) -> Callable[[], None]:
        """Call ``callback(symbol, interval, open_time_ms)`` for every closed candle.

        Called synchronously from :meth:`apply_kline`, after the candle is stored, once
        per (symbol, interval, open time). A listener that raises is logged and
        counted; the others still run. Returns a function that removes the listener.
        """
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def _notify(self, symbol: str, interval: str, open_time_ms: int) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(symbol, interval, open_time_ms)
            except Exception:
                self._listener_errors += 1
                _log.exception("close_listener_failed", symbol=symbol, interval=interval, open_time_ms=open_time_ms)

    # ------------------------------------------------------------------ reads
    def klines(self, symbol: str, interval: str, closed_only: bool = False) -> np.ndarray:
        """Private copy of a window, shape ``(11, n)``, oldest first (``KLINE_COLUMNS`` rows).

        ``closed_only`` leaves a forming newest candle out. An interval without a
        segment yet gives shape ``(11, 0)``.

        Raises:
            UnknownSymbol, UnknownInterval, StoreClosed.
        """
        self._check_open()
        slot = self.slot(symbol)
        seg = self._klines.get(interval)
        if seg is None:
            check_interval(interval)
            return np.empty((_N, 0), dtype=np.float64)
        return seg.read(slot, closed_only)

    def newest_kline(self, symbol: str, interval: str) -> tuple[int, bool] | None:
        """``(open_time_ms, closed)`` of the newest stored candle, or None."""
        self._check_open()
        slot = self.slot(symbol)
        seg = self._klines.get(interval)
        newest = seg.newest(slot) if seg is not None else None
        return None if newest is None else (int(newest[0]), newest[1])

    def ticker(self, symbol: str) -> dict[str, Any] | None:
        """The latest 24 h ticker: ``{"symbol", *TICKER_FIELDS}`` (floats; ``event_time`` int ms), or None."""
        self._check_open()
        slot = self.slot(symbol)
        values = self._tickers.read(slot)
        if values is None:
            return None
        out: dict[str, Any] = {"symbol": self._symbols[slot]}
        out.update(zip(TICKER_FIELDS, values))
        out["event_time"] = int(out["event_time"])
        return out

    def last_price(self, symbol: str) -> Decimal | None:
        """Latest price in the quote asset, exact from the wire string, or None.

        Source: the newest (by event time) of the ticker's ``c`` and the kline's ``k.c``.
        Before any stream event, the backfill's newest close (``repr`` of the float,
        exact for Binance prices, which have fewer than 16 significant digits).
        """
        return self._prices.price(self.slot(symbol))

    def avg_price(self, symbol: str, minutes: int) -> Decimal | None:
        """Volume-weighted price of the newest ``minutes`` 1m candles (what Binance's ``GET /api/v3/avgPrice``
        approximates: quote volume / base volume), or None without 1m candles or volume."""
        if "1m" not in self._klines:
            return None
        window = self.klines(symbol, "1m")[:, -minutes:]  # (11, n): columns are candles
        volume = float(window[5].sum()) if window.shape[1] else 0.0
        if volume <= 0:
            return None
        return Decimal(repr(float(window[7].sum()) / volume))

    def newest_kline_ms(self) -> int | None:
        """Event time (ms, exchange clock) of the newest applied kline update, or None."""
        return self._newest_kline_ms

    def newest_kline_received_ms(self) -> int | None:
        """Local wall-clock time (ms) when the newest kline update was applied, or None."""
        return self._newest_received_ms

    def market_spec(self) -> MarketSpec:
        """What sandbox workers need to attach: ``MarketSpec(klines={interval: SegmentSpec}, tickers=SegmentSpec)``."""
        self._check_open()
        klines: Mapping[str, SegmentSpec] = {i: seg.spec for i, seg in self._klines.items()}
        return MarketSpec(klines=dict(klines), tickers=self._tickers.spec)

    def stats(self) -> StoreStats:
        """Counters for ``/metrics`` and ``/health``."""
        return StoreStats(
            kline_updates=self._kline_updates,
            stale_klines=self._stale_klines,
            closed_klines=self._closed_klines,
            ticker_updates=self._ticker_updates,
            stale_tickers=self._stale_tickers,
            listener_errors=self._listener_errors + self._prices.listener_errors,
            intervals=self.intervals,
            newest_kline_ms=self._newest_kline_ms,
            newest_kline_received_ms=self._newest_received_ms,
        )

    # ------------------------------------------------------------------ lifecycle
    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the market store is closed")

    def close(self) -> None:
        """Unlink every shared-memory segment (idempotent). Workers must be stopped first."""
        if self._closed:
            return
        self._closed = True
        segments: Iterable[KlineSegment | TickerSegment] = (*self._klines.values(), self._tickers)
        for seg in segments:
            try:
                seg.close()
            except Exception:  # pragma: no cover - a block already gone
                _log.exception("segment_close_failed")
        self._klines.clear()
        self._listeners.clear()

    def __enter__(self) -> "MarketStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net, close() is the API
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass
