"""Paper accounts: per-asset balances and what each fill does to them (``_book``)."""

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
