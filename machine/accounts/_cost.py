"""A position that changes size: cost basis and PnL realised at the average cost.

Pure functions over :class:`~decimal.Decimal` (prices in the quote asset, quantities in
the base asset, amounts quantized to 8 dp ``ROUND_HALF_EVEN``), on top of ``_book``'s
fill rules (commission in the asset received; a paper short is a 1x margin short).

A position's **cost basis** is the quote amount its size stands for:

* long: the quote spent on what is held (each BUY adds its notional ``N``; its
  commission is paid in base, so it is why fewer units are held);
* short: the sale proceeds kept for what is owed (each SELL adds ``N - fee``).

A **reduce** (partial close, scale out) of a share ``s`` of the size (long: units sold
over units held; short: units repaid over units owed) takes ``s`` of the cost basis,
and of a short's locked quote, and realises:

* long: ``(N - fee) - cost_out``, the SELL's net proceeds minus the cost of what it sold;
* short: ``cost_out - N``, the proceeds kept for what it repaid minus what the BUY paid.

The final **close** takes what is left of the cost basis (base-asset dust left by step-size
rounding stays on the account, outside the PnL, as in ``_book.realised_pnl``). A
position's PnL is the sum over its reduces and its close; for a position with one open
and one close it equals :func:`~machine.accounts.realised_pnl`. An independent check
can recompute every figure from the fills, in order, with these rules alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from machine.accounts._book import BalanceChange, close_quantity
from machine.money import EIGHT_DP, notional

__all__ = ["Reduction", "close_pnl", "cost_of_fill", "reduce_changes", "reduce_quantity", "split_share"]


def _q(value: Decimal) -> Decimal:
    return value.quantize(EIGHT_DP, rounding=ROUND_HALF_EVEN)


def cost_of_fill(side: str, price: Decimal, quantity: Decimal, fee: Decimal) -> Decimal:
    """What an opening or increasing fill adds to the cost basis: long ``N``, short ``N - fee``.

    Raises:
        ValueError: a side other than ``long``/``short``.
    """
    n = notional(price, quantity)
    if side == "long":
        return n
    if side == "short":
        return n - fee
    raise ValueError(f"side must be long or short, got {side!r}")


def split_share(amount: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """``amount * part / whole`` at 8 dp (``whole`` > 0; ``part`` >= ``whole`` gives all of it)."""
    if part >= whole:
        return amount
    return _q(amount * part / whole)


def reduce_quantity(side: str, size: Decimal, fraction: Decimal, rate: Decimal, step_size: Decimal) -> Decimal:
    """The order quantity that reduces a position of ``size`` by ``fraction`` (0 < fraction <= 1).

    Long: ``size * fraction`` rounded down to ``step_size`` (a SELL of what is held).
    Short: the BUY whose units after its base commission repay ``size * fraction``
    (``_book.close_quantity`` of that debt). 0 when the step rounds it away.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    target = size * fraction
    if side == "long":
        return (target / step_size).to_integral_value(rounding=ROUND_DOWN) * step_size if step_size > 0 else _q(target)
    if side == "short":
        return close_quantity("short", target, rate, step_size)
    raise ValueError(f"side must be long or short, got {side!r}")


@dataclass(frozen=True, slots=True)
class Reduction:
    """A reduce booked: the balance changes, and the position's size, locked quote and cost basis
    after it, and the PnL it realised (quote asset)."""

    changes: list[BalanceChange]
    size: Decimal
    locked: Decimal
    cost_basis: Decimal
    pnl: Decimal


def reduce_changes(
    side: str, base_asset: str, quote_asset: str, price: Decimal, quantity: Decimal, fee: Decimal,
    size: Decimal, locked: Decimal, cost_basis: Decimal,
) -> Reduction:
    """Book a reducing fill of ``quantity`` (the order's, commission ``fee`` in the asset received).

    Long (SELL of ``quantity`` <= ``size`` held): base ``-quantity``, quote ``+ N - fee``.
    Short (BUY; repays ``quantity - fee`` of the ``size`` owed): base ``+ quantity - fee``,
    quote: pays ``N`` out of the share of ``locked`` it releases. See the module doc for
    the cost basis and PnL.

    Raises:
        ValueError: a long selling more than it holds, a short repaying more than it owes,
            or an unknown side.
    """
    n = notional(price, quantity)
    if side == "long":
        if quantity > size:
            raise ValueError(f"cannot sell {quantity} of a long holding {size}")
        cost_out = split_share(cost_basis, quantity, size)
        return Reduction(
            [BalanceChange(base_asset, -quantity), BalanceChange(quote_asset, n - fee)],
            size - quantity, Decimal(0), cost_basis - cost_out, n - fee - cost_out,
        )
    if side == "short":
        repaid = quantity - fee
        if repaid > size:
            raise ValueError(f"cannot repay {repaid} of a short owing {size}")
        cost_out = split_share(cost_basis, repaid, size)
        released = split_share(locked, repaid, size)
        return Reduction(
            [BalanceChange(base_asset, repaid), BalanceChange(quote_asset, released - n, -released)],
            size - repaid, locked - released, cost_basis - cost_out, cost_out - n,
        )
    raise ValueError(f"side must be long or short, got {side!r}")


def close_pnl(side: str, price: Decimal, quantity: Decimal, fee: Decimal, cost_basis: Decimal) -> Decimal:
    """PnL of the closing fill, which takes all the cost basis left: long ``(N - fee) - cost_basis``,
    short ``cost_basis - N`` (quote asset)."""
    n = notional(price, quantity)
    if side == "long":
        return n - fee - cost_basis
    if side == "short":
        return cost_basis - n
    raise ValueError(f"side must be long or short, got {side!r}")
