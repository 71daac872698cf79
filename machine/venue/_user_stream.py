"""The account's user data stream on Binance's WebSocket API (aiohttp).

Protocol (Binance spot API docs, ``web-socket-api.md`` "User Data Stream requests" and
``user-data-stream.md``): connect to ``<ws_api_url>`` (``wss://ws-api.binance.com:443/ws-api/v3``),
send ``{"id", "method": "userDataStream.subscribe.signature", "params": {"apiKey", "timestamp",
"signature"}}`` (HMAC-SHA256 hex of the other parameters sorted by name as ``name=value`` joined by
``&``); the answer carries a ``subscriptionId`` and every event then arrives as
``{"subscriptionId", "event": {...}}``. There are no sequence numbers, so nothing tells what a
dropped connection missed: after every (re)subscription the stream buffers its events, asks for a
snapshot (``on_resync``: the machine reconciles the account over REST), and only then hands the
buffered events on, in order. ``eventStreamTerminated`` or a dropped connection is followed by a
new connection and subscription, with capped exponential backoff and jitter: this client owns its
resubscription.

A frame that is not JSON or not an event is counted and dropped. The API secret signs in memory
and is never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
import orjson
import structlog

from machine.credentials import ExchangeCredentials

__all__ = ["DEFAULT_WS_API_URL", "UserStream"]

DEFAULT_WS_API_URL: Final = "wss://ws-api.binance.com:443/ws-api/v3"
log = structlog.get_logger(__name__)

OnEvent = Callable[[dict[str, Any]], Awaitable[None]]


class UserStream:
    """The subscriber's user data stream (module doc).

    Args:
        url: the WebSocket API URL.
        credentials: the account's keys (HMAC).
        on_event: called with each event (``executionReport``, ``listStatus``,
            ``outboundAccountPosition``, ...), in the order they arrived.
        on_resync: the snapshot taken after every subscription, before the buffered events go on.
        clock_ms: the exchange's clock as the machine knows it (ms since the epoch), for ``timestamp``.
        recv_window_ms: ``recvWindow`` of the subscription request.
        backoff_initial_s, backoff_max_s: reconnect delay ``min(max, initial * 2**n)`` with jitter.
    """

    def __init__(self, url: str, credentials: ExchangeCredentials, on_event: OnEvent,
                 on_resync: Callable[[], Awaitable[Any]], *, clock_ms: Callable[[], int] | None = None,
                 recv_window_ms: int = 5000, backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        self._url = url
        self._credentials = credentials
        self._on_event = on_event
        self._on_resync = on_resync
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._recv_window_ms = recv_window_ms
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.connected = False
        self.subscriptions = 0
        self.reconnects = 0
        self.events = 0
        self.malformed = 0
        self.resyncs = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------ lifecycle
    async def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe (the first snapshot is taken then); returns once subscribed or after
        ``timeout_s`` (it keeps trying in the background)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="user-data-stream")
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout_s)
        except asyncio.TimeoutError:
            log.warning("user_stream_not_subscribed", error=self.last_error)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.connected = False

    def stats(self) -> dict[str, Any]:
        """For ``/health`` and ``/metrics``."""
        return {"connected": self.connected, "subscriptions": self.subscriptions, "reconnects": self.reconnects,
                "events": self.events, "malformed": self.malformed, "resyncs": self.resyncs,
                "lastError": self.last_error}

    # ------------------------------------------------------------ the connection
    def _subscribe_request(self) -> dict[str, Any]:
        params: dict[str, Any] = {"apiKey": self._credentials.api_key, "recvWindow": self._recv_window_ms,
                                  "timestamp": self._clock_ms()}
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        params["signature"] = hmac.new(self._credentials.api_secret.encode(), payload.encode(),
                                       hashlib.sha256).hexdigest()
        return {"id": f"subscribe-{self.subscriptions + self.reconnects + 1}",
                "method": "userDataStream.subscribe.signature", "params": params}

    async def _run(self) -> None:
        failures = 0
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    await self._connection(session)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a refused subscription, a dropped connection: dial again
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    failures += 1
                self.connected = False
                self.reconnects += 1
                delay = min(self._backoff_max_s, self._backoff_initial_s * 2 ** max(0, failures - 1))
                log.warning("user_stream_reconnecting", delay_s=round(delay, 2), error=self.last_error)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _connection(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(self._url, heartbeat=20.0) as ws:
            request = self._subscribe_request()
            await ws.send_str(orjson.dumps(request).decode())  # a text frame, as the WebSocket API reads
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # events, held until the snapshot is taken
            consumer: asyncio.Task[None] | None = None
            try:
                async for message in ws:
                    if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        break
                    try:
                        frame = orjson.loads(message.data)
                    except orjson.JSONDecodeError:
                        self.malformed += 1
                        continue
                    if not isinstance(frame, dict):
                        self.malformed += 1
                    elif frame.get("id") == request["id"]:
                        if frame.get("status") != 200:
                            error = frame.get("error") or {}
                            raise ConnectionError(f"subscription refused: {error.get('code')} {error.get('msg')}")
                        self.connected = True
                        self.subscriptions += 1
                        consumer = asyncio.create_task(self._consume(queue), name="user-data-events")
                    elif not isinstance(frame.get("event"), dict) or not isinstance(frame["event"].get("e"), str):
                        self.malformed += 1
                    elif frame["event"]["e"] == "eventStreamTerminated":
                        self.events += 1
                        raise ConnectionError("the exchange ended the subscription (eventStreamTerminated)")
                    else:
                        self.events += 1
                        queue.put_nowait(frame["event"])
                raise ConnectionError("the connection closed")
            finally:
                if consumer is not None:  # what it had not handed on, the next snapshot covers
                    consumer.cancel()
                    await asyncio.gather(consumer, return_exceptions=True)

    async def _consume(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Snapshot first (module doc), then every event in arrival order."""
        try:
            await self._on_resync()
        except Exception as exc:  # the periodic reconciliation catches up
            log.warning("user_stream_resync_failed", error=str(exc))
        self.resyncs += 1
        self._subscribed.set()
        while True:
            await self._deliver(await queue.get())

    async def _deliver(self, event: dict[str, Any]) -> None:
        try:
            await self._on_event(event)
        except Exception as exc:  # one event's handling never ends the stream
            log.warning("user_event_failed", event_type=event.get("e"), error=str(exc))
