"""Binance wire format -> typed events (stream messages and REST market data).

Sources (Binance Spot API docs):
- "WebSocket Streams" -> "General WSS information": a combined stream wraps each
  event as ``{"stream": "<streamName>", "data": <rawPayload>}``.
- "Kline/Candlestick Streams": ``{"e": "kline", "E", "s", "k": {"t", "T", "s", "i",
  "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", ...}}``; numbers other than
  times and ``n`` are strings.
- "Individual Symbol Ticker Streams": ``{"e": "24hrTicker", "E", "s", "p", "P",
  "c", "o", "h", "l", "v", "q", ...}``.
- REST "Kline/Candlestick data": a list of 12-element lists (open time, open,
  high, low, close, volume, close time, quote volume, trades, taker buy base
  volume, taker buy quote volume, ignore).
- REST "24hr ticker price change statistics": ``lastPrice``, ``openPrice``, ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import orjson

from ._errors import MalformedMessage
from ._events import KlineEvent, TickerEvent

__all__ = [
    "parse_stream_message",
    "kline_event_from_payload",
    "ticker_event_from_payload",
    "klines_to_array",
    "ticker_from_rest",
]

_KLINE_KEYS = ("t", "o", "h", "l", "c", "v", "T", "q", "n", "V", "Q")
_TICKER_KEYS = ("c", "o", "h", "l", "v", "q", "p", "P")
_REST_TICKER_KEYS = (
    "lastPrice",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "priceChange",
    "priceChangePercent",
)


def _float(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise MalformedMessage(f"{field}: expected a number, got {value!r}")
    try:
        out = float(value)
    except ValueError:
        raise MalformedMessage(f"{field}: not a number: {value!r}") from None
    if not math.isfinite(out):
        raise MalformedMessage(f"{field}: not finite: {value!r}")
    return out


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedMessage(f"{field}: expected an integer, got {value!r}")
    return value


def _decimal(value: Any, field: str) -> Decimal:
    if not isinstance(value, str):
        raise MalformedMessage(f"{field}: expected a decimal string, got {value!r}")
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise MalformedMessage(f"{field}: not a decimal: {value!r}") from None
    if not out.is_finite():
        raise MalformedMessage(f"{field}: not finite: {value!r}")
    return out


def _symbol(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.isalnum():
        raise MalformedMessage(f"{field}: expected a symbol, got {value!r}")
    return value.upper()


def kline_event_from_payload(data: Mapping[str, Any]) -> KlineEvent:
    """Parse a kline stream payload (the ``data`` of the combined-stream envelope).

    Raises:
        MalformedMessage: a field is missing or has the wrong type.
    """
    k = data.get("k")
    if not isinstance(k, Mapping):
        raise MalformedMessage("kline event without a 'k' object")
    try:
        raw = [k[key] for key in _KLINE_KEYS]
        closed = k["x"]
        interval = k["i"]
        symbol = k.get("s", data.get("s"))
        event_time = data["E"]
    except KeyError as exc:
        raise MalformedMessage(f"kline event without field {exc.args[0]!r}") from None
    if not isinstance(closed, bool):
        raise MalformedMessage(f"k.x: expected a bool, got {closed!r}")
    if not isinstance(interval, str):
        raise MalformedMessage(f"k.i: expected an interval, got {interval!r}")
    _int(raw[0], "k.t")
    _int(raw[6], "k.T")
    _int(raw[8], "k.n")
    row = tuple(_float(v, f"k.{key}") for key, v in zip(_KLINE_KEYS, raw))
    return KlineEvent(
        symbol=_symbol(symbol, "k.s"),
        interval=interval,
        row=row,
        closed=closed,
        event_time_ms=_int(event_time, "E"),
        close_price=_decimal(k["c"], "k.c"),
    )


def ticker_event_from_payload(data: Mapping[str, Any]) -> TickerEvent:
    """Parse a ``24hrTicker`` stream payload.

    Raises:
        MalformedMessage: a field is missing or has the wrong type.
    """
    try:
        raw = [data[key] for key in _TICKER_KEYS]
        event_time = _int(data["E"], "E")
        symbol = _symbol(data["s"], "s")
    except KeyError as exc:
        raise MalformedMessage(f"ticker event without field {exc.args[0]!r}") from None
    values = tuple(_float(v, key) for key, v in zip(_TICKER_KEYS, raw)) + (float(event_time),)
    return TickerEvent(symbol=symbol, values=values, last_price=_decimal(data["c"], "c"), event_time_ms=event_time)


def parse_stream_message(raw: str | bytes) -> KlineEvent | TickerEvent | None:
    """Parse one combined-stream message.

    Returns:
        The event, or None for a well-formed message that carries no market event
        (a ``SUBSCRIBE`` answer ``{"result": null, "id": 1}``, another event type).

    Raises:
        MalformedMessage: not JSON, not the ``{"stream", "data"}`` envelope, or an
            event with missing or mistyped fields.
    """
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(msg).__name__}")
    if "stream" not in msg:
        if "id" in msg and ("result" in msg or "error" in msg):
            return None
        raise MalformedMessage("message without 'stream'")
    data = msg.get("data")
    if not isinstance(msg["stream"], str) or not isinstance(data, dict):
        raise MalformedMessage("combined-stream envelope without a 'data' object")
    kind = data.get("e")
    if kind == "kline":
        return kline_event_from_payload(data)
    if kind == "24hrTicker":
        return ticker_event_from_payload(data)
    if not isinstance(kind, str):
        raise MalformedMessage("event without an 'e' type")
    return None


def klines_to_array(payload: Any) -> np.ndarray:
    """REST ``/api/v3/klines`` answer -> float64 array of shape ``(n, 11)``, oldest first.

    The 12th column (``ignore``) is dropped.

    Raises:
        MalformedMessage: not a list of kline lists, a non-numeric value, or open
            times not strictly increasing.
    """
    if not isinstance(payload, list):
        raise MalformedMessage(f"klines: expected a list, got {type(payload).__name__}")
    out = np.empty((len(payload), 11), dtype=np.float64)
    for i, row in enumerate(payload):
        if not isinstance(row, list) or len(row) < 11:
            raise MalformedMessage(f"klines[{i}]: expected a list of at least 11 values, got {row!r}")
        _int(row[0], f"klines[{i}][0]")
        for j in range(11):
            out[i, j] = _float(row[j], f"klines[{i}][{j}]")
    if len(payload) > 1 and np.any(np.diff(out[:, 0]) <= 0):
        raise MalformedMessage("klines: open times not strictly increasing")
    return out


def ticker_from_rest(payload: Any) -> TickerEvent:
    """REST ``/api/v3/ticker/24hr?symbol=...`` answer -> :class:`TickerEvent`.

    The event time is the statistics window's ``closeTime``.

    Raises:
        MalformedMessage: a field is missing or has the wrong type.
    """
    if not isinstance(payload, dict):
        raise MalformedMessage(f"ticker: expected an object, got {type(payload).__name__}")
    try:
        raw = [payload[key] for key in _REST_TICKER_KEYS]
        close_time = _int(payload["closeTime"], "closeTime")
        symbol = _symbol(payload["symbol"], "symbol")
    except KeyError as exc:
        raise MalformedMessage(f"ticker without field {exc.args[0]!r}") from None
    values = tuple(_float(v, key) for key, v in zip(_REST_TICKER_KEYS, raw)) + (float(close_time),)
    return TickerEvent(
        symbol=symbol,
        values=values,
        last_price=_decimal(payload["lastPrice"], "lastPrice"),
        event_time_ms=close_time,
    )
