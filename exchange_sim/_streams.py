"""Binance spot market stream names (binance-spot-api-docs, web-socket-streams.md).

The grammar of every public spot market stream is accepted, as Binance accepts it;
only two kinds carry data here:

- ``<symbol>@kline_<interval>`` (every interval of :mod:`._intervals`);
- ``<symbol>@ticker`` (24hrTicker).

A well-formed name of another kind (``@trade``, ``@depth``...), of ``kline_1s``, or
for a symbol that is not replayed (including upper-case symbols: Binance stream
symbols are lower case) is accepted and stays silent, which is what Binance does for
a well-formed stream without data. A name outside the grammar is rejected
(:class:`StreamNameError`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import StreamNameError
from ._intervals import is_interval

#: "A single connection can listen to a maximum of 1024 streams." (WebSocket Limits)
MAX_STREAMS = 1024

_SYMBOL = r"[A-Za-z0-9_.-]{1,30}"
_KLINE = re.compile(rf"^({_SYMBOL})@kline_([0-9]{{1,2}}[smhdwM])(@[+-]\d{{2}}:\d{{2}})?$")
_TICKER = re.compile(rf"^({_SYMBOL})@ticker$")
_OTHER_SYMBOL = re.compile(
    rf"^{_SYMBOL}@(aggTrade|trade|miniTicker|bookTicker|avgPrice|ticker_(1h|4h|1d)"
    r"|depth(5|10|20)?(@100ms|@1000ms)?|rpiDepth(@500ms)?)$"
)
_OTHER_ALL = re.compile(r"^!(miniTicker@arr|ticker@arr|ticker_(1h|4h|1d)@arr|bookTicker)$")


@dataclass(frozen=True, slots=True)
class Stream:
    """A parsed stream name.

    Attributes:
        name: the name as sent (the ``"stream"`` key of the combined envelope).
        kind: ``"kline"``, ``"ticker"``, or ``"silent"`` (valid, never carries data).
        symbol: the symbol as written in the name (lower case when valid).
        interval: the kline interval, for ``kind == "kline"``.
    """

    name: str
    kind: str
    symbol: str | None = None
    interval: str | None = None


def parse_stream(name: str) -> Stream:
    """Parse one stream name. Raises StreamNameError if Binance would reject it."""
    if not isinstance(name, str):
        raise StreamNameError(f"stream name must be a string: {name!r}")
    match = _KLINE.match(name)
    if match is not None:
        symbol, interval, offset = match.group(1), match.group(2), match.group(3)
        if interval == "1s":
            return Stream(name, "silent", symbol, interval)
        if not is_interval(interval):
            raise StreamNameError(f"unknown kline interval in {name!r}")
        if offset is not None and offset not in ("@+00:00", "@-00:00"):
            return Stream(name, "silent", symbol, interval)  # time-zone shifted klines
        return Stream(name, "kline", symbol, interval)
    match = _TICKER.match(name)
    if match is not None:
        return Stream(name, "ticker", match.group(1))
    if _OTHER_SYMBOL.match(name) or _OTHER_ALL.match(name):
        return Stream(name, "silent")
    raise StreamNameError(f"invalid stream name {name!r}")


def split_streams(text: str) -> list[str]:
    """The stream names of ``/stream?streams=a/b/c`` or ``/ws/a/b`` (empty parts dropped)."""
    return [part for part in text.split("/") if part]
