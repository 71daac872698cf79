"""Where a paper order fills: the prices a live Binance Spot account would get.

Pure functions, prices in the quote asset:

* a **market order** fills at the last price moved against the taker by the
  slippage (``BUY: last * (1 + bps / 10^4)``, ``SELL: last * (1 - bps / 10^4)``),
  rounded to the tick size against the taker (BUY up, SELL down);
* a **take-profit** (a resting limit order) fills at its level, or better when
  the price gaps through it: a long's at ``max(level, low)``, a short's at
  ``min(level, high)``, where ``low``/``high`` span the prices reached by the
  update that triggered it;
* a **stop-loss** fills at the worse of its level and the price when it
  triggers (the update's last price): a long's at ``min(level, last)``, a
  short's at ``max(level, last)``.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

__all__ = ["market_fill_price", "stop_loss_fill_price", "take_profit_fill_price"]

_BPS = Decimal(10_000)


def market_fill_price(order_side: str, last: Decimal, slippage_bps: Decimal, tick_size: Decimal) -> Decimal:
    """The fill price of a MARKET order (module doc). ``order_side``: ``BUY`` or ``SELL``."""
    if order_side == "BUY":
        price, rounding = last * (1 + slippage_bps / _BPS), ROUND_CEILING
    elif order_side == "SELL":
        price, rounding = last * (1 - slippage_bps / _BPS), ROUND_FLOOR
    else:
        raise ValueError(f"side must be BUY or SELL, got {order_side!r}")
    if tick_size <= 0:
        return price
    return ((price / tick_size).to_integral_value(rounding=rounding) * tick_size).quantize(tick_size)


def take_profit_fill_price(position_side: str, level: Decimal, low: Decimal, high: Decimal) -> Decimal:
    """The fill price of a triggered take-profit (module doc)."""
    if position_side == "long":
        return max(level, low)
    if position_side == "short":
        return min(level, high)
    raise ValueError(f"side must be long or short, got {position_side!r}")


def stop_loss_fill_price(position_side: str, level: Decimal, last: Decimal) -> Decimal:
    """The fill price of a triggered stop-loss (module doc)."""
    if position_side == "long":
        return min(level, last)
    if position_side == "short":
        return max(level, last)
    raise ValueError(f"side must be long or short, got {position_side!r}")
