"""Closing positions in batches: the stop-losses one price update fires are written together.

A market move can cross dozens of stops in one update; writing their intents and fills
one position at a time made the last close wait for every other. Here the intents of a
batch are one ``INSERT`` and the fills one transaction of a fixed number of statements
(a read of every position, one statement updating the trades, positions and signals,
one for the balances), whatever the batch size. A batch of one is the single close.

Persist before acting holds per position exactly as before: every intent, with its
client order id, is committed before any of the batch's orders is sent; the unique
indexes (``uq_trades_position_purpose``, the client order id) still refuse a second
intent, and a position whose intent was refused is not in the batch's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

import asyncpg

from machine.accounts import BalanceChange, close_pnl
from machine.persistence._balances import apply_changes

__all__ = ["CloseFill", "CloseIntent", "create_close_intents", "positions_with_close_attempts", "record_close_fills"]

_PCT = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class CloseIntent:
    """A closing order to write: ``client_order_id`` already derived, ``quantity`` in the base asset."""

    position_id: UUID
    trader_id: UUID
    mode: str
    side: str  # order side, BUY or SELL
    symbol: str
    client_order_id: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class CloseFill:
    """A closing fill to book (prices in the quote asset, quantities in the base asset).

    ``changes``: ``machine.accounts.close_fill_changes`` (applied for paper trades only);
    ``fee_quote``: the commission's value in the quote asset.
    """

    trade_id: UUID
    trade_type: str
    position_id: UUID
    trader_id: UUID
    signal_id: UUID
    side: str  # the position's side, long or short
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    fee_quote: Decimal
    changes: Sequence[BalanceChange]
    reason: str
    order_id: int | None = None
    price_time_ms: int | None = None


async def positions_with_close_attempts(
    pool: asyncpg.Pool, position_ids: Sequence[UUID]
) -> dict[UUID, tuple[asyncpg.Record, int]]:
    """Each position as stored now, with the number of closing intents it had (for the next attempt's id)."""
    rows = await pool.fetch(
        "SELECT p.*, (SELECT count(*) FROM trades t WHERE t.position_id = p.id AND t.purpose = 'close') "
        "AS close_attempts FROM positions p WHERE p.id = ANY($1::uuid[])", list(position_ids))
    return {r["id"]: (r, int(r["close_attempts"])) for r in rows}


async def create_close_intents(pool: asyncpg.Pool, user_id: UUID, intents: Sequence[CloseIntent]) -> dict[UUID, UUID]:
    """Insert the pending closing trades in one statement; position id -> trade id of those written.

    A position with a closing trade already pending or filled, or an id already used, gets
    none (the unique indexes decide, also against a concurrent writer)."""
    if not intents:
        return {}
    rows = await pool.fetch(
        "INSERT INTO trades (position_id, trader_id, user_id, type, purpose, side, symbol, client_order_id, quantity, "
        "status) SELECT u.position_id, u.trader_id, $1, u.mode, 'close', u.side, u.symbol, u.coid, u.quantity, 'pending' "
        "FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::numeric[]) "
        "AS u(position_id, trader_id, mode, side, symbol, coid, quantity) "
        "ON CONFLICT DO NOTHING RETURNING id, position_id",
        user_id, [i.position_id for i in intents], [i.trader_id for i in intents], [i.mode for i in intents],
        [i.side for i in intents], [i.symbol for i in intents], [i.client_order_id for i in intents],
        [i.quantity for i in intents],
    )
    return {r["position_id"]: r["id"] for r in rows}


async def record_close_fills(pool: asyncpg.Pool, fills: Sequence[CloseFill]) -> list[tuple[Decimal, Decimal]]:
    """Book every closing fill in one transaction; ``(pnl, pnl_percent)`` per fill, in order.

    PnL is what earlier reduces realised plus ``machine.accounts.close_pnl`` of the fill
    against the cost basis left (quote asset); ``pnl_percent`` is it over the notional of
    every opening and increasing fill. Each trade goes ``filled``, its position ``closed``
    and the position's signal ``closed`` with the reason; paper balances change by the
    fills' ``changes``. All or nothing: on an error nothing is booked (the intents stay
    pending, their fills known to the executor, for a later close to resolve).
    """
    if not fills:
        return []
    ids = [f.position_id for f in fills]
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT p.id, p.cost_basis, p.realized_pnl, (SELECT sum(t.price * t.quantity) FROM trades t "
            "WHERE t.position_id = p.id AND t.purpose IN ('open', 'increase') AND t.status = 'filled') AS invested "
            "FROM positions p WHERE p.id = ANY($1::uuid[]) ORDER BY p.id FOR UPDATE OF p", ids)
        state = {r["id"]: r for r in rows}
        results: list[tuple[Decimal, Decimal]] = []
        for f in fills:
            row = state[f.position_id]
            pnl = row["realized_pnl"] + close_pnl(f.side, f.price, f.quantity, f.fee, row["cost_basis"])
            invested = row["invested"]
            results.append((pnl, (pnl / invested * 100).quantize(_PCT) if invested else Decimal(0)))
        await conn.execute(  # every trade, position and signal in one round trip
            "WITH u AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::numeric[], $5::numeric[], "
            "$6::numeric[], $7::text[], $8::bigint[], $9::bigint[], $10::numeric[], $11::numeric[], $12::numeric[], "
            "$13::text[]) AS u(trade_id, position_id, signal_id, price, quantity, fee, fee_asset, order_id, "
            "price_time_ms, fee_quote, pnl, pnl_pct, reason)), "
            "t AS (UPDATE trades SET status = 'filled', price = u.price, quantity = u.quantity, fee = u.fee, "
            "fee_asset = u.fee_asset, binance_order_id = u.order_id, price_time_ms = u.price_time_ms, "
            "executed_at = NOW() FROM u WHERE trades.id = u.trade_id AND trades.status = 'pending' RETURNING 1), "
            "s AS (UPDATE signals SET status = 'closed', close_reason = u.reason, current_price = u.price, "
            "closed_at = NOW(), updated_at = NOW() FROM u WHERE signals.id = u.signal_id RETURNING 1) "
            "UPDATE positions SET status = 'closed', exit_price = u.price, fees = positions.fees + u.fee_quote, "
            "pnl = u.pnl, pnl_percent = u.pnl_pct, reserved = 0, cost_basis = 0, realized_pnl = u.pnl, "
            "closed_at = NOW(), close_reason = u.reason FROM u WHERE positions.id = u.position_id",
            [f.trade_id for f in fills], ids, [f.signal_id for f in fills], [f.price for f in fills],
            [f.quantity for f in fills], [f.fee for f in fills], [f.fee_asset for f in fills],
            [f.order_id for f in fills], [f.price_time_ms for f in fills], [f.fee_quote for f in fills],
            [r[0] for r in results], [r[1] for r in results], [f.reason for f in fills],
        )
        await apply_changes(conn, [(f.trader_id, c) for f in fills if f.trade_type == "paper" for c in f.changes])
    return results
