"""The paper account's book: what each fill does to each asset's free and locked balance.

Pure functions over :class:`~decimal.Decimal`: prices in the quote asset,
quantities in the base asset, amounts quantized to 8 decimal places
(``NUMERIC(28, 8)``) with ``ROUND_HALF_EVEN`` unless a docstring says otherwise.

The rules are those of a Binance Spot account (a paper figure must be the one a
live account would show):

* **Commission is charged in the asset received** (Binance's default, without
  the BNB discount; ``executionReport`` field ``N``, commissionAsset): a BUY
  pays ``quantity * rate`` of the base asset, a SELL ``quote_quantity * rate``
  of the quote asset. A long therefore holds ``quantity - commission`` and its
  close sells what is actually held, rounded down to the step size (the rest
  stays on the account as dust).
* **Funds are reserved when the order intent is written**, not when the fill
  is booked: :func:`open_reservation` moves quote from free to locked, so two
  opens of one trader cannot both spend the same cash.
* **A paper short is a 1x margin short** (live spot cannot short; the
  position is marked paper-only): it sells borrowed base asset, which shows as
  a negative base balance, locks collateral equal to its notional from free
  quote, and its sale proceeds are locked as well, never buying power. Its close
  buys back enough that, after the commission taken from what is bought, the
  borrowed quantity is repaid (:func:`close_quantity`), and releases the locks.

So every asset's total (free + locked) is its start plus what the fills bought,
minus what they sold and the commissions paid in it; an independent check can
recompute every balance from the fills alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from machine.money import EIGHT_DP, notional

__all__ = [
    "RESERVE_MARGIN",
    "BalanceChange",
    "Balances",
    "close_fill_changes",
    "close_quantity",
    "commission",
    "commission_asset",
    "equity",
    "open_fill_changes",
    "open_reservation",
    "realised_pnl",
]

_HUNDRED = Decimal(100)
RESERVE_MARGIN = Decimal("0.01")
"""An open reserves its notional at the intent's price plus this share: the fill's price may move by that much."""

Balances = Mapping[str, tuple[Decimal, Decimal]]
"""Asset -> ``(free, locked)``."""


@dataclass(frozen=True, slots=True)
class BalanceChange:
    """A change of one asset's balance (added to ``free`` and ``locked``)."""

    asset: str
    free: Decimal
    locked: Decimal = Decimal(0)


def _q(value: Decimal) -> Decimal:
    return value.quantize(EIGHT_DP, rounding=ROUND_HALF_EVEN)


def commission(side: str, price: Decimal, quantity: Decimal, rate: Decimal) -> Decimal:
    """Commission of one fill, in the asset received: BUY ``quantity * rate`` (base), SELL ``price * quantity * rate`` (quote).

    Raises:
        ValueError: a side other than ``BUY``/``SELL``.
    """
    if side == "BUY":
        return _q(quantity * rate)
    if side == "SELL":
        return _q(notional(price, quantity) * rate)
    raise ValueError(f"side must be BUY or SELL, got {side!r}")


def commission_asset(side: str, base_asset: str, quote_asset: str) -> str:
    """The asset a fill's commission is paid in: the one received (BUY: base, SELL: quote)."""
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be BUY or SELL, got {side!r}")
    return base_asset if side == "BUY" else quote_asset


def open_reservation(price: Decimal, quantity: Decimal) -> Decimal:
    """Quote asset locked by an open intent: ``price * quantity * (1 + RESERVE_MARGIN)``, rounded up to 8 dp.

    A long's BUY spends the notional (its commission is paid in base); a short
    locks its notional as collateral (its commission comes out of the proceeds).
    """
    return (price * quantity * (1 + RESERVE_MARGIN)).quantize(EIGHT_DP, rounding=ROUND_CEILING)


def open_fill_changes(
    side: str, base_asset: str, quote_asset: str, price: Decimal, quantity: Decimal, fee: Decimal, reserved: Decimal
) -> tuple[list[BalanceChange], Decimal, Decimal]:
    """Book an opening fill.

    Args:
        side: the position's side, ``long`` (a BUY) or ``short`` (a SELL of borrowed base).
        price, quantity: the fill; ``fee`` its commission (:func:`commission`).
        reserved: quote locked by the intent (:func:`open_reservation`), released here.

    Returns:
        ``(changes, held, locked)``: the balance changes; the position's size
        (long: ``quantity - fee``, what was received; short: ``quantity``, what
        is owed); the quote the position keeps locked (long 0; short collateral
        ``N`` plus proceeds ``N - fee``, where ``N = price * quantity``).
    """
    n = notional(price, quantity)
    if side == "long":
        return (
            [BalanceChange(quote_asset, reserved - n, -reserved), BalanceChange(base_asset, quantity - fee)],
            quantity - fee,
            Decimal(0),
        )
    if side == "short":
        locked = 2 * n - fee
        return (
            [BalanceChange(quote_asset, reserved - n, locked - reserved), BalanceChange(base_asset, -quantity)],
            quantity,
            locked,
        )
    raise ValueError(f"side must be long or short, got {side!r}")


def close_quantity(side: str, held: Decimal, rate: Decimal, step_size: Decimal) -> Decimal:
    """Quantity of the closing market order.

    Long: what is held, rounded down to ``step_size`` (LOT_SIZE; the rest
    stays as dust). Short: the smallest multiple of ``step_size`` whose
    proceeds after the BUY commission repay ``held``:
    ``ceil(held / (1 - rate) / step) * step``.
    """
    if side == "long":
        return (held / step_size).to_integral_value(rounding=ROUND_DOWN) * step_size if step_size > 0 else held
    if side == "short":
        gross = held / (1 - rate)
        if step_size <= 0:
            return gross.quantize(EIGHT_DP, rounding=ROUND_CEILING)
        qty = (gross / step_size).to_integral_value(rounding=ROUND_CEILING) * step_size
        while qty - commission("BUY", Decimal(0), qty, rate) < held:  # rounding of the commission
            qty += step_size
        return qty
    raise ValueError(f"side must be long or short, got {side!r}")


def close_fill_changes(
    side: str, base_asset: str, quote_asset: str, price: Decimal, quantity: Decimal, fee: Decimal, locked: Decimal
) -> list[BalanceChange]:
    """Book a closing fill (``quantity`` from :func:`close_quantity`; ``locked``: what the position kept locked).

    Long (SELL): base ``-quantity``; quote ``+ N - fee``. Short (BUY): base
    ``+ quantity - fee`` (repays the debt); quote locked released, ``N`` paid.
    """
    n = notional(price, quantity)
    if side == "long":
        return [BalanceChange(base_asset, -quantity), BalanceChange(quote_asset, n - fee)]
    if side == "short":
        return [BalanceChange(base_asset, quantity - fee), BalanceChange(quote_asset, locked - n, -locked)]
    raise ValueError(f"side must be long or short, got {side!r}")


def realised_pnl(
    side: str,
    entry_price: Decimal,
    entry_quantity: Decimal,
    entry_fee: Decimal,
    exit_price: Decimal,
    exit_quantity: Decimal,
    exit_fee: Decimal,
) -> tuple[Decimal, Decimal]:
    """Realised PnL in the quote asset, and its percent of the entry notional.

    The quote flow of the position's two fills: long ``(exit N - exit fee) -
    entry N`` (the entry fee was paid in base: it is why fewer units are sold);
    short ``(entry N - entry fee) - exit N`` (the exit fee was paid in base: it
    is why more units are bought). Base-asset dust left by step-size rounding is
    not part of it; it stays on the account (and in :func:`equity`).
    ``pnl_percent = pnl / entry N * 100`` rounded to 4 dp.
    """
    entry_n = notional(entry_price, entry_quantity)
    exit_n = notional(exit_price, exit_quantity)
    if side == "long":
        pnl = exit_n - exit_fee - entry_n
    elif side == "short":
        pnl = entry_n - entry_fee - exit_n
    else:
        raise ValueError(f"side must be long or short, got {side!r}")
    pct = (pnl / entry_n * _HUNDRED).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN) if entry_n else Decimal(0)
    return pnl, pct


def equity(balances: Balances, quote_asset: str, price_of: Callable[[str], Decimal | None]) -> Decimal:
    """Account value in the quote asset: quote total plus every other asset's total at ``price_of(asset)``.

    A negative total (a short's borrowed base) counts negatively.

    Raises:
        LookupError: an asset with a non-zero total has no price.
    """
    total = Decimal(0)
    for asset, (free, locked) in balances.items():
        amount = free + locked
        if asset == quote_asset:
            total += amount
        elif amount:
            price = price_of(asset)
            if price is None:
                raise LookupError(f"no price for {asset} to value the account")
            total += amount * price
    return _q(total)
