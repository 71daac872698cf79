"""Execution errors.

Hierarchy::

    ExecutionError
    ├── NoPrice          no market price to fill at (retry later)
    │   └── StalePrice   the last price is older than PRICE_MAX_AGE_S (retry later)
    ├── RiskDenied       the risk gate refused the order (an event, not a failure)
    ├── OrderRejected    the exchange refused the order: nothing happened (``code``, ``msg``)
    │   └── RateLimited  refused for the request rate (HTTP 429/418): retry after ``retry_after_s``
    └── OutcomeUnknown   sent, but whether it was carried out is unknown (a timeout, a cut
                         connection, a 5xx or -1007): resolved by querying its client order
                         id, never by sending it again
"""

from __future__ import annotations

__all__ = ["ExecutionError", "NoPrice", "OrderRejected", "OutcomeUnknown", "RateLimited", "RiskDenied", "StalePrice"]


class ExecutionError(Exception):
    """Root of execution errors."""


class NoPrice(ExecutionError):
    """No last price is known for the symbol."""


class StalePrice(NoPrice):
    """The symbol's last price is too old to fill at; the order waited and was not sent."""


class RiskDenied(ExecutionError):
    """The risk gate refused the order; ``reason`` is stored with the decision."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OrderRejected(ExecutionError):
    """The exchange refused the order (Binance ``code`` and ``msg``); it was not carried out."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code, self.msg = code, msg


class RateLimited(OrderRejected):
    """Refused for the request rate (HTTP 429, or 418 when banned); ``retry_after_s`` from ``Retry-After``."""

    def __init__(self, code: int, msg: str, retry_after_s: float) -> None:
        super().__init__(code, msg)
        self.retry_after_s = retry_after_s


class OutcomeUnknown(ExecutionError):
    """The order was sent and may or may not have been carried out (module doc)."""
