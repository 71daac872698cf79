"""The subscriber's Binance Spot account as the machine trades it live.

:class:`LiveVenue` owns python-binance's ``AsyncClient`` signed with the subscriber's keys
(``machine.credentials``), the :class:`machine.execution.LiveExecutor` that sends orders through
it, and the last account snapshot (``GET /api/v3/account``, Binance spot API docs "Account
information (USER_DATA)"): balances per asset and the account's commission rates. Its lifecycle
is :meth:`start` (clock sync, first snapshot; the keys are checked by the exchange here) and
:meth:`close`. Neither the key nor the secret appears in a message or a log line.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import aiohttp
import structlog
from binance import AsyncClient

from machine.credentials import ExchangeCredentials
from machine.execution import ExecutionError, LiveExecutor
from machine.market import RequestBudget

__all__ = ["LiveVenue", "VenueUnavailable"]

log = structlog.get_logger(__name__)


class VenueUnavailable(Exception):
    """The account cannot be traded live (keys refused, exchange unreachable); the message says why
    and never holds a key or secret."""


class LiveVenue:
    """One Binance Spot account (module doc).

    Args:
        credentials: the subscriber's API key and secret.
        rest_url: base URL without ``/api`` (``https://api.binance.com``; the simulator's in tests).
        recv_window_ms: ``recvWindow`` of every signed request.
        timeout_s: per request; past it an order's outcome is unknown (``OutcomeUnknown``).
        budget: the machine's request budget, shared with market data (``BinanceRest.budget``).
    """

    def __init__(self, credentials: ExchangeCredentials, rest_url: str, *, recv_window_ms: int = 5000,
                 timeout_s: float = 10.0, budget: RequestBudget | None = None) -> None:
        self.budget = budget or RequestBudget()
        trace = aiohttp.TraceConfig()  # every response's weight and order counts feed the shared budget
        trace.on_request_end.append(self._on_response)
        # Not AsyncClient.create(): it pings the exchange before returning.
        self._client = AsyncClient(api_key=credentials.api_key, api_secret=credentials.api_secret,
                                   session_params={"trace_configs": [trace]})
        self._client.API_URL = rest_url.rstrip("/") + "/api"
        self._client.REQUEST_TIMEOUT = timeout_s
        self.executor = LiveExecutor(self._client, Decimal("0.001"), recv_window_ms=recv_window_ms,
                                     budget=self.budget)
        self.balances: dict[str, tuple[Decimal, Decimal]] = {}
        self.maker_rate = Decimal("0.001")

    async def _on_response(self, _session: Any, _ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
        self.budget.observe(params.response.headers)

    @property
    def taker_rate(self) -> Decimal:
        """The account's taker commission rate (fraction of the notional)."""
        return self.executor.taker_rate

    async def start(self) -> None:
        """Sync the clock and take the first account snapshot.

        Raises:
            VenueUnavailable: the exchange refused the keys or could not be reached.
        """
        try:
            await self.executor.resync_clock()
            await self.refresh()
        except (ExecutionError, OSError, TimeoutError) as exc:
            raise VenueUnavailable(f"the exchange account cannot be used: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # python-binance's own errors (e.g. a refused key on /time is impossible)
            raise VenueUnavailable(f"the exchange account cannot be used: {type(exc).__name__}") from None
        log.info("venue_ready", taker_rate=str(self.taker_rate), assets=len(self.balances))

    async def refresh(self) -> None:
        """Take an account snapshot: ``balances`` (asset -> (free, locked), base units) and commission rates.

        Raises:
            ExecutionError: the request failed (``OrderRejected``, ``RateLimited``, ``OutcomeUnknown``).
        """
        account: dict[str, Any] = await self.executor.account()
        rates = account.get("commissionRates") or {}
        if "taker" in rates:
            self.executor.taker_rate = Decimal(rates["taker"])
            self.maker_rate = Decimal(rates.get("maker", rates["taker"]))
        self.balances = {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in account.get("balances", ())}

    def apply_balances(self, balances: dict[str, tuple[Decimal, Decimal]]) -> None:
        """Balances the user data stream reported (``outboundAccountPosition``): asset -> (free, locked)."""
        self.balances = {**self.balances, **balances}

    def server_ms(self) -> int:
        """The exchange's clock as last synced (ms since the epoch): what signed requests carry as ``timestamp``."""
        return int(time.time() * 1000) + int(self._client.timestamp_offset or 0)

    def free(self, asset: str) -> Decimal:
        """Free balance of ``asset`` in the last snapshot (0 when the account holds none)."""
        return self.balances.get(asset, (Decimal(0), Decimal(0)))[0]

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        await self._client.close_connection()
