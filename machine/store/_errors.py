"""Errors of the kline store.

Hierarchy (one root, named by what the caller must do)::

    StoreError                 root: every error this package raises
    ├── UnknownSymbol          the symbol is not in the store's universe: fix the caller
    ├── UnknownInterval        not a Binance kline interval: fix the caller
    ├── InvalidKlines          rows of the wrong shape or order: nothing was written
    └── StoreClosed            the store was closed: the machine is shutting down
"""

from __future__ import annotations

__all__ = ["StoreError", "UnknownSymbol", "UnknownInterval", "InvalidKlines", "StoreClosed"]


class StoreError(Exception):
    """Root of the store's errors."""


class UnknownSymbol(StoreError, LookupError):
    """The symbol has no slot: the universe is fixed when the store is created.

    Attributes:
        symbol: the symbol asked for (upper case).
    """

    def __init__(self, symbol: str) -> None:
        super().__init__(f"symbol {symbol!r} is not in the store's universe (fixed at start)")
        self.symbol = symbol


class UnknownInterval(StoreError, ValueError):
    """Not one of Binance's kline intervals (``1s``, ``1m`` ... ``1M``)."""

    def __init__(self, interval: str) -> None:
        super().__init__(f"{interval!r} is not a Binance kline interval")
        self.interval = interval


class InvalidKlines(StoreError, ValueError):
    """Kline rows that cannot be stored (shape, order); the slot is left unchanged."""


class StoreClosed(StoreError):
    """The store was closed and its shared memory unlinked."""
