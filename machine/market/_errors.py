"""Errors of the market data client, translated from aiohttp and python-binance at this edge.

Hierarchy (one root, named by what the caller must do)::

    MarketDataError            root: every error this package raises
    ├── MarketUnavailable      retry later: network error, timeout, HTTP 5xx, closed client
    │   └── RateLimited        HTTP 429 still returned after the retries (``retry_after_s``)
    ├── IpBanned               HTTP 418: stop every request until ``retry_after_s`` has passed
    ├── InvalidSymbol          Binance error -1121 (or an unknown symbol): fix the request
    ├── InvalidRequest         any other HTTP 4xx: a bug in the request, do not retry
    └── MalformedMessage       a message or response without Binance's documented shape

Source of the status codes: Binance Spot API docs, "General API Information" ->
"HTTP Return Codes" and "LIMITS".
"""

from __future__ import annotations

__all__ = [
    "MarketDataError",
    "MarketUnavailable",
    "RateLimited",
    "IpBanned",
    "InvalidSymbol",
    "InvalidRequest",
    "MalformedMessage",
]


class MarketDataError(Exception):
    """Root of the market data client's errors."""


class MarketUnavailable(MarketDataError):
    """The exchange could not be reached or answered 5xx: retry later."""


class RateLimited(MarketUnavailable):
    """HTTP 429 after the retries.

    Attributes:
        retry_after_s: the server's ``Retry-After`` in seconds, or None.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class IpBanned(MarketDataError):
    """HTTP 418: the IP is banned for ``retry_after_s`` seconds; send nothing until then."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InvalidSymbol(MarketDataError):
    """The exchange does not know the symbol (Binance code -1121)."""

    def __init__(self, symbol: str, message: str = "") -> None:
        super().__init__(f"invalid symbol {symbol!r}" + (f": {message}" if message else ""))
        self.symbol = symbol


class InvalidRequest(MarketDataError):
    """HTTP 4xx other than 418/429: the request is wrong; retrying will not help.

    Attributes:
        status: HTTP status; code: Binance error code (or None).
    """

    def __init__(self, message: str, status: int, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class MalformedMessage(MarketDataError):
    """A stream message or REST response that does not have Binance's shape."""
