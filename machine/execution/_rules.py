"""A symbol's exchange rules and the checks an order must pass, as Binance applies them.

Source: Binance Spot API docs, ``filters.md`` ("Symbol filters"). Pure
functions over :class:`~decimal.Decimal`; each returns the reason an order
would be rejected, or None. Rounding directions are chosen so that nothing is
ever more than the decision asked for:

* order quantities are rounded **down** to the step size (never spend more
  than the sized notional);
* stop-loss and take-profit levels are rounded **towards the entry price** to
  the tick size (a stop never risks more, a target never asks for more, than
  the analysis said).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

__all__ = ["SymbolRules", "level_problem", "market_quantity_problem", "notional_problem", "round_level"]


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """Exchange trading rules of a symbol (Binance exchangeInfo filters) and its assets.

    Prices in the quote asset, quantities in the base asset; a 0 bound means
    "no such bound" (Binance's convention for ``minPrice``/``maxPrice``/``maxQty``).
    See ``machine.market.SymbolInfo`` for the filter each field comes from.
    """

    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    base_asset: str = ""
    quote_asset: str = ""
    min_price: Decimal = Decimal(0)
    max_price: Decimal = Decimal(0)
    max_qty: Decimal = Decimal(0)
    market_min_qty: Decimal = Decimal(0)
    market_max_qty: Decimal = Decimal(0)
    market_step_size: Decimal = Decimal(0)
    max_notional: Decimal = Decimal(0)
    apply_min_to_market: bool = True
    apply_max_to_market: bool = False
    avg_price_mins: int = 5
    percent_price_by_side: tuple[Decimal, Decimal, Decimal, Decimal] | None = None

    @classmethod
    def from_info(cls, info: object) -> SymbolRules:
        """The rules of a ``machine.market.SymbolInfo`` (every field of the same name)."""
        return cls(**{f.name: getattr(info, f.name) for f in fields(cls)})


def round_level(position_side: str, level: Decimal, entry: Decimal, tick_size: Decimal) -> Decimal:
    """``level`` on the tick grid, rounded towards ``entry`` (module doc).

    A level below the entry (a long's stop-loss, a short's take-profit) is
    rounded up, one above it down. PRICE_FILTER: ``(price - minPrice) % tickSize == 0``;
    ``minPrice`` is itself a multiple of the tick for every listed symbol.
    """
    if tick_size <= 0:
        return level
    rounding = ROUND_CEILING if level < entry else ROUND_FLOOR
    return ((level / tick_size).to_integral_value(rounding=rounding) * tick_size).quantize(tick_size)


def level_problem(
    position_side: str, kind: str, level: Decimal, entry: Decimal, avg_price: Decimal, rules: SymbolRules,
    reference: str = "entry price",
) -> str | None:
    """Why an exit level cannot be placed, or None.

    Args:
        position_side: ``long`` or ``short``; its exits are SELL or BUY orders.
        kind: ``stop_loss`` or ``take_profit``.
        level: the price (already :func:`round_level`-ed).
        entry: the position's (expected) entry price, or the price a moved level must be on
            the right side of (then ``reference`` names it in the message, e.g. "current price").
        avg_price: the symbol's average price over ``avg_price_mins`` minutes.

    Checks, in order: the side of the entry (a long's stop-loss below it and
    take-profit above it, a short's mirrored), PRICE_FILTER bounds, and
    PERCENT_PRICE_BY_SIDE (a SELL at most ``askMultiplierUp`` and at least
    ``askMultiplierDown`` times the average price; a BUY with the bid multipliers).
    """
    name = kind.replace("_", "-")
    below = (position_side == "long") == (kind == "stop_loss")
    if level <= 0:
        return f"{name} {level:f} is not a positive price"
    if below and level >= entry:
        return f"{name} {level:f} is not below the {reference} {entry:f}"
    if not below and level <= entry:
        return f"{name} {level:f} is not above the {reference} {entry:f}"
    if rules.min_price > 0 and level < rules.min_price:
        return f"{name} {level:f} is below the symbol's minimum price {rules.min_price:f}"
    if rules.max_price > 0 and level > rules.max_price:
        return f"{name} {level:f} is above the symbol's maximum price {rules.max_price:f}"
    if rules.percent_price_by_side is not None and avg_price > 0:
        bid_up, bid_down, ask_up, ask_down = rules.percent_price_by_side
        up, down = (ask_up, ask_down) if position_side == "long" else (bid_up, bid_down)
        if not avg_price * down <= level <= avg_price * up:
            return (f"{name} {level:f} is outside PERCENT_PRICE_BY_SIDE [{avg_price * down:f}, {avg_price * up:f}] "
                    f"of the average price {avg_price:f}")  # fmt: skip
    return None


def market_quantity_problem(quantity: Decimal, rules: SymbolRules) -> str | None:
    """Why a MARKET order of ``quantity`` would be rejected by LOT_SIZE or MARKET_LOT_SIZE, or None.

    Both apply to MARKET orders: ``minQty <= quantity <= maxQty`` and
    ``(quantity - minQty) % stepSize == 0`` for each (0 disables a bound or the step).
    """
    for name, low, high, step in (
        ("LOT_SIZE", rules.min_qty, rules.max_qty, rules.step_size),
        ("MARKET_LOT_SIZE", rules.market_min_qty, rules.market_max_qty, rules.market_step_size),
    ):
        if quantity < low:
            return f"quantity {quantity:f} is below {name} minQty {low:f}"
        if high > 0 and quantity > high:
            return f"quantity {quantity:f} is above {name} maxQty {high:f}"
        if step > 0 and (quantity - low) % step != 0:
            return f"quantity {quantity:f} is not a multiple of {name} stepSize {step:f}"
    return None


def notional_problem(quantity: Decimal, avg_price: Decimal, rules: SymbolRules) -> str | None:
    """Why a MARKET order of ``quantity`` fails NOTIONAL, or None.

    For MARKET orders Binance checks ``avgPrice * quantity`` (the average price
    over ``avgPriceMins`` minutes, not the last price) against ``minNotional``
    when ``applyMinToMarket`` and ``maxNotional`` when ``applyMaxToMarket``.
    """
    value = avg_price * quantity
    if rules.apply_min_to_market and value < rules.min_notional:
        return f"notional {value:.8f} is below the exchange minimum {rules.min_notional:f}"
    if rules.apply_max_to_market and rules.max_notional > 0 and value > rules.max_notional:
        return f"notional {value:.8f} is above the exchange maximum {rules.max_notional:f}"
    return None
