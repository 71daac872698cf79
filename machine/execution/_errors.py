"""Execution errors.

Hierarchy::

    ExecutionError
    ├── NoPrice          no market price to fill at (retry later)
    │   └── StalePrice   the last price is older than PRICE_MAX_AGE_S (retry later)
    └── RiskDenied       the risk gate refused the order (an event, not a failure)
"""

from __future__ import annotations

__all__ = ["ExecutionError", "NoPrice", "RiskDenied", "StalePrice"]


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
