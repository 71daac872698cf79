"""Paper accounts: per-asset balances and what each fill does to them (``_book``), and a
position's cost basis and PnL as it grows and shrinks (``_cost``)."""

from machine.accounts._book import (
    RESERVE_MARGIN,
    BalanceChange,
    Balances,
    close_fill_changes,
    close_quantity,
    commission,
    commission_asset,
    equity,
    open_fill_changes,
    open_reservation,
    realised_pnl,
)
from machine.accounts._cost import Reduction, close_pnl, cost_of_fill, reduce_changes, reduce_quantity, split_share

__all__ = [
    "RESERVE_MARGIN",
    "BalanceChange",
    "Balances",
    "Reduction",
    "close_fill_changes",
    "close_pnl",
    "close_quantity",
    "commission",
    "commission_asset",
    "cost_of_fill",
    "equity",
    "open_fill_changes",
    "open_reservation",
    "realised_pnl",
    "reduce_changes",
    "reduce_quantity",
    "split_share",
]
