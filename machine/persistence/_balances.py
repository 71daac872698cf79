"""Paper balances: adding changes to each (trader, asset)'s free and locked amounts."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from uuid import UUID

import asyncpg

from machine.accounts import BalanceChange

__all__ = ["apply_changes"]


async def apply_changes(conn: asyncpg.Connection, changes: Iterable[tuple[UUID, BalanceChange]]) -> None:
    """Add each ``(trader_id, change)`` to that trader's asset balance, in the caller's transaction.

    One statement for every trader and asset (summed per pair first): an update of the rows
    that exist and an insert of the others. Not an upsert: ``INSERT ... ON CONFLICT`` checks
    ``locked >= 0`` on the proposed row, and a release (negative ``locked``) would fail.
    """
    totals: dict[tuple[UUID, str], list[Decimal]] = {}
    for trader_id, change in changes:
        free_locked = totals.setdefault((trader_id, change.asset), [Decimal(0), Decimal(0)])
        free_locked[0] += change.free
        free_locked[1] += change.locked
    if not totals:
        return
    keys = list(totals)
    await conn.execute(
        "WITH c (trader_id, asset, free, locked) AS "
        "(SELECT * FROM unnest($1::uuid[], $2::text[], $3::numeric[], $4::numeric[])), "
        "u AS (UPDATE paper_balances b SET free = b.free + c.free, locked = b.locked + c.locked, updated_at = NOW() "
        "FROM c WHERE b.trader_id = c.trader_id AND b.asset = c.asset RETURNING b.trader_id, b.asset) "
        "INSERT INTO paper_balances (trader_id, asset, free, locked) "
        "SELECT c.trader_id, c.asset, c.free, c.locked FROM c "
        "WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.trader_id = c.trader_id AND u.asset = c.asset)",
        [k[0] for k in keys], [k[1] for k in keys], [totals[k][0] for k in keys], [totals[k][1] for k in keys],
    )
