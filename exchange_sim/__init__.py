"""Local Binance spot exchange simulator replaying real recorded 1m klines.

Serves Binance's wire protocol on localhost (REST ``/api/v3/...``, WebSocket
``/stream?streams=...`` and ``/ws/<stream>``, the WebSocket API ``/ws-api/v3``) on a
replay clock, with spot accounts, faults and a log for tests; see README.md.
"""

from ._errors import BinanceAPIError, ExchangeSimError, ReplayDataError, StreamNameError
from ._faults import Fault
from ._book import Fees
from ._signing import ApiKey
from ._server import DEFAULT_START_MS, Simulator
from ._thread import SimulatorThread

__all__ = [
    "DEFAULT_START_MS",
    "BinanceAPIError",
    "ExchangeSimError",
    "Fault",
    "Fees",
    "ApiKey",
    "ReplayDataError",
    "Simulator",
    "SimulatorThread",
    "StreamNameError",
]
