"""Kline and ticker store of the machine: numpy ring buffers in shared memory.

See :class:`MarketStore`.
"""

from ._errors import InvalidKlines, StoreClosed, StoreError, UnknownInterval, UnknownSymbol
from ._intervals import INTERVAL_MS, check_interval
from ._store import CloseListener, KlineUpdate, MarketStore, StoreStats, TickerUpdate

__all__ = [
    "MarketStore",
    "StoreStats",
    "KlineUpdate",
    "TickerUpdate",
    "CloseListener",
    "INTERVAL_MS",
    "check_interval",
    "StoreError",
    "UnknownSymbol",
    "UnknownInterval",
    "InvalidKlines",
    "StoreClosed",
]
