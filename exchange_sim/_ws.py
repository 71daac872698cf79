"""WebSocket market streams: ``/stream?streams=...`` (combined) and ``/ws/<stream>`` (raw).

Protocol (binance-spot-api-docs, web-socket-streams.md):
- combined connections wrap each event as ``{"stream": "<name>", "data": <payload>}``,
  raw connections send the payload alone; ``SET_PROPERTY combined`` switches;
- live ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` /
  ``GET_PROPERTY`` requests, answered ``{"result": ..., "id": ...}`` or
  ``{"error": {"code": ..., "msg": ...}, "id": ...}``;
- at most 1024 streams per connection; a URL naming more, or naming a stream outside
  Binance's grammar, is refused at the handshake with HTTP 400 "Invalid request";
  ``SUBSCRIBE`` to an invalid stream is answered with error code 2 "Invalid request:
  invalid stream" and the connection is closed (observed Binance behaviour);
- the server answers client pings with pongs, pings every ``ping_interval`` seconds
  and drops a connection that sent no pong for ``pong_timeout`` seconds.

A client that does not read its events is disconnected once ``max_queue`` frames
are waiting (close code 1008), so a stuck client cannot grow the simulator's memory.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Iterable

import orjson
import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from ._errors import StreamNameError
from ._streams import MAX_STREAMS, Stream, parse_stream, split_streams

_log = structlog.get_logger("exchange_sim.ws")
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_ID_TEXT = re.compile(r"^[A-Za-z0-9]{1,36}$")


class Connection:
    """One client connection: its streams and a bounded queue of outgoing frames."""

    def __init__(self, ws: web.WebSocketResponse, combined: bool, max_queue: int) -> None:
        self.ws = ws
        self.combined = combined
        self.streams: dict[str, Stream] = {}
        self.last_pong = time.monotonic()
        self._frames: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self._max_queue = max_queue
        self._closing = False
        self.overflowed = False

    def push(self, frame: bytes) -> None:
        """Queue one text frame; on overflow the connection is marked and closed."""
        if self.overflowed or self._closing:
            return
        if len(self._frames) >= self._max_queue:
            self.overflowed = True
            self._frames.clear()
        else:
            self._frames.append(frame)
        self._ready.set()

    def close_after_flush(self) -> None:
        """Close the connection once the frames queued so far are sent."""
        self._closing = True
        self._ready.set()

    async def write_loop(self) -> None:
        """Send queued frames in order until the connection closes."""
        while not self.ws.closed:
            await self._ready.wait()
            self._ready.clear()
            if self.overflowed:
                _log.warning("slow_consumer_disconnected", streams=len(self.streams))
                await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"slow consumer")
                return
            while self._frames and not self.ws.closed:
                await self.ws.send_frame(self._frames.popleft(), WSMsgType.TEXT)
            if self._closing:
                await self.ws.close()
                return


class StreamHub:
    """Who listens to which stream; fans each encoded event out to its listeners.

    ``active`` maps each replayed symbol with listeners to the kline intervals and
    ticker its listeners want; the replay loop reads it on every tick.
    """

    def __init__(self, replayed: Iterable[str]) -> None:
        self._replayed = set(replayed)
        self._listeners: dict[str, set[Connection]] = {}
        self.active: dict[str, dict[str, int]] = {}
        self.connections: set[Connection] = set()

    def _key(self, stream: Stream) -> tuple[str, str] | None:
        symbol = stream.symbol
        if stream.kind == "silent" or symbol is None or symbol != symbol.lower():
            return None
        if symbol.upper() not in self._replayed:
            return None
        feed = stream.interval if stream.kind == "kline" and stream.interval else "ticker"
        return symbol.upper(), feed

    def subscribe(self, conn: Connection, streams: Iterable[Stream]) -> None:
        silent = []
        for stream in streams:
            if stream.name in conn.streams:
                continue
            conn.streams[stream.name] = stream
            self._listeners.setdefault(stream.name, set()).add(conn)
            key = self._key(stream)
            if key is None:
                silent.append(stream.name)
                continue
            feeds = self.active.setdefault(key[0], {})
            feeds[key[1]] = feeds.get(key[1], 0) + 1
        if silent:
            _log.info("silent_streams", count=len(silent), first=silent[:5])

    def unsubscribe(self, conn: Connection, names: Iterable[str]) -> None:
        for name in names:
            stream = conn.streams.pop(name, None)
            if stream is None:
                continue
            listeners = self._listeners.get(name)
            if listeners is not None:
                listeners.discard(conn)
                if not listeners:
                    del self._listeners[name]
            key = self._key(stream)
            if key is None:
                continue
            feeds = self.active[key[0]]
            feeds[key[1]] -= 1
            if feeds[key[1]] == 0:
                del feeds[key[1]]
                if not feeds:
                    del self.active[key[0]]

    def drop(self, conn: Connection) -> None:
        self.unsubscribe(conn, list(conn.streams))
        self.connections.discard(conn)

    def publish(self, name: str, data: bytes) -> None:
        """Send one event payload to every listener of stream ``name``."""
        listeners = self._listeners.get(name)
        if not listeners:
            return
        envelope = None
        for conn in listeners:
            if conn.combined:
                if envelope is None:
                    envelope = b'{"stream":"' + name.encode() + b'","data":' + data + b"}"
                conn.push(envelope)
            else:
                conn.push(data)


class WebSocketEndpoint:
    """aiohttp handlers for ``/stream`` and ``/ws``."""

    def __init__(
        self,
        hub: StreamHub,
        *,
        ping_interval: float = 20.0,
        pong_timeout: float = 60.0,
        max_queue: int = 50_000,
    ) -> None:
        self.hub = hub
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_queue = max_queue

    async def combined(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, split_streams(request.query.get("streams", "")), True)

    async def raw(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, split_streams(request.match_info.get("streams", "")), False)

    async def _serve(self, request: web.Request, names: list[str], combined: bool) -> web.StreamResponse:
        try:
            streams = [parse_stream(name) for name in dict.fromkeys(names)]
        except StreamNameError as exc:
            _log.info("handshake_refused", reason=str(exc))
            return web.Response(status=400, text="Invalid request")
        if len(streams) > MAX_STREAMS:
            _log.info("handshake_refused", reason=f"{len(streams)} streams > {MAX_STREAMS}")
            return web.Response(status=400, text="Invalid request")
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Connection(ws, combined, self.max_queue)
        self.hub.connections.add(conn)
        self.hub.subscribe(conn, streams)
        writer = asyncio.create_task(conn.write_loop())
        pinger = asyncio.create_task(self._ping_loop(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._control(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.last_pong = time.monotonic()
                elif msg.type == WSMsgType.BINARY:
                    self._error(conn, None, 3, "Invalid JSON: expected value at line 1 column 1")
        finally:
            self.hub.drop(conn)
            for task in (writer, pinger):
                task.cancel()
            await asyncio.gather(writer, pinger, return_exceptions=True)
        return ws

    async def _ping_loop(self, conn: Connection) -> None:
        while not conn.ws.closed:
            await asyncio.sleep(self.ping_interval)
            if time.monotonic() - conn.last_pong > self.pong_timeout:
                _log.info("pong_timeout_disconnect")
                await conn.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"pong timeout")
                return
            await conn.ws.ping(str(int(time.time() * 1000)).encode())

    @staticmethod
    def _reply(conn: Connection, request_id: object, result: object) -> None:
        conn.push(orjson.dumps({"result": result, "id": request_id}))

    @staticmethod
    def _error(conn: Connection, request_id: object, code: int, msg: str) -> None:
        conn.push(orjson.dumps({"error": {"code": code, "msg": msg}, "id": request_id}))

    async def _control(self, conn: Connection, text: str) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self._error(conn, None, 3, f"Invalid JSON: {exc}")
            return
        if not isinstance(request, dict):
            self._error(conn, None, 2, "Invalid request: expected an object")
            return
        request_id = request.get("id")
        valid_id = (
            request_id is None
            or (isinstance(request_id, int) and not isinstance(request_id, bool))
            or (isinstance(request_id, str) and _ID_TEXT.match(request_id))
        )
        if not valid_id:
            self._error(conn, None, 2, "Invalid request: request ID must be an unsigned integer")
            return
        method = request.get("method")
        if method is None:
            self._error(conn, request_id, 2, "Invalid request: missing field `method`")
            return
        if method not in _METHODS:
            expected = ", ".join(f"`{m}`" for m in _METHODS)
            self._error(conn, request_id, 2, f"Invalid request: unknown variant `{method}`, expected one of {expected}")
            return
        params = request.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            await self._subscription(conn, request_id, method, params)
        elif method == "LIST_SUBSCRIPTIONS":
            self._reply(conn, request_id, list(conn.streams))
        else:
            self._property(conn, request_id, method, params)

    async def _subscription(self, conn: Connection, request_id: object, method: str, params: object) -> None:
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            self._error(conn, request_id, 2, "Invalid request: invalid stream")
            return
        if method == "UNSUBSCRIBE":
            self.hub.unsubscribe(conn, params)
            self._reply(conn, request_id, None)
            return
        try:
            streams = [parse_stream(name) for name in dict.fromkeys(params)]
        except StreamNameError:
            self._error(conn, request_id, 2, "Invalid request: invalid stream")
            conn.close_after_flush()
            return
        if len(set(conn.streams) | {s.name for s in streams}) > MAX_STREAMS:
            self._error(conn, request_id, 2, f"Invalid request: too many streams (max {MAX_STREAMS})")
            return
        self.hub.subscribe(conn, streams)
        self._reply(conn, request_id, None)

    def _property(self, conn: Connection, request_id: object, method: str, params: object) -> None:
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            self._error(conn, request_id, 2, "Invalid request: property name must be a string")
            return
        if params[0] != "combined":
            self._error(conn, request_id, 0, "Unknown property")
            return
        if method == "GET_PROPERTY":
            self._reply(conn, request_id, conn.combined)
            return
        if len(params) != 2 or not isinstance(params[1], bool):
            self._error(conn, request_id, 1, "Invalid value type: expected Boolean")
            return
        conn.combined = params[1]
        self._reply(conn, request_id, None)
