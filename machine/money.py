"""Pure money maths of trading: sizing, levels, fees, balances and PnL.

All arguments and results are :class:`~decimal.Decimal`: prices in the quote
asset, quantities in the base asset. What fills do to balances and PnL is in
``machine.accounts``.
Amounts written to the database are quantized to 8 decimal places (the
``NUMERIC(20, 8)`` columns) with ``ROUND_HALF_EVEN`` (banker's rounding).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

__all__ = [
    "EIGHT_DP",
    "notional",
    "quantity_for_notional",
    "round_to_tick",
    "sl_tp_from_pct",
]

EIGHT_DP = Decimal("0.00000001")
_HUNDRED = Decimal(100)


def notional(price: Decimal, quantity: Decimal) -> Decimal:
    """``price * quantity`` in the quote asset, quantized to 8 dp."""
    return (price * quantity).quantize(EIGHT_DP, rounding=ROUND_HALF_EVEN)


def quantity_for_notional(target_quote: Decimal, price: Decimal, step_size: Decimal, min_qty: Decimal = Decimal(0)) -> Decimal:
    """Largest quantity ``<= target_quote / price`` that is a multiple of ``step_size`` (Binance LOT_SIZE).

    Returns ``Decimal(0)`` when the result would be below ``min_qty`` or the price is not positive.
    """
    if price <= 0 or target_quote <= 0:
        return Decimal(0)
    raw = target_quote / price
    qty = (raw / step_size).to_integral_value(rounding=ROUND_DOWN) * step_size if step_size > 0 else raw.quantize(EIGHT_DP, ROUND_DOWN)
    qty = qty.quantize(EIGHT_DP, rounding=ROUND_DOWN)
    return qty if qty >= min_qty and qty > 0 else Decimal(0)


def round_to_tick(price: Decimal, tick_size: Decimal) -> Decimal:
    """Nearest multiple of ``tick_size`` (Binance PRICE_FILTER), at most 8 dp."""
    if tick_size <= 0:
        return price.quantize(EIGHT_DP, rounding=ROUND_HALF_EVEN)
    return ((price / tick_size).to_integral_value(rounding=ROUND_HALF_EVEN) * tick_size).quantize(EIGHT_DP)


def sl_tp_from_pct(side: str, entry: Decimal, stop_loss_pct: Decimal, take_profit_pct: Decimal, tick_size: Decimal) -> tuple[Decimal, Decimal]:
    """Stop-loss and take-profit prices at the given percent distance from ``entry``.

    Long: ``SL = entry * (1 - sl%)``, ``TP = entry * (1 + tp%)``; short mirrored.
    """
    sl_f = stop_loss_pct / _HUNDRED
    tp_f = take_profit_pct / _HUNDRED
    if side == "long":
        return round_to_tick(entry * (1 - sl_f), tick_size), round_to_tick(entry * (1 + tp_f), tick_size)
    if side == "short":
        return round_to_tick(entry * (1 + sl_f), tick_size), round_to_tick(entry * (1 - tp_f), tick_size)
    raise ValueError(f"side must be long or short, got {side!r}")
