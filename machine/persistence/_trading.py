"""Positions, trades (order intents and fills) and paper accounts.

Order of writes (persist before acting):

1. :meth:`TradingRepository.create_open_intent` inserts the position
   (``pending``) and its opening trade (``pending``, deterministic client order
   id) in one transaction, before the order is sent.
2. :meth:`TradingRepository.record_open_fill` marks the trade ``filled``, opens
   the position, books the fill on the paper account and moves the signal to
   ``position_open``, in one transaction.
3. Closing mirrors it: :meth:`create_close_intent`, then :meth:`record_close_fill`.

``uq_trades_position_purpose`` and the unique client order id make a second
intent for the same order impossible, so a restart can never send it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

import asyncpg

from machine.money import balance_delta, position_pnl

__all__ = ["PositionRecord", "TradeRecord", "TradingRepository"]


@dataclass(frozen=True, slots=True)
class PositionRecord:
    id: UUID
    signal_id: UUID
    trader_id: UUID
    mode: str
    symbol: str
    side: str
    status: str
    entry_price: Decimal | None
    size: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    fees: Decimal

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> "PositionRecord":
        return cls(
            r["id"], r["signal_id"], r["trader_id"], r["mode"], r["symbol"], r["side"], r["status"],
            r["entry_price"], r["size"], r["stop_loss"], r["take_profit"], r["fees"],
        )


@dataclass(frozen=True, slots=True)
class TradeRecord:
    id: UUID
    position_id: UUID
    trader_id: UUID
    purpose: str
    side: str
    symbol: str
    client_order_id: str
    quantity: Decimal
    status: str
    type: str


class TradingRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # ------------------------------------------------------------ accounts
    async def ensure_account(self, trader_id: UUID, user_id: UUID, start_balance: Decimal, quote_asset: str) -> Decimal:
        """Create the trader's paper account if missing; return its quote balance."""
        await self._pool.execute(
            "INSERT INTO paper_accounts (trader_id, user_id, quote_asset, start_balance, balance) "
            "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (trader_id) DO NOTHING",
            trader_id,
            user_id,
            quote_asset,
            start_balance,
        )
        return await self._pool.fetchval("SELECT balance FROM paper_accounts WHERE trader_id = $1", trader_id)

    async def balance(self, trader_id: UUID) -> Decimal | None:
        return await self._pool.fetchval("SELECT balance FROM paper_accounts WHERE trader_id = $1", trader_id)

    # ------------------------------------------------------------ opening
    async def create_open_intent(
        self,
        *,
        signal_id: UUID,
        trader_id: UUID,
        user_id: UUID,
        mode: str,
        symbol: str,
        side: str,
        quantity: Decimal,
        client_order_id: str,
        position_id: UUID,
    ) -> TradeRecord:
        """Insert the pending position and its pending opening trade (one transaction).

        Raises:
            asyncpg.UniqueViolationError: the trader already has a live position on
                ``symbol`` or the client order id exists (nothing is written).
        """
        order_side = "BUY" if side == "long" else "SELL"
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO positions (id, signal_id, trader_id, user_id, mode, symbol, side, status, size) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)",
                position_id, signal_id, trader_id, user_id, mode, symbol, side, quantity,
            )
            trade_id = await conn.fetchval(
                "INSERT INTO trades (position_id, trader_id, user_id, type, purpose, side, symbol, client_order_id, quantity, status) "
                "VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, 'pending') RETURNING id",
                position_id, trader_id, user_id, mode, order_side, symbol, client_order_id, quantity,
            )
        return TradeRecord(trade_id, position_id, trader_id, "open", order_side, symbol, client_order_id, quantity, "pending", mode)

    async def record_open_fill(
        self,
        trade: TradeRecord,
        *,
        price: Decimal,
        quantity: Decimal,
        fee: Decimal,
        fee_asset: str,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        signal_id: UUID,
        order_id: int | None = None,
    ) -> PositionRecord:
        """Book the opening fill: trade filled, position open, balance, signal ``position_open``."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE trades SET status = 'filled', price = $2, quantity = $3, fee = $4, fee_asset = $5, "
                "binance_order_id = $6, executed_at = NOW() WHERE id = $1 AND status = 'pending'",
                trade.id, price, quantity, fee, fee_asset, order_id,
            )
            row = await conn.fetchrow(
                "UPDATE positions SET status = 'open', entry_price = $2, size = $3, fees = fees + $4, stop_loss = $5, "
                "take_profit = $6, opened_at = NOW() WHERE id = $1 RETURNING *",
                trade.position_id, price, quantity, fee, stop_loss, take_profit,
            )
            if trade.type == "paper":
                await self._book(conn, trade.trader_id, balance_delta(trade.side, price, quantity, fee))
            await conn.execute(
                "UPDATE signals SET status = 'position_open', current_price = $2, updated_at = NOW() WHERE id = $1",
                signal_id, price,
            )
        return PositionRecord.from_row(row)

    # ------------------------------------------------------------ closing
    async def create_close_intent(
        self, position: PositionRecord, user_id: UUID, client_order_id: Callable[[int], str]
    ) -> TradeRecord | None:
        """Insert the pending closing trade; None when one is already pending or filled.

        ``client_order_id(attempt)`` gives the order's id, where ``attempt`` is 1 plus
        the number of earlier (cancelled) closing intents of the position.
        """
        order_side = "SELL" if position.side == "long" else "BUY"
        async with self._pool.acquire() as conn, conn.transaction():
            attempts = await conn.fetchval(
                "SELECT count(*) FROM trades WHERE position_id = $1 AND purpose = 'close'", position.id
            )
            coid = client_order_id(attempts + 1)
            trade_id = await conn.fetchval(
                "INSERT INTO trades (position_id, trader_id, user_id, type, purpose, side, symbol, client_order_id, quantity, status) "
                "VALUES ($1, $2, $3, $4, 'close', $5, $6, $7, $8, 'pending') ON CONFLICT DO NOTHING RETURNING id",
                position.id, position.trader_id, user_id, position.mode, order_side, position.symbol, coid, position.size,
            )
        if trade_id is None:
            return None
        return TradeRecord(
            trade_id, position.id, position.trader_id, "close", order_side, position.symbol, coid,
            position.size, "pending", position.mode,
        )

    async def record_close_fill(
        self,
        position: PositionRecord,
        trade: TradeRecord,
        *,
        price: Decimal,
        fee: Decimal,
        fee_asset: str,
        reason: str,
        order_id: int | None = None,
    ) -> tuple[Decimal, Decimal]:
        """Book the closing fill, close the position and its signal; returns ``(pnl, pnl_percent)``."""
        assert position.entry_price is not None
        fees_total = position.fees + fee
        pnl, pnl_pct = position_pnl(position.side, position.entry_price, price, position.size, fees_total)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE trades SET status = 'filled', price = $2, fee = $3, fee_asset = $4, binance_order_id = $5, "
                "executed_at = NOW() WHERE id = $1 AND status = 'pending'",
                trade.id, price, fee, fee_asset, order_id,
            )
            await conn.execute(
                "UPDATE positions SET status = 'closed', exit_price = $2, fees = $3, pnl = $4, pnl_percent = $5, "
                "closed_at = NOW(), close_reason = $6 WHERE id = $1",
                position.id, price, fees_total, pnl, pnl_pct, reason,
            )
            if trade.type == "paper":
                await self._book(conn, trade.trader_id, balance_delta(trade.side, price, position.size, fee))
            await conn.execute(
                "UPDATE signals SET status = 'closed', close_reason = $2, current_price = $3, closed_at = NOW(), "
                "updated_at = NOW() WHERE id = $1",
                position.signal_id, reason, price,
            )
        return pnl, pnl_pct

    async def update_levels(self, position_id: UUID, stop_loss: Decimal | None, take_profit: Decimal | None) -> None:
        await self._pool.execute(
            "UPDATE positions SET stop_loss = $2, take_profit = $3 WHERE id = $1 AND status = 'open'",
            position_id, stop_loss, take_profit,
        )

    # ------------------------------------------------------------ recovery
    async def open_positions(self, user_id: UUID) -> list[PositionRecord]:
        rows = await self._pool.fetch(
            "SELECT * FROM positions WHERE user_id = $1 AND status = 'open' ORDER BY opened_at", user_id
        )
        return [PositionRecord.from_row(r) for r in rows]

    async def pending_trades(self, user_id: UUID) -> list[TradeRecord]:
        rows = await self._pool.fetch(
            "SELECT * FROM trades WHERE user_id = $1 AND status = 'pending' ORDER BY created_at", user_id
        )
        return [
            TradeRecord(r["id"], r["position_id"], r["trader_id"], r["purpose"], r["side"], r["symbol"],
                        r["client_order_id"], r["quantity"], r["status"], r["type"])
            for r in rows
        ]

    async def cancel_trade(self, trade: TradeRecord, message: str) -> None:
        """Mark an intent that was never sent as cancelled; an unopened position is cancelled with it."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE trades SET status = 'cancelled', error_message = $2 WHERE id = $1 AND status = 'pending'",
                trade.id, message,
            )
            if trade.purpose == "open":
                signal_id = await conn.fetchval(
                    "UPDATE positions SET status = 'cancelled', closed_at = NOW(), close_reason = $2 "
                    "WHERE id = $1 AND status = 'pending' RETURNING signal_id",
                    trade.position_id, message,
                )
                if signal_id is not None:
                    await conn.execute(
                        "UPDATE signals SET status = 'closed', close_reason = 'order_cancelled', closed_at = NOW(), "
                        "updated_at = NOW() WHERE id = $1",
                        signal_id,
                    )

    async def count_live(self, trader_id: UUID) -> int:
        """Positions of the trader that are pending or open."""
        return await self._pool.fetchval(
            "SELECT count(*) FROM positions WHERE trader_id = $1 AND status IN ('pending', 'open')", trader_id
        )

    async def live_position(self, trader_id: UUID, symbol: str) -> PositionRecord | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM positions WHERE trader_id = $1 AND symbol = $2 AND status = 'open'", trader_id, symbol
        )
        return PositionRecord.from_row(row) if row else None

    @staticmethod
    async def _book(conn: asyncpg.Connection, trader_id: UUID, delta: Decimal) -> None:
        await conn.execute(
            "UPDATE paper_accounts SET balance = balance + $2, updated_at = NOW() WHERE trader_id = $1", trader_id, delta
        )
