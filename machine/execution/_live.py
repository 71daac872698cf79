"""Live execution on Binance Spot through python-binance's ``AsyncClient`` (Binance spot API docs:
``rest-api.md`` "New order (TRADE)", "Query order (USER_DATA)", "Account trade list (USER_DATA)",
"General API Information" on HTTP 5xx, and ``errors.md``).

Every order is a MARKET order sent with the client order id its intent was written under
(``newClientOrderId``) and ``newOrderRespType=FULL``. Every request first takes its weight (and a placing one its orders) from
the machine's :class:`~machine.market.RequestBudget`, shared with market data; a 429 pauses every
caller for its ``Retry-After``, a 418 fails every request fast until the ban ends. What the answer means:

* a response: the fill (``executedQty``; the average price ``cummulativeQuoteQty / executedQty``;
  the commission summed over ``fills`` in its ``commissionAsset``);
* -1021 (timestamp outside ``recvWindow``): the clock offset is re-synced from ``GET /api/v3/time``
  and the order sent once more under the same id (Binance refused it unprocessed);
* HTTP 429 / 418: :class:`RateLimited` with ``Retry-After``; nothing was carried out;
* another Binance error code below HTTP 500 (-1013 filter failure, -2010 rejected, -11xx
  request errors, -2014/-2015/-1022 key and signature): :class:`OrderRejected`;
* a timeout, a dropped connection, HTTP 5xx, -1006 or -1007: :class:`OutcomeUnknown`: Binance
  says the execution status is then unknown, so the caller resolves it with :meth:`query`
  and never sends the order again.

:meth:`query` asks ``GET /api/v3/order`` by ``origClientOrderId``; -2013 ("Order does not exist.")
is asked again ``query_attempts`` times ``query_delay_s`` apart (an order can show up late) before
the answer is None. A filled order's commission comes from ``GET /api/v3/myTrades`` by order id.
Quantities are in the base asset, prices in the quote asset, times in ms since the Unix epoch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import structlog
from binance import AsyncClient
from binance.exceptions import BinanceAPIException, BinanceRequestException

from machine.execution._errors import OrderRejected, OutcomeUnknown, RateLimited
from machine.market import RequestBudget
from machine.execution._orders import ExitIds, ExitReport, Fill, OrderRequest

__all__ = ["LiveExecutor"]

log = structlog.get_logger(__name__)

_UNKNOWN_CODES = frozenset({-1000, -1006, -1007})
#: Request weight per method (Binance spot API docs: "New order" 1, "Query order" 4, "Account trade
#: list" 5 with orderId, "Account information" 20, "New Order list - OCO" 1, "Cancel Order list" 1,
#: "Query Order list" 4, "Query Open Order lists" 6, "Check server time" 1) and the orders a placing one counts (an OCO: 2).
_WEIGHTS = {"create_order": (1, 1), "get_order": (4, 0), "get_my_trades": (5, 0), "get_account": (20, 0),
            "create_oco_order": (1, 2), "DELETE orderList": (1, 0), "GET orderList": (4, 0), "GET openOrderList": (6, 0),
            "get_server_time": (1, 0)}
_QUANT = Decimal("0.00000001")


def _retry_after(exc: BinanceAPIException) -> float:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        return float(headers.get("Retry-After", 1))
    except (TypeError, ValueError):
        return 1.0


class LiveExecutor:
    """Orders on Binance Spot (module doc).

    Args:
        client: python-binance's ``AsyncClient``, keys set (its ``API_URL`` may point at the simulator).
        taker_rate: the account's taker commission rate (it sizes a close).
        recv_window_ms: ``recvWindow`` of every signed request.
        query_attempts: how many times -2013 is asked again before an order counts as never seen.
        query_delay_s: seconds between those attempts.
        budget: the machine's request budget, shared with market data (default: one of its own).
    """

    def __init__(self, client: AsyncClient, taker_rate: Decimal, *, recv_window_ms: int = 5000,
                 query_attempts: int = 3, query_delay_s: float = 0.5, budget: RequestBudget | None = None) -> None:
        self._client = client
        self._budget = budget or RequestBudget()
        self.taker_rate = taker_rate
        self._recv_window = recv_window_ms
        self._query_attempts = query_attempts
        self._query_delay_s = query_delay_s
        self.resyncs = 0
        self.unknown_outcomes = 0

    async def resync_clock(self) -> None:
        """Align the client's timestamps with the server's clock (``GET /api/v3/time``)."""
        await self._budget.acquire(1)
        server = (await self._client.get_server_time())["serverTime"]
        self._client.timestamp_offset = server - int(time.time() * 1000)
        self.resyncs += 1

    async def _call(self, method: str, **params: Any) -> Any:
        """One signed request; -1021 re-syncs and sends once more; errors as the module doc says.

        ``method``: an ``AsyncClient`` method, or ``"GET orderList"``-style for an endpoint it lacks."""
        weight, orders = _WEIGHTS.get(method, (1, 0))
        for attempt in (1, 2):
            if (banned := self._budget.banned_for()) > 0:
                raise RateLimited(-1003, f"IP banned by the exchange for {banned:.0f} s more", banned)
            await self._budget.acquire(weight, orders)
            try:
                if " " in method:
                    http, path = method.split(" ")
                    return await self._client._request_api(http.lower(), path, True,
                                                           data={**params, "recvWindow": self._recv_window})
                return await getattr(self._client, method)(**params, recvWindow=self._recv_window)
            except BinanceAPIException as exc:
                if exc.code == -1021 and attempt == 1:
                    await self.resync_clock()
                    continue
                if exc.status_code in (418, 429):
                    retry_after = _retry_after(exc)
                    self._budget.ban(retry_after) if exc.status_code == 418 else self._budget.pause(retry_after)
                    raise RateLimited(exc.code, exc.message, retry_after) from None
                if exc.status_code >= 500 or exc.code in _UNKNOWN_CODES:
                    raise OutcomeUnknown(f"{method}: HTTP {exc.status_code} {exc.code}: {exc.message}") from None
                raise OrderRejected(exc.code, exc.message) from None
            except (asyncio.TimeoutError, aiohttp.ClientError, BinanceRequestException) as exc:
                raise OutcomeUnknown(f"{method}: {type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")

    async def account(self) -> dict[str, Any]:
        """``GET /api/v3/account`` (weight 20): balances and ``commissionRates``.
        Raises OrderRejected, RateLimited, OutcomeUnknown."""
        return await self._call("get_account")

    async def submit(self, order: OrderRequest) -> Fill:
        """Send ``order`` as a MARKET order under its client order id (an exit's trigger only
        explains why; live exits at market). Raises OrderRejected, RateLimited, OutcomeUnknown."""
        try:
            answer = await self._call("create_order", symbol=order.symbol, side=order.side, type="MARKET",
                                      quantity=format(order.quantity, "f"), newClientOrderId=order.client_order_id,
                                      newOrderRespType="FULL")
        except OutcomeUnknown:
            self.unknown_outcomes += 1
            log.warning("order_outcome_unknown", symbol=order.symbol, client_order_id=order.client_order_id)
            raise
        fill = self._fill(answer, answer.get("fills") or [])
        if fill is None:
            raise OrderRejected(-2010, f"order {order.client_order_id} ended {answer.get('status')} without a fill")
        return fill

    async def query(self, client_order_id: str, symbol: str) -> Fill | None:
        """The fill of the order sent under ``client_order_id``, or None when Binance does not know it
        (after the retries of the module doc) or it ended without a fill.

        Raises:
            OutcomeUnknown: Binance could not be asked, or the order is still open.
            RateLimited, OrderRejected: the query itself was refused.
        """
        for attempt in range(1, self._query_attempts + 1):
            try:
                order = await self._call("get_order", symbol=symbol, origClientOrderId=client_order_id)
                break
            except OrderRejected as exc:
                if exc.code != -2013 or isinstance(exc, RateLimited):
                    raise
                if attempt == self._query_attempts:
                    return None
                await asyncio.sleep(self._query_delay_s)
        if order["status"] in ("NEW", "PARTIALLY_FILLED", "PENDING_NEW"):
            raise OutcomeUnknown(f"order {client_order_id} is still {order['status']}")
        if Decimal(order["executedQty"]) == 0:
            return None
        return await self._order_fill(symbol, order)

    async def _order_fill(self, symbol: str, order: Mapping[str, Any]) -> Fill | None:
        """A queried order's fill, its commissions from ``GET /api/v3/myTrades?orderId=`` (only that
        order's trades are counted, whatever the answer holds)."""
        trades = await self._call("get_my_trades", symbol=symbol, orderId=order["orderId"])
        own = [{"commission": t["commission"], "commissionAsset": t["commissionAsset"]}
               for t in trades if int(t.get("orderId", order["orderId"])) == int(order["orderId"])]
        return self._fill(order, own, time_field="updateTime")

    # ------------------------------------------------------------ exit order lists (OCO)
    async def place_exits(self, symbol: str, quantity: Decimal, take_profit: Decimal, stop_loss: Decimal,
                          stop_limit: Decimal, ids: ExitIds) -> int:
        """Protect a long: one OCO SELL of ``quantity`` (``POST /api/v3/orderList/oco``): a LIMIT_MAKER
        take-profit at ``take_profit`` above and a STOP_LOSS_LIMIT below, triggered at ``stop_loss`` and
        selling at ``stop_limit`` or better (GTC; Binance spot symbols list STOP_LOSS_LIMIT, not a plain
        STOP_LOSS, in ``orderTypes``), under the client ids ``ids``. Returns the exchange's ``orderListId``.

        Raises:
            OrderRejected (e.g. -2010 the price is already past a level), RateLimited,
            OutcomeUnknown (resolved with :meth:`exit_report`, never by sending again).
        """
        answer = await self._call(
            "create_oco_order", symbol=symbol, side="SELL", quantity=format(quantity, "f"),
            listClientOrderId=ids.list_id, aboveType="LIMIT_MAKER", abovePrice=format(take_profit, "f"),
            aboveClientOrderId=ids.take_profit, belowType="STOP_LOSS_LIMIT", belowStopPrice=format(stop_loss, "f"),
            belowPrice=format(stop_limit, "f"), belowTimeInForce="GTC", belowClientOrderId=ids.stop_loss,
            newOrderRespType="RESULT")
        return int(answer["orderListId"])

    async def cancel_exits(self, symbol: str, ids: ExitIds) -> bool:
        """Cancel the exit list (``DELETE /api/v3/orderList`` by ``listClientOrderId``): True when it
        was cancelled now, False when the exchange has no working list of that id (done or never placed:
        ask :meth:`exit_report`).

        Raises:
            OrderRejected, RateLimited, OutcomeUnknown.
        """
        try:
            await self._call("DELETE orderList", symbol=symbol, listClientOrderId=ids.list_id)
        except OrderRejected as exc:
            if exc.code in (-2011, -2013) and not isinstance(exc, RateLimited):
                return False
            raise
        return True

    async def exit_report(self, symbol: str, ids: ExitIds) -> ExitReport | None:
        """What became of the exit list ``ids`` (``GET /api/v3/orderList``, then each leg's
        ``GET /api/v3/order`` and a filled leg's ``myTrades``); None when the exchange never saw it.

        Raises:
            OrderRejected, RateLimited, OutcomeUnknown.
        """
        try:
            listed = await self._call("GET orderList", origClientOrderId=ids.list_id)
        except OrderRejected as exc:
            if exc.code in (-2011, -2013) and not isinstance(exc, RateLimited):
                return None
            raise
        list_id = int(listed["orderListId"])
        if listed.get("listOrderStatus") == "EXECUTING":
            return ExitReport(list_id, True)
        for leg in listed.get("orders", ()):
            order = await self._call("get_order", symbol=symbol, orderId=leg["orderId"])
            if Decimal(order["executedQty"]) == 0:
                continue
            fill = await self._order_fill(symbol, order)
            kind = "take_profit" if order["clientOrderId"] == ids.take_profit else "stop_loss"
            return ExitReport(list_id, False, (kind, order["clientOrderId"], fill))  # type: ignore[arg-type]
        return ExitReport(list_id, False)

    async def working_lists(self) -> dict[str, str]:
        """Every EXECUTING order list of the account: ``listClientOrderId`` -> symbol
        (``GET /api/v3/openOrderList``, weight 6). Raises OrderRejected, RateLimited, OutcomeUnknown."""
        lists = await self._call("GET openOrderList")
        return {str(ol["listClientOrderId"]): str(ol["symbol"]) for ol in lists}

    @staticmethod
    def _fill(order: Mapping[str, Any], fills: Sequence[Mapping[str, Any]], time_field: str = "transactTime"
              ) -> Fill | None:
        quantity = Decimal(order["executedQty"])
        if quantity == 0:
            return None
        price = (Decimal(order["cummulativeQuoteQty"]) / quantity).quantize(_QUANT)
        assets = {f["commissionAsset"] for f in fills}
        if len(assets) > 1:
            log.warning("fill_fees_in_several_assets", order_id=order.get("orderId"), assets=sorted(assets))
        asset = fills[0]["commissionAsset"] if fills else ""
        fee = sum((Decimal(f["commission"]) for f in fills if f["commissionAsset"] == asset), Decimal(0))
        return Fill(price=price, quantity=quantity, fee=fee, fee_asset=asset, order_id=int(order["orderId"]),
                    price_time_ms=order.get(time_field))
