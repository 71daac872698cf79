"""REST market-data endpoints under ``/api/v3`` (binance-spot-api-docs, rest-api.md).

Served: ``ping``, ``time``, ``exchangeInfo``, ``klines``, ``ticker/24hr``,
``ticker/price``. "Now" is the replay clock everywhere. Errors use Binance's codes
and texts (errors.md) with HTTP 400: -1100 illegal characters, -1101 invalid
parameter combination, -1102 mandatory parameter missing, -1120 invalid interval,
-1121 invalid symbol, -1023 start time after end time.

Every response carries ``X-MBX-USED-WEIGHT-1M`` (and the older ``X-MBX-USED-WEIGHT``):
the request weight used by the client's IP in the current wall-clock minute, with
Binance's current weights (klines 2; ticker/24hr 2 for one symbol, 2/40/80 for 1-20/
21-100/more ``symbols``, 80 for all; ticker/price 2, 4 for several; exchangeInfo 20;
ping and time 1). Limits are reported, not enforced (no 429).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence

import orjson
from aiohttp import web

from ._candles import rest_kline
from ._errors import BinanceAPIError
from ._exchange_info import ExchangeInfo
from ._history import MarketHistory
from ._intervals import is_interval
from ._replay import ReplayClock
from ._ticker import TickerCalculator, TickerStats

_SYMBOL = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
_SYMBOLS = re.compile(r'^\[("[A-Z0-9\-_.]{1,20}"(,"[A-Z0-9\-_.]{1,20}")*)?\]$')
_INT = re.compile(r"^[0-9]{1,20}$")
_SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
MAX_KLINES = 1000
DEFAULT_KLINES = 500

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: object, weight_used: int) -> web.Response:
    response = web.Response(body=orjson.dumps(body), content_type="application/json")
    response.headers["X-MBX-USED-WEIGHT"] = str(weight_used)
    response.headers["X-MBX-USED-WEIGHT-1M"] = str(weight_used)
    return response


def _mandatory(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    if not value:
        raise BinanceAPIError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _symbol_param(value: str, name: str = "symbol") -> str:
    if not _SYMBOL.match(value):
        raise BinanceAPIError(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[A-Z0-9-_.]{{1,20}}$'."
        )
    return value


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if not _INT.match(value):
        raise BinanceAPIError(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        )
    return int(value)


def _symbols_param(value: str) -> list[str]:
    compact = value.replace(" ", "")
    if not _SYMBOLS.match(compact):
        raise BinanceAPIError(
            -1100, f"Illegal characters found in parameter 'symbols'; legal range is '{_SYMBOLS_RANGE}'."
        )
    return list(orjson.loads(compact))


class WeightCounter:
    """Request weight per client IP in the current wall-clock minute."""

    def __init__(self) -> None:
        self._used: dict[str, tuple[int, int]] = {}

    def add(self, client: str, weight: int) -> int:
        minute = int(time.time() // 60)
        last_minute, used = self._used.get(client, (minute, 0))
        used = (used if last_minute == minute else 0) + weight
        self._used[client] = (minute, used)
        return used


class RestApi:
    """The aiohttp handlers of the REST API."""

    def __init__(
        self,
        history: MarketHistory,
        tickers: TickerCalculator,
        exchange_info: ExchangeInfo,
        clock: ReplayClock,
        symbols: Sequence[str],
    ) -> None:
        self._history = history
        self._tickers = tickers
        self._info = exchange_info
        self._clock = clock
        self.server_time: Callable[[], int] | None = None  # the server time /time reports, when not the clock
        self._symbols = list(symbols)
        self._replayed = set(symbols)
        self.weights = WeightCounter()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v3/ping", self._wrap(self.ping, 1)),
            web.get("/api/v3/time", self._wrap(self.time, 1)),
            web.get("/api/v3/exchangeInfo", self._wrap(self.exchange_info, 20)),
            web.get("/api/v3/klines", self._wrap(self.klines, 2)),
            web.get("/api/v3/ticker/24hr", self._wrap(self.ticker_24hr, None)),
            web.get("/api/v3/ticker/price", self._wrap(self.ticker_price, None)),
        ]

    def _wrap(self, handler: Callable[[web.Request], tuple[object, int | None]], weight: int | None) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            client = request.remote or "?"
            try:
                body, dynamic_weight = handler(request)
            except BinanceAPIError as exc:
                used = self.weights.add(client, weight or 1)
                response = _json({"code": exc.code, "msg": exc.msg}, used)
                response.set_status(exc.status)
                return response
            used = self.weights.add(client, dynamic_weight if dynamic_weight is not None else weight or 1)
            return _json(body, used)

        return handle

    def _replayed_symbol(self, value: str, name: str = "symbol") -> str:
        symbol = _symbol_param(value, name)
        if symbol not in self._replayed:
            raise BinanceAPIError(-1121, "Invalid symbol.")
        return symbol

    # ----- endpoints (each returns (body, weight or None for the route's weight)) -----

    def ping(self, request: web.Request) -> tuple[object, int | None]:
        return {}, None

    def time(self, request: web.Request) -> tuple[object, int | None]:
        """``GET /api/v3/time``: the replay clock, plus the ``clock_offset_ms`` fault when set."""
        return {"serverTime": self.server_time() if self.server_time else self._clock.now_ms()}, None

    def exchange_info(self, request: web.Request) -> tuple[object, int | None]:
        query = request.query
        if "symbol" in query and "symbols" in query:
            raise BinanceAPIError(-1101, "Combination of optional parameters invalid.")
        selected: list[str] | None = None
        if query.get("symbol"):
            selected = [_symbol_param(query["symbol"])]
        elif query.get("symbols"):
            selected = _symbols_param(query["symbols"])
        status = query.get("symbolStatus") or None
        if status is not None and selected is not None:
            raise BinanceAPIError(-1101, "Combination of optional parameters invalid.")
        return self._info.response(self._clock.now_ms(), selected, status), None

    def klines(self, request: web.Request) -> tuple[object, int | None]:
        symbol = _mandatory(request, "symbol")
        interval = _mandatory(request, "interval")
        symbol = self._replayed_symbol(symbol)
        if not is_interval(interval):
            raise BinanceAPIError(-1120, "Invalid interval.")
        start = _int_param(request, "startTime")
        end = _int_param(request, "endTime")
        limit = _int_param(request, "limit")
        if start is not None and end is not None and start > end:
            raise BinanceAPIError(-1023, "Start time is greater than end time.")
        limit = DEFAULT_KLINES if limit is None else max(1, min(limit, MAX_KLINES))
        rows = self._history.klines(symbol, interval, self._clock.now_ms(), start=start, end=end, limit=limit)
        return [rest_kline(row) for row in rows], None

    def _stats(self, symbol: str, now: int) -> TickerStats:
        stats = self._tickers.compute(symbol, now)
        if stats is None:  # no data yet at this replay time
            stats = TickerStats(symbol, now - 86_400_000, now, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
        return stats

    def _selection(self, request: web.Request) -> tuple[list[str] | None, int]:
        """(symbols or None for one symbol..., weight) of ticker requests."""
        query = request.query
        if "symbol" in query and "symbols" in query:
            raise BinanceAPIError(-1101, "Combination of optional parameters invalid.")
        if query.get("symbols"):
            symbols = [self._replayed_symbol(s, "symbols") for s in _symbols_param(query["symbols"])]
            return symbols, len(symbols)
        return None, 0

    def ticker_24hr(self, request: web.Request) -> tuple[object, int | None]:
        kind = request.query.get("type", "FULL")
        if kind not in ("FULL", "MINI"):
            raise BinanceAPIError(-1100, "Illegal characters found in parameter 'type'; legal range is 'FULL, MINI'.")
        full = kind == "FULL"
        now = self._clock.now_ms()
        if request.query.get("symbol"):
            symbol = self._replayed_symbol(request.query["symbol"])
            return self._stats(symbol, now).rest(full), 2
        symbols, count = self._selection(request)
        if symbols is None:
            return [self._stats(s, now).rest(full) for s in self._symbols], 80
        weight = 2 if count <= 20 else 40 if count <= 100 else 80
        return [self._stats(s, now).rest(full) for s in dict.fromkeys(symbols)], weight

    def ticker_price(self, request: web.Request) -> tuple[object, int | None]:
        now = self._clock.now_ms()
        if request.query.get("symbol"):
            symbol = self._replayed_symbol(request.query["symbol"])
            return {"symbol": symbol, "price": f"{self._stats(symbol, now).last:.8f}"}, 2
        symbols, _ = self._selection(request)
        chosen = self._symbols if symbols is None else list(dict.fromkeys(symbols))
        return [{"symbol": s, "price": f"{self._stats(s, now).last:.8f}"} for s in chosen], 4
