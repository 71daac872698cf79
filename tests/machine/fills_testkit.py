"""An independent computation of a position's realised PnL from its fills and the fee rule alone,
shared by the tests that reconcile the machine's books (never the machine's own code)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

EIGHT = Decimal("0.00000001")
CLOSES = ("close", "stop_loss", "take_profit")


def average_cost_pnl(fills: Sequence[Mapping[str, object]]) -> Decimal:
    """A position's PnL realised so far, from its fills in order (``purpose``, ``side``, ``quantity``,
    ``quote_quantity``, ``fee``; numbers or decimal strings): at the average cost, a long's cost
    basis is the quote its BUYs spent, a short's the proceeds its SELLs kept net of commission; a
    reduce realises its net proceeds (long) or its share of the kept proceeds (short) minus its
    share of the cost basis (short: what its BUY paid); a close takes what is left."""
    long = fills[0]["side"] == "BUY"
    size = cost = pnl = Decimal(0)
    for r in fills:
        qty, n, fee = (Decimal(str(r[k])) for k in ("quantity", "quote_quantity", "fee"))
        if r["purpose"] in ("open", "increase"):
            size += qty - fee if long else qty
            cost += n if long else n - fee
            continue
        got = qty if long else qty - fee
        out = cost if r["purpose"] in CLOSES or got >= size else (cost * got / size).quantize(EIGHT, ROUND_HALF_EVEN)
        pnl += (n - fee - out) if long else (out - n)
        size -= got
        cost -= out
    return pnl
