"""Local Binance spot market-data simulator replaying real recorded 1m klines.

Serves Binance's wire protocol on localhost (REST ``/api/v3/...``, WebSocket
``/stream?streams=...`` and ``/ws/<stream>``) on a replay clock; see README.md.
"""

from ._errors import BinanceAPIError, ExchangeSimError, ReplayDataError, StreamNameError
from ._server import DEFAULT_START_MS, Simulator
from ._thread import SimulatorThread

__all__ = [
    "DEFAULT_START_MS",
    "BinanceAPIError",
    "ExchangeSimError",
    "ReplayDataError",
    "Simulator",
    "SimulatorThread",
    "StreamNameError",
]
