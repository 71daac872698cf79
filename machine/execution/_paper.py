"""Paper execution: fills market orders at the last price with a taker fee."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from machine.execution._errors import NoPrice
from machine.money import fee
from machine.execution._orders import Fill, OrderRequest

__all__ = ["PaperExecutor"]


class PaperExecutor:
    """Simulated taker fills.

    Args:
        last_price: the latest traded price of a symbol (quote asset), or None.
        fee_rate: taker fee rate, e.g. ``Decimal("0.001")`` (0.1 %, Binance's spot base rate).
        quote_asset: the asset fees are charged in.
    """

    def __init__(self, last_price: Callable[[str], Decimal | None], fee_rate: Decimal, quote_asset: str) -> None:
        self._last_price = last_price
        self._fee_rate = fee_rate
        self._quote = quote_asset

    async def submit(self, order: OrderRequest) -> Fill:
        """Fill the whole quantity at the last price.

        Raises:
            NoPrice: no price is known for the symbol yet.
        """
        price = self._last_price(order.symbol)
        if price is None or price <= 0:
            raise NoPrice(f"no last price for {order.symbol}")
        return Fill(price=price, quantity=order.quantity, fee=fee(price, order.quantity, self._fee_rate), fee_asset=self._quote)
