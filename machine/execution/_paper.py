"""Paper execution: market orders filled at the last price, commission as Binance charges it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Final

from machine.accounts import commission, commission_asset
from machine.execution._errors import NoPrice
from machine.execution._orders import Fill, OrderRequest

__all__ = ["PaperExecutor"]

_REMEMBERED: Final = 10_000


class PaperExecutor:
    """Simulated taker fills.

    Args:
        last_price: the latest traded price of a symbol (quote asset), or None.
        taker_rate: taker commission rate, e.g. ``Decimal("0.001")`` (0.1 %, Binance's spot base rate).
        assets: symbol -> ``(base_asset, quote_asset)``.
        maker_rate: maker commission rate (limit orders resting on the book; default the taker rate).
    """

    def __init__(
        self,
        last_price: Callable[[str], Decimal | None],
        taker_rate: Decimal,
        assets: Callable[[str], tuple[str, str]],
        maker_rate: Decimal | None = None,
    ) -> None:
        self._last_price = last_price
        self.taker_rate = taker_rate
        self.maker_rate = taker_rate if maker_rate is None else maker_rate
        self._assets = assets
        self._fills: OrderedDict[str, Fill] = OrderedDict()

    async def submit(self, order: OrderRequest) -> Fill:
        """Fill the whole quantity at the last price; the commission in the asset received (``machine.accounts``).

        Raises:
            NoPrice: no price is known for the symbol yet.
        """
        known = self._fills.get(order.client_order_id)
        if known is not None:  # the same client order id is the same order: never filled twice
            return known
        price = self._last_price(order.symbol)
        if price is None or price <= 0:
            raise NoPrice(f"no last price for {order.symbol}")
        base, quote = self._assets(order.symbol)
        fill = Fill(
            price=price,
            quantity=order.quantity,
            fee=commission(order.side, price, order.quantity, self.taker_rate),
            fee_asset=commission_asset(order.side, base, quote),
        )
        self._fills[order.client_order_id] = fill
        while len(self._fills) > _REMEMBERED:
            self._fills.popitem(last=False)
        return fill

    async def query(self, client_order_id: str) -> Fill | None:
        """The fill of an order this executor filled (the last 10,000), or None if it never saw it."""
        return self._fills.get(client_order_id)
