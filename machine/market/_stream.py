"""Binance combined-stream WebSocket client (aiohttp), split over several connections.

Protocol (Binance Spot API docs, "WebSocket Streams" -> "General WSS information"):
``<ws_url>/stream?streams=<s1>/<s2>/...``; each message is ``{"stream", "data"}``;
the server pings every 20 s and drops a connection that does not pong within a
minute (aiohttp's ``autoping`` answers); a connection is closed after 24 h; at
most 1024 streams per connection. We put at most ``max_streams_per_connection``
(200) streams on one connection to keep URLs short, and reconnect every dropped
connection with capped exponential backoff and jitter.

Every message is counted; a malformed one is counted and dropped, never raised.
"""

from __future__ import annotations

import asyncio
import enum
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp
import structlog

from ._errors import MalformedMessage
from ._events import KlineEvent, TickerEvent
from ._parse import parse_stream_message

__all__ = ["KlineStream", "StreamState", "DEFAULT_WS_URL", "kline_stream_name", "ticker_stream_name"]

DEFAULT_WS_URL: Final = "wss://stream.binance.com:9443"
MAX_STREAMS_PER_CONNECTION: Final = 1024  # Binance's limit
_STREAM_NAME = re.compile(r"^[a-z0-9]+@[A-Za-z0-9_@]+$")
_log = structlog.get_logger("machine.market")

OnMessage = Callable[[KlineEvent | TickerEvent], None]
OnReconnect = Callable[[tuple[str, ...]], None]


def kline_stream_name(symbol: str, interval: str) -> str:
    """``btcusdt@kline_1m`` (Binance: symbols lower case, the interval as is: ``1M`` is a month)."""
    return f"{symbol.lower()}@kline_{interval}"


def ticker_stream_name(symbol: str) -> str:
    """``btcusdt@ticker``: the individual symbol 24 h ticker stream."""
    return f"{symbol.lower()}@ticker"


def _normalise(streams: Iterable[str]) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for name in streams:
        sym, sep, rest = name.partition("@")
        norm = sym.lower() + sep + rest
        if not _STREAM_NAME.match(norm):
            raise ValueError(f"not a Binance stream name: {name!r}")
        out[norm] = None
    return tuple(out)


class StreamState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(eq=False)
class _Connection:
    streams: tuple[str, ...]
    url: str
    task: asyncio.Task[None] | None = None
    ws: aiohttp.ClientWebSocketResponse | None = None
    connected: bool = False
    connects: int = 0
    stopping: bool = False


class KlineStream:
    """Kline and ticker events from Binance's combined streams.

    Args:
        ws_url: base URL (production ``wss://stream.binance.com:9443``; the simulator's
            ``ws_url`` in tests); ``/stream?streams=...`` is appended.
        streams: stream names, e.g. ``btcusdt@kline_1m``, ``btcusdt@ticker``.
        on_message: called synchronously, in order per connection, with each
            :class:`KlineEvent` / :class:`TickerEvent`. Exceptions are logged and counted.
        max_streams_per_connection: split point (1..1024).
        heartbeat_s: client ping interval; a connection without pong is closed and redialled.
        connect_timeout_s: per connection attempt.
        backoff_initial_s, backoff_max_s: reconnect delay ``min(max, initial * 2**n)``,
            with jitter down to half of it; reset after a successful connect.
        on_reconnect: called with a connection's streams each time it connects again
            after a drop (events may have been missed: a caller backfills).
        session: an aiohttp session to use (not closed here); by default one is owned.
    """

    def __init__(
        self,
        ws_url: str,
        streams: Sequence[str],
        on_message: OnMessage,
        *,
        max_streams_per_connection: int = 200,
        heartbeat_s: float | None = 20.0,
        connect_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        on_reconnect: OnReconnect | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not 1 <= max_streams_per_connection <= MAX_STREAMS_PER_CONNECTION:
            raise ValueError(f"max_streams_per_connection must be in 1..{MAX_STREAMS_PER_CONNECTION}")
        self._base = ws_url.rstrip("/")
        self._streams = _normalise(streams)
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self._per_conn = max_streams_per_connection
        self._heartbeat_s = heartbeat_s
        self._connect_timeout_s = connect_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._session = session
        self._own_session = session is None
        self._conns: list[_Connection] = []
        self._state = StreamState.NEW
        self._changed = asyncio.Event()
        self.messages = 0
        self.malformed = 0
        self.ignored = 0
        self.callback_errors = 0
        self.reconnects = 0
        self.disconnects = 0
        self.connect_failures = 0
        self.last_message_ms: int | None = None

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def streams(self) -> tuple[str, ...]:
        """The subscribed stream names."""
        return self._streams

    @property
    def connected(self) -> bool:
        """True when running and every connection is open."""
        return self._state is StreamState.RUNNING and all(c.connected for c in self._conns)

    @property
    def connections(self) -> tuple[tuple[str, ...], ...]:
        """The streams of each connection."""
        return tuple(c.streams for c in self._conns)

    def urls(self) -> tuple[str, ...]:
        """The URL of each connection."""
        return tuple(c.url for c in self._conns)

    def stats(self) -> dict[str, int | bool | None]:
        """Counters for ``/metrics`` and ``/health``."""
        return {
            "connected": self.connected,
            "connections": len(self._conns),
            "connections_open": sum(c.connected for c in self._conns),
            "streams": len(self._streams),
            "messages": self.messages,
            "malformed": self.malformed,
            "ignored": self.ignored,
            "callback_errors": self.callback_errors,
            "reconnects": self.reconnects,
            "disconnects": self.disconnects,
            "connect_failures": self.connect_failures,
            "last_message_ms": self.last_message_ms,
        }

    async def wait_until(self, predicate: Callable[["KlineStream"], bool], timeout_s: float) -> None:
        """Wait until ``predicate(self)`` holds, re-checked at every connect and disconnect.

        Raises:
            TimeoutError: not within ``timeout_s``.
        """
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                await self._changed.wait()

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until every connection is open. Raises TimeoutError."""
        await self.wait_until(lambda s: s.connected, timeout_s)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the connections (returns at once; they connect in the background). Idempotent."""
        if self._state is StreamState.RUNNING:
            return
        if self._own_session and (self._session is None or self._session.closed):
            self._session = aiohttp.ClientSession()
        self._state = StreamState.RUNNING
        self._conns = [self._spawn(chunk) for chunk in self._chunks(self._streams)]
        self._notify()

    async def stop(self) -> None:
        """Close every connection and cancel every task (idempotent)."""
        if self._state is not StreamState.RUNNING:
            self._state = StreamState.STOPPED
            return
        self._state = StreamState.STOPPED
        conns, self._conns = self._conns, []
        await asyncio.gather(*(self._close(c) for c in conns))
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
        self._notify()

    async def __aenter__(self) -> "KlineStream":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def update_streams(self, streams: Sequence[str]) -> None:
        """Change the subscriptions.

        Connections whose streams are all still wanted stay open; the other wanted
        streams go onto new connections, which are opened (waited for up to
        ``connect_timeout_s``) before the replaced connections are closed, so no
        update is lost in between (duplicates are harmless to the store). When that
        would leave more than two connections beyond the minimum, all streams are
        repacked onto fresh connections (again opened before the old ones close).
        """
        wanted = _normalise(streams)
        self._streams = wanted
        if self._state is not StreamState.RUNNING:
            return
        wanted_set = set(wanted)
        keep = [c for c in self._conns if c.streams and set(c.streams) <= wanted_set]
        covered = {s for c in keep for s in c.streams}
        pending = tuple(s for s in wanted if s not in covered)
        if len(keep) + len(self._chunks(pending)) > len(self._chunks(wanted)) + 2:
            keep, pending = [], wanted  # repack: reloads have left too many part-filled connections
        drop = [c for c in self._conns if c not in keep]
        new = [self._spawn(chunk) for chunk in self._chunks(pending)]
        self._conns = keep + new
        self._notify()
        if new:
            try:
                await self.wait_until(lambda _s: all(c.connected for c in new), self._connect_timeout_s)
            except TimeoutError:
                _log.warning("stream_update_connect_slow", new_connections=len(new))
        await asyncio.gather(*(self._close(c) for c in drop))
        _log.info("streams_updated", streams=len(wanted), kept=len(keep), opened=len(new), closed=len(drop))

    # ------------------------------------------------------------------ internals
    def _chunks(self, streams: tuple[str, ...]) -> list[tuple[str, ...]]:
        return [streams[i : i + self._per_conn] for i in range(0, len(streams), self._per_conn)]

    def _spawn(self, streams: tuple[str, ...]) -> _Connection:
        conn = _Connection(streams=streams, url=f"{self._base}/stream?streams={'/'.join(streams)}")
        conn.task = asyncio.create_task(self._run(conn), name=f"kline-stream:{streams[0]}+{len(streams) - 1}")
        return conn

    async def _close(self, conn: _Connection) -> None:
        conn.stopping = True
        if conn.task is not None and not conn.task.done():
            conn.task.cancel()
            try:
                await conn.task
            except asyncio.CancelledError:
                pass
            except Exception:  # pragma: no cover - _run handles its own errors
                _log.exception("stream_task_failed")
        conn.connected = False

    def _backoff(self, failures: int) -> float:
        delay = min(self._backoff_max_s, self._backoff_initial_s * (2**failures))
        return random.uniform(delay / 2, delay)

    async def _run(self, conn: _Connection) -> None:
        assert self._session is not None
        failures = 0
        while not conn.stopping:
            try:
                ws = await asyncio.wait_for(
                    self._session.ws_connect(
                        conn.url,
                        autoping=True,
                        heartbeat=self._heartbeat_s,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                    ),
                    self._connect_timeout_s,
                )
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                self.connect_failures += 1
                _log.warning("stream_connect_failed", url=conn.url[:120], error=repr(exc)[:200], failures=failures + 1)
            except Exception:  # never let one bad attempt end the connection's task
                self.connect_failures += 1
                _log.exception("stream_connect_error", url=conn.url[:120])
            else:
                failures = -1
                try:
                    await self._read(conn, ws)
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    _log.warning("stream_read_failed", error=repr(exc)[:200])
                except Exception:
                    _log.exception("stream_read_error")
            if conn.stopping:
                return
            failures += 1
            await asyncio.sleep(self._backoff(failures))

    async def _read(self, conn: _Connection, ws: aiohttp.ClientWebSocketResponse) -> None:
        conn.ws = ws
        conn.connects += 1
        conn.connected = True
        if conn.connects > 1:
            self.reconnects += 1
            _log.info("stream_reconnected", streams=len(conn.streams), reconnects=self.reconnects)
            if self._on_reconnect is not None:
                try:
                    self._on_reconnect(conn.streams)
                except Exception:
                    _log.exception("stream_on_reconnect_failed")
        else:
            _log.info("stream_connected", streams=len(conn.streams))
        self._notify()
        try:
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._handle(msg.data)
                    # A burst of buffered messages is read without suspending; yield after each so
                    # the work a message started (a stop-loss's close) runs now, not after the burst.
                    await asyncio.sleep(0)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    _log.warning("stream_error", error=repr(ws.exception())[:200])
                    break
        finally:
            conn.ws = None
            conn.connected = False
            if not conn.stopping:
                self.disconnects += 1
                _log.warning("stream_disconnected", streams=len(conn.streams), close_code=ws.close_code)
            self._notify()
            if not ws.closed:
                await ws.close()

    def _handle(self, raw: str | bytes) -> None:
        self.messages += 1
        self.last_message_ms = int(time.time() * 1000)
        try:
            event = parse_stream_message(raw)
        except MalformedMessage as exc:
            self.malformed += 1
            if self.malformed <= 10 or self.malformed % 1000 == 0:
                _log.warning("stream_message_malformed", reason=str(exc)[:200], count=self.malformed,
                             head=(raw[:120] if isinstance(raw, str) else repr(raw[:120])))
            return
        if event is None:
            self.ignored += 1
            return
        try:
            self._on_message(event)
        except Exception:
            self.callback_errors += 1
            _log.exception("stream_callback_failed", symbol=event.symbol)
