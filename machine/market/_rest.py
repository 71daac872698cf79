"""Binance spot REST market data over python-binance's ``AsyncClient``.

Weights per request (Binance Spot API docs, "Market Data endpoints"):
``exchangeInfo`` 20, ``klines`` 2, ``ticker/24hr`` with one symbol 2, ``time`` 1.
Every request takes its weight from the machine's :class:`~machine.market.RequestBudget`
(shared with live orders): the ``REQUEST_WEIGHT`` limit per minute (6000 on Binance
today, updated from ``exchangeInfo.rateLimits``) times ``weight_share``. The server's
running total in the ``X-MBX-USED-WEIGHT-1M`` response header is read after every
response; when it reaches the budget, requests wait for the next minute.

Retries (tenacity): network errors, timeouts, HTTP 5xx and 429, with capped
exponential backoff and jitter; a 429 waits the ``Retry-After`` seconds and holds
every other request as well. HTTP 418 (IP banned) is never retried: every request
fails fast with :class:`IpBanned` until the ban ends. Source: Binance Spot API
docs, "LIMITS" -> "IP Limits".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import aiohttp
import numpy as np
import structlog
from binance import AsyncClient
from binance.exceptions import BinanceAPIException, BinanceRequestException
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from machine.store import check_interval

from ._budget import RequestBudget
from ._errors import (
    InvalidRequest,
    InvalidSymbol,
    IpBanned,
    MalformedMessage,
    MarketDataError,
    MarketUnavailable,
    RateLimited,
)
from ._events import SymbolInfo, TickerEvent
from ._exchange_info import parse_exchange_symbols
from ._parse import klines_to_array, ticker_from_rest

__all__ = ["BinanceRest", "DEFAULT_REST_URL"]

DEFAULT_REST_URL: Final = "https://api.binance.com"
MAX_KLINES_PER_REQUEST: Final = 1000
WEIGHT_EXCHANGE_INFO: Final = 20
WEIGHT_KLINES: Final = 2
WEIGHT_TICKER_24H: Final = 2
WEIGHT_TIME: Final = 1
_DEFAULT_BAN_S: Final = 120.0
_T = TypeVar("_T")
_log = structlog.get_logger("machine.market")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, BinanceAPIException):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, BinanceRequestException))


def _retry_after_s(exc: BaseException | None) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class BinanceRest:
    """Public market-data REST calls of Binance spot, weight-limited and retried.

    Args:
        rest_url: base URL without ``/api`` (production ``https://api.binance.com``,
            the simulator's ``rest_url`` in tests).
        timeout_s: per request (connect + answer).
        weight_limit_1m: Binance's ``REQUEST_WEIGHT`` per minute until exchangeInfo says otherwise.
        weight_share: part of it this client may use (headroom for other callers).
        max_attempts: attempts per call, first one included.
        backoff_max_s: cap of the exponential backoff between attempts.
        budget: the machine's request budget, shared with live orders (default: one of its own
            from ``weight_limit_1m`` and ``weight_share``).

    The underlying ``AsyncClient`` is built on first use (no request before it);
    :meth:`close` releases its HTTP session. Usable as ``async with``.
    """

    def __init__(
        self,
        rest_url: str = DEFAULT_REST_URL,
        *,
        timeout_s: float = 10.0,
        weight_limit_1m: int = 6000,
        weight_share: float = 0.8,
        max_attempts: int = 4,
        backoff_max_s: float = 10.0,
        budget: RequestBudget | None = None,
    ) -> None:
        self.budget = budget or RequestBudget(weight_limit_1m, share=weight_share)
        self._url = rest_url.rstrip("/")
        self._timeout_s = timeout_s
        self._max_attempts = max(1, max_attempts)
        self._backoff_max_s = backoff_max_s
        # full jitter: uniform in [0, min(backoff_max_s, 0.2 s * 2**attempt)]
        self._backoff = wait_random_exponential(multiplier=0.2, max=backoff_max_s)
        self._client: AsyncClient | None = None
        self._closed = False
        self.requests = 0
        self.retries = 0
        self.failures = 0

    # ------------------------------------------------------------------ public calls
    async def exchange_symbols(self, quote_asset: str = "USDT") -> list[SymbolInfo]:
        """Spot symbols with status ``TRADING`` quoted in ``quote_asset`` (weight 20).

        Also adopts the exchange's ``REQUEST_WEIGHT`` per-minute limit.

        Raises:
            MarketUnavailable, IpBanned, InvalidRequest, MalformedMessage.
        """
        info = await self._call(WEIGHT_EXCHANGE_INFO, "exchangeInfo", lambda c: c.get_exchange_info())
        self.budget.adopt(info)
        return parse_exchange_symbols(info, quote_asset)

    async def klines(self, symbol: str, interval: str, limit: int = 500, *, end_ms: int | None = None) -> np.ndarray:
        """The newest ``limit`` candles (up to ``end_ms`` when given), shape ``(n, 11)``, oldest first.

        Columns in Binance order (open_time ms, open, high, low, close, volume,
        close_time ms, quote_volume, trades, taker_buy_base_volume,
        taker_buy_quote_volume); the newest row is usually the forming candle.
        More than 1000 candles are fetched in pages of 1000 (weight 2 each).

        Raises:
            InvalidSymbol, UnknownInterval (from ``machine.store``), ValueError (limit < 1),
            MarketUnavailable, IpBanned, InvalidRequest, MalformedMessage.
        """
        symbol = self._check_symbol(symbol)
        check_interval(interval)
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        pages: list[np.ndarray] = []
        remaining, end = limit, end_ms
        while remaining > 0:
            n = min(remaining, MAX_KLINES_PER_REQUEST)
            params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": n}
            if end is not None:
                params["endTime"] = end
            raw = await self._call(WEIGHT_KLINES, "klines", lambda c: c.get_klines(**params), symbol)
            page = klines_to_array(raw)
            pages.append(page)
            remaining -= page.shape[0]
            if page.shape[0] < n:
                break
            end = int(page[0, 0]) - 1
        out = np.concatenate(pages[::-1]) if len(pages) > 1 else pages[0]
        if out.shape[0] > 1 and np.any(np.diff(out[:, 0]) <= 0):
            raise MalformedMessage(f"{symbol} {interval}: kline pages overlap")
        return out

    async def ticker_24h(self, symbol: str) -> TickerEvent:
        """Rolling 24 h statistics of one symbol (weight 2); event time = ``closeTime``.

        Raises:
            InvalidSymbol, MarketUnavailable, IpBanned, InvalidRequest, MalformedMessage.
        """
        symbol = self._check_symbol(symbol)
        raw = await self._call(WEIGHT_TICKER_24H, "ticker/24hr", lambda c: c.get_ticker(symbol=symbol), symbol)
        return ticker_from_rest(raw)

    async def server_time_ms(self) -> int:
        """The exchange's clock, ms since the Unix epoch (weight 1)."""
        raw = await self._call(WEIGHT_TIME, "time", lambda c: c.get_server_time())
        value = raw.get("serverTime") if isinstance(raw, dict) else None
        if not isinstance(value, int):
            raise MalformedMessage(f"time: expected {{'serverTime': int}}, got {raw!r}")
        return value

    # ------------------------------------------------------------------ state
    @property
    def weight_limit_1m(self) -> int:
        """The exchange's REQUEST_WEIGHT per minute this client plans against."""
        return self.budget.weight_limit_1m

    @property
    def weight_budget_1m(self) -> int:
        """The weight per minute this client allows itself."""
        return self.budget.weight_budget_1m

    @property
    def used_weight_1m(self) -> int | None:
        """The exchange's running weight count from the last response (``X-MBX-USED-WEIGHT-1M``)."""
        return self.budget.used_weight_1m

    def stats(self) -> dict[str, int | None]:
        """Counters for ``/metrics``."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "failures": self.failures,
            "used_weight_1m": self.used_weight_1m,
            "weight_budget_1m": self.weight_budget_1m,
        }

    async def close(self) -> None:
        """Close the HTTP session (idempotent). Later calls raise MarketUnavailable."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.close_connection()

    async def __aenter__(self) -> "BinanceRest":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _check_symbol(symbol: str) -> str:
        if not isinstance(symbol, str) or not symbol.isalnum():
            raise InvalidSymbol(str(symbol), "symbols are letters and digits, e.g. BTCUSDT")
        return symbol.upper()

    def _get_client(self) -> AsyncClient:
        if self._closed:
            raise MarketUnavailable("the REST client is closed")
        if self._client is None:
            trace = aiohttp.TraceConfig()
            trace.on_request_end.append(self._on_response)
            # Not AsyncClient.create(): it pings Binance before returning.
            client = AsyncClient(
                api_key=None,
                api_secret=None,
                requests_params={"timeout": self._timeout_s},
                session_params={"trace_configs": [trace]},
            )
            client.API_URL = self._url + "/api"
            self._client = client
        return self._client

    async def _on_response(self, _session: Any, _ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
        self.budget.observe(params.response.headers)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = _retry_after_s(exc)
        backoff = self._backoff(state)
        if isinstance(exc, BinanceAPIException) and exc.status_code == 429:
            delay = retry_after if retry_after is not None else backoff
            self.budget.pause(delay)
            return delay
        return backoff

    def _before_sleep(self, state: RetryCallState) -> None:
        self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        _log.warning("rest_retry", attempt=state.attempt_number, error=repr(exc)[:200])

    async def _call(
        self,
        weight: int,
        endpoint: str,
        request: Callable[[AsyncClient], Awaitable[_T]],
        symbol: str | None = None,
    ) -> _T:
        if (ban := self.budget.banned_for()) > 0:
            raise IpBanned(f"{endpoint}: IP banned by the exchange for {ban:.0f} s more", ban)
        client = self._get_client()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self.budget.acquire(weight)
                    self.requests += 1
                    return await request(client)
        except MarketDataError:
            self.failures += 1
            raise
        except Exception as exc:
            self.failures += 1
            raise self._translate(exc, endpoint, symbol) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, exc: Exception, endpoint: str, symbol: str | None) -> MarketDataError:
        if isinstance(exc, BinanceAPIException):
            status, code, message = exc.status_code, exc.code, exc.message
            text = f"{endpoint}: HTTP {status} (code {code}): {message}"
            if status == 418:
                ban = _retry_after_s(exc) or _DEFAULT_BAN_S
                self.budget.ban(ban)
                return IpBanned(text, ban)
            if status == 429:
                return RateLimited(text, _retry_after_s(exc))
            if status >= 500:
                return MarketUnavailable(text)
            if code == -1121:
                return InvalidSymbol(symbol or "?", str(message))
            return InvalidRequest(text, status, code)
        if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, BinanceRequestException, OSError)):
            return MarketUnavailable(f"{endpoint}: {type(exc).__name__}: {exc}")
        return MarketDataError(f"{endpoint}: unexpected {type(exc).__name__}: {exc}")
