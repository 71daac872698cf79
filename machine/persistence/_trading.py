"""Positions, trades (order intents and fills) and paper accounts (per-asset balances).

Order of writes (persist before acting):

1. :meth:`TradingRepository.create_open_intent` inserts the position
   (``pending``) and its opening trade (``pending``, deterministic client order
   id) and, for paper, reserves the quote asset (free -> locked; refused with
   :class:`InsufficientFunds` when free does not cover it), in one transaction,
   before the order is sent.
2. :meth:`TradingRepository.record_open_fill` marks the trade ``filled``, opens
   the position, books the fill on the paper account and moves the signal to
   ``position_open``, in one transaction.
3. Closing mirrors it: :meth:`create_close_intents`, then :meth:`record_close_fills`,
   for every position one price update closes at once (``machine.persistence._closes``).

``uq_trades_position_purpose`` and the unique client order id make a second
intent for the same order impossible, so a restart can never send it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

import asyncpg

from machine.accounts import BalanceChange, Reduction, cost_of_fill
from machine.persistence._balances import apply_changes
from machine.persistence._closes import (
    CloseFill,
    CloseIntent,
    create_close_intents,
    positions_with_close_attempts,
    record_close_fills,
)

__all__ = ["InsufficientFunds", "PositionRecord", "TradeRecord", "TradingRepository"]


class _StepTaken(Exception):
    """The sequence step already has a pending or filled order."""


class InsufficientFunds(Exception):
    """The paper account's free quote balance does not cover an open's reservation (nothing was written).

    Attributes:
        needed: the reservation, in the quote asset.
        free: the free quote balance at the time.
    """

    def __init__(self, needed: Decimal, free: Decimal) -> None:
        super().__init__(f"insufficient buying power: {needed:f} needed, {free:f} free")
        self.needed = needed
        self.free = free


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
    reserved: Decimal = Decimal(0)
    paper_only: bool = False
    cost_basis: Decimal | None = None
    realized_pnl: Decimal = Decimal(0)
    exit_attempt: int = 0
    exit_order_list_id: int | None = None

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> "PositionRecord":
        """``size``: base asset held (long) or owed (short); ``fees``: quote-asset equivalent of the
        commissions; ``reserved``: quote locked for the position; ``cost_basis``: the quote its
        size stands for (``machine.accounts._cost``); ``realized_pnl``: what its reduces realised."""
        return cls(
            r["id"], r["signal_id"], r["trader_id"], r["mode"], r["symbol"], r["side"], r["status"],
            r["entry_price"], r["size"], r["stop_loss"], r["take_profit"], r["fees"], r["reserved"], r["paper_only"],
            r["cost_basis"], r["realized_pnl"], r.get("exit_attempt", 0), r.get("exit_order_list_id"),
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
    reserved: Decimal = Decimal(0)
    sequence_id: UUID | None = None  # an order sequence step's order (increase/reduce): its sequence and step
    step: int | None = None


class TradingRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # ------------------------------------------------------------ accounts
    async def ensure_account(self, trader_id: UUID, user_id: UUID, start_balance: Decimal, quote_asset: str) -> None:
        """Create the trader's paper account (``start_balance`` of free ``quote_asset``) if missing."""
        async with self._pool.acquire() as conn, conn.transaction():
            created = await conn.fetchval(
                "INSERT INTO paper_accounts (trader_id, user_id, quote_asset, start_balance) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (trader_id) DO NOTHING RETURNING trader_id",
                trader_id, user_id, quote_asset, start_balance,
            )
            if created is not None:
                await conn.execute(
                    "INSERT INTO paper_balances (trader_id, asset, free) VALUES ($1, $2, $3)",
                    trader_id, quote_asset, start_balance,
                )

    async def set_fill_assumptions(
        self, trader_id: UUID, taker_rate: Decimal, maker_rate: Decimal, slippage_bps: Decimal
    ) -> None:
        """Record the commission rates and slippage this machine fills the trader's paper orders with."""
        await self._pool.execute(
            "UPDATE paper_accounts SET taker_rate = $2, maker_rate = $3, slippage_bps = $4, updated_at = NOW() "
            "WHERE trader_id = $1", trader_id, taker_rate, maker_rate, slippage_bps,
        )

    async def balances(self, trader_id: UUID) -> dict[str, tuple[Decimal, Decimal]]:
        """The paper account's balances: asset -> ``(free, locked)`` (free < 0: borrowed by a short)."""
        rows = await self._pool.fetch(
            "SELECT asset, free, locked FROM paper_balances WHERE trader_id = $1 ORDER BY asset", trader_id
        )
        return {r["asset"]: (r["free"], r["locked"]) for r in rows}

    async def account(self, trader_id: UUID) -> asyncpg.Record | None:
        """The ``paper_accounts`` row (``quote_asset``, ``start_balance``)."""
        return await self._pool.fetchrow("SELECT * FROM paper_accounts WHERE trader_id = $1", trader_id)

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
        reserve: Decimal = Decimal(0),
        quote_asset: str = "USDT",
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
    ) -> TradeRecord:
        """Insert the pending position and its pending opening trade, reserving funds (one transaction).

        Args:
            reserve: quote asset moved from free to locked on the paper account
                (``machine.accounts.open_reservation``); kept on the position as ``reserved``.
            stop_loss, take_profit: the levels planned for the expected entry (quote asset), kept on
                the pending position so an opening fill found after a restart opens it with them.

        Raises:
            InsufficientFunds: free quote below ``reserve`` (nothing is written).
            asyncpg.UniqueViolationError: the trader already has a live position on
                ``symbol`` or the client order id exists (nothing is written).
        """
        order_side = "BUY" if side == "long" else "SELL"
        async with self._pool.acquire() as conn, conn.transaction():
            if mode == "paper" and reserve > 0:
                taken = await conn.fetchval(
                    "UPDATE paper_balances SET free = free - $3, locked = locked + $3, updated_at = NOW() "
                    "WHERE trader_id = $1 AND asset = $2 AND free >= $3 RETURNING free",
                    trader_id, quote_asset, reserve,
                )
                if taken is None:
                    free = await conn.fetchval(
                        "SELECT free FROM paper_balances WHERE trader_id = $1 AND asset = $2", trader_id, quote_asset
                    )
                    raise InsufficientFunds(reserve, free or Decimal(0))
            await conn.execute(
                "INSERT INTO positions (id, signal_id, trader_id, user_id, mode, symbol, side, status, size, reserved, "
                "paper_only, stop_loss, take_profit) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $11, $12)",
                position_id, signal_id, trader_id, user_id, mode, symbol, side, quantity,
                reserve if mode == "paper" else Decimal(0), side == "short", stop_loss, take_profit,
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
        fee_quote: Decimal,
        held: Decimal,
        locked: Decimal,
        changes: list[BalanceChange],
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        signal_id: UUID,
        order_id: int | None = None,
        price_time_ms: int | None = None,
    ) -> PositionRecord:
        """Book the opening fill: trade filled, position open, balances, signal ``position_open``.

        Args:
            price, quantity, fee, fee_asset: the fill as executed (commission in ``fee_asset``).
            fee_quote: the commission's value in the quote asset (for the position's ``fees``).
            held, locked, changes: from ``machine.accounts.open_fill_changes`` (size held or
                owed, quote the position keeps locked, balance changes; applied for paper only).
        """
        side = "long" if trade.side == "BUY" else "short"
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(  # the trade, the signal and the position in one round trip
                "WITH t AS (UPDATE trades SET status = 'filled', price = $2, quantity = $3, fee = $4, fee_asset = $5, "
                "binance_order_id = $6, price_time_ms = $7, executed_at = NOW() WHERE id = $1 AND status = 'pending' "
                "RETURNING 1), "
                "s AS (UPDATE signals SET status = 'position_open', current_price = $2, updated_at = NOW() "
                "WHERE id = $14 RETURNING 1) "
                "UPDATE positions SET status = 'open', entry_price = $2, size = $9, fees = fees + $10, stop_loss = $11, "
                "take_profit = $12, reserved = $13, cost_basis = $15, opened_at = NOW() WHERE id = $8 RETURNING *",
                trade.id, price, quantity, fee, fee_asset, order_id, price_time_ms,
                trade.position_id, held, fee_quote, stop_loss, take_profit,
                locked if trade.type == "paper" else Decimal(0), signal_id, cost_of_fill(side, price, quantity, fee),
            )
            if trade.type == "paper":
                await self._apply(conn, trade.trader_id, changes)
        return PositionRecord.from_row(row)

    # ------------------------------------------------------------ closing
    async def pending_close(self, position_id: UUID) -> TradeRecord | None:
        """The position's closing intent that is still ``pending`` (sent or not, never booked), if any."""
        r = await self._pool.fetchrow(
            "SELECT * FROM trades WHERE position_id = $1 AND purpose = 'close' AND status = 'pending'", position_id
        )
        return _trade(r) if r else None

    async def record_close_fill(
        self,
        position: PositionRecord,
        trade: TradeRecord,
        *,
        price: Decimal,
        quantity: Decimal,
        fee: Decimal,
        fee_asset: str,
        fee_quote: Decimal,
        changes: list[BalanceChange],
        reason: str,
        order_id: int | None = None,
        price_time_ms: int | None = None,
    ) -> tuple[Decimal, Decimal]:
        """Book one closing fill (:meth:`record_close_fills` of one); returns ``(pnl, pnl_percent)``."""
        [result] = await self.record_close_fills([CloseFill(
            trade.id, trade.type, position.id, position.trader_id, position.signal_id, position.side, price, quantity,
            fee, fee_asset, fee_quote, changes, reason, order_id, price_time_ms)])
        return result

    # ------------------------------------------------------------ closing in batches
    async def positions_with_close_attempts(self, position_ids: list[UUID]) -> dict[UUID, tuple[PositionRecord, int]]:
        """Each position as stored now and how many closing intents it had (``_closes``)."""
        rows = await positions_with_close_attempts(self._pool, position_ids)
        return {pid: (PositionRecord.from_row(row), n) for pid, (row, n) in rows.items()}

    async def create_close_intents(self, user_id: UUID, intents: list[CloseIntent]) -> dict[UUID, UUID]:
        """The pending closing trades, one statement; position id -> trade id of those written (``_closes``)."""
        return await create_close_intents(self._pool, user_id, intents)

    async def record_close_fills(self, fills: list[CloseFill]) -> list[tuple[Decimal, Decimal]]:
        """Book closing fills in one transaction; ``(pnl, pnl_percent)`` each (``_closes``)."""
        return await record_close_fills(self._pool, fills)

    # ------------------------------------------------------------ changing size (order sequences)
    async def position(self, position_id: UUID) -> PositionRecord | None:
        """The position as stored now."""
        row = await self._pool.fetchrow("SELECT * FROM positions WHERE id = $1", position_id)
        return PositionRecord.from_row(row) if row else None

    async def step_trade(self, sequence_id: UUID, step: int) -> TradeRecord | None:
        """The order of a sequence step that is pending or filled, if any."""
        row = await self._pool.fetchrow(
            "SELECT * FROM trades WHERE sequence_id = $1 AND step = $2 AND status IN ('pending', 'filled')",
            sequence_id, step)
        return _trade(row) if row else None

    async def create_step_intent(
        self, position: PositionRecord, user_id: UUID, *, purpose: str, sequence_id: UUID, step: int,
        client_order_id: Callable[[int], str], quantity: Decimal, reserve: Decimal = Decimal(0),
        quote_asset: str = "USDT",
    ) -> TradeRecord | None:
        """Insert the pending ``increase``/``reduce`` order of a sequence step (one transaction);
        None when the step already has one pending or filled.

        An ``increase`` reserves ``reserve`` of the quote asset on the paper account (free ->
        locked), kept on the trade as ``reserved`` until its fill is booked or it is cancelled. ``client_order_id(attempt)``:
        ``attempt`` is 1 plus the step's earlier (cancelled) orders.

        Raises:
            InsufficientFunds: free quote below ``reserve`` (nothing is written).
        """
        if purpose not in ("increase", "reduce"):
            raise ValueError(f"purpose must be increase or reduce, got {purpose!r}")
        adds = (position.side == "long") == (purpose == "increase")
        order_side = "BUY" if adds else "SELL"
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                coid = await self._insert_step_intent(conn, position, user_id, purpose, order_side, sequence_id, step,
                                                      client_order_id, quantity, reserve, quote_asset)
        except _StepTaken:
            return None
        return TradeRecord(coid[0], position.id, position.trader_id, purpose, order_side, position.symbol, coid[1],
                           quantity, "pending", position.mode, reserve if position.mode == "paper" else Decimal(0))

    async def _insert_step_intent(
        self, conn: asyncpg.Connection, position: PositionRecord, user_id: UUID, purpose: str, order_side: str,
        sequence_id: UUID, step: int, client_order_id: Callable[[int], str], quantity: Decimal, reserve: Decimal,
        quote_asset: str,
    ) -> tuple[UUID, str]:
        """Reserve (paper), then insert the intent; raises ``_StepTaken`` (rolling back) when the step has one."""
        attempts = await conn.fetchval("SELECT count(*) FROM trades WHERE sequence_id = $1 AND step = $2",
                                       sequence_id, step)
        if position.mode == "paper" and reserve > 0:
            taken = await conn.fetchval(
                "UPDATE paper_balances SET free = free - $3, locked = locked + $3, updated_at = NOW() "
                "WHERE trader_id = $1 AND asset = $2 AND free >= $3 RETURNING free",
                position.trader_id, quote_asset, reserve)
            if taken is None:
                free = await conn.fetchval("SELECT free FROM paper_balances WHERE trader_id = $1 AND asset = $2",
                                           position.trader_id, quote_asset)
                raise InsufficientFunds(reserve, free or Decimal(0))
        coid = client_order_id(attempts + 1)
        trade_id = await conn.fetchval(
            "INSERT INTO trades (position_id, trader_id, user_id, type, purpose, side, symbol, client_order_id, "
            "quantity, status, sequence_id, step, reserved) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12) ON CONFLICT DO NOTHING RETURNING id",
            position.id, position.trader_id, user_id, position.mode, purpose, order_side, position.symbol, coid,
            quantity, sequence_id, step, reserve if position.mode == "paper" else Decimal(0))
        if trade_id is None:
            raise _StepTaken  # rolls the reservation back
        return trade_id, coid

    async def record_increase_fill(
        self, position: PositionRecord, trade: TradeRecord, *, price: Decimal, quantity: Decimal, fee: Decimal,
        fee_asset: str, fee_quote: Decimal, added: Decimal, locked: Decimal, changes: list[BalanceChange],
        order_id: int | None = None, price_time_ms: int | None = None,
    ) -> PositionRecord:
        """Book an ``increase`` fill: the trade filled; the position's size + ``added``, ``reserved``
        + ``locked`` (a short's collateral and proceeds), cost basis + the fill's
        (``machine.accounts.cost_of_fill``), entry price the quantity-weighted average of its
        opening and increasing fills; the balance changes (paper)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._fill(conn, trade, price, quantity, fee, fee_asset, order_id, price_time_ms)
            bought = await conn.fetchrow(
                "SELECT sum(price * quantity) AS n, sum(quantity) AS q FROM trades WHERE position_id = $1 "
                "AND purpose IN ('open', 'increase') AND status = 'filled'", position.id)
            entry = (bought["n"] / bought["q"]).quantize(Decimal("0.00000001"))
            row = await conn.fetchrow(
                "UPDATE positions SET size = size + $2, reserved = reserved + $3, fees = fees + $4, "
                "cost_basis = cost_basis + $5, entry_price = $6 WHERE id = $1 AND status = 'open' RETURNING *",
                position.id, added, locked if trade.type == "paper" else Decimal(0), fee_quote,
                cost_of_fill(position.side, price, quantity, fee), entry)
            if trade.type == "paper":
                await self._apply(conn, trade.trader_id, changes)
        return PositionRecord.from_row(row)

    async def record_reduce_fill(
        self, position: PositionRecord, trade: TradeRecord, *, price: Decimal, quantity: Decimal, fee: Decimal,
        fee_asset: str, fee_quote: Decimal, reduction: Reduction, order_id: int | None = None,
        price_time_ms: int | None = None,
    ) -> PositionRecord:
        """Book a ``reduce`` fill: the trade filled; the position's size, ``reserved`` and cost basis
        as ``reduction`` (``machine.accounts.reduce_changes``) leaves them, its PnL added to
        ``realized_pnl``; the balance changes (paper)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._fill(conn, trade, price, quantity, fee, fee_asset, order_id, price_time_ms)
            row = await conn.fetchrow(
                "UPDATE positions SET size = $2, reserved = $3, cost_basis = $4, realized_pnl = realized_pnl + $5, "
                "fees = fees + $6 WHERE id = $1 AND status = 'open' RETURNING *",
                position.id, reduction.size, reduction.locked if trade.type == "paper" else Decimal(0),
                reduction.cost_basis, reduction.pnl, fee_quote)
            if trade.type == "paper":
                await self._apply(conn, trade.trader_id, reduction.changes)
        return PositionRecord.from_row(row)

    @staticmethod
    async def _fill(conn: asyncpg.Connection, trade: TradeRecord, price: Decimal, quantity: Decimal, fee: Decimal,
                    fee_asset: str, order_id: int | None, price_time_ms: int | None) -> None:
        await conn.execute(
            "UPDATE trades SET status = 'filled', price = $2, quantity = $3, fee = $4, fee_asset = $5, "
            "binance_order_id = $6, price_time_ms = $7, executed_at = NOW() WHERE id = $1 AND status = 'pending'",
            trade.id, price, quantity, fee, fee_asset, order_id, price_time_ms)

    async def update_levels(
        self, position_id: UUID, stop_loss: Decimal | None, take_profit: Decimal | None
    ) -> PositionRecord | None:
        """Set an open position's stop-loss and take-profit; the position after, or None when it is not open."""
        row = await self._pool.fetchrow(
            "UPDATE positions SET stop_loss = $2, take_profit = $3 WHERE id = $1 AND status = 'open' RETURNING *",
            position_id, stop_loss, take_profit,
        )
        return PositionRecord.from_row(row) if row else None

    # ------------------------------------------------------------ recovery
    async def set_exit_list(self, position_id: UUID, attempt: int, order_list_id: int | None) -> PositionRecord:
        """Record the position's exit list attempt (written before it is sent) and the exchange's
        ``orderListId`` (None while placing or after a cancel); returns the position as stored."""
        row = await self._pool.fetchrow(
            "UPDATE positions SET exit_attempt = $2, exit_order_list_id = $3 WHERE id = $1 RETURNING *",
            position_id, attempt, order_list_id,
        )
        if row is None:
            raise LookupError(f"no position {position_id}")
        return PositionRecord.from_row(row)

    async def save_exchange_balances(self, user_id: UUID, balances: dict[str, tuple[Decimal, Decimal]]) -> None:
        """Record the live account's balances as the exchange reported them: asset -> (free, locked)."""
        if not balances:
            return
        await self._pool.execute(
            "INSERT INTO exchange_balances (user_id, asset, free, locked) "
            "SELECT $1, u.asset, u.free, u.locked FROM unnest($2::text[], $3::numeric[], $4::numeric[]) "
            "AS u(asset, free, locked) ON CONFLICT (user_id, asset) DO UPDATE SET free = EXCLUDED.free, "
            "locked = EXCLUDED.locked, updated_at = NOW()",
            user_id, list(balances), [f for f, _ in balances.values()], [lk for _, lk in balances.values()],
        )

    async def open_positions(self, user_id: UUID) -> list[PositionRecord]:
        rows = await self._pool.fetch(
            "SELECT * FROM positions WHERE user_id = $1 AND status = 'open' ORDER BY opened_at", user_id
        )
        return [PositionRecord.from_row(r) for r in rows]

    async def pending_trades(self, user_id: UUID, older_than_s: float = 0.0) -> list[TradeRecord]:
        """The user's trades still ``pending``, oldest first; ``older_than_s``: only those written at least
        that long ago (an order being sent right now is younger than its timeout)."""
        rows = await self._pool.fetch(
            "SELECT * FROM trades WHERE user_id = $1 AND status = 'pending' "
            "AND created_at <= NOW() - make_interval(secs => $2) ORDER BY created_at", user_id, older_than_s,
        )
        return [_trade(r) for r in rows]

    async def cancel_trade(self, trade: TradeRecord, message: str) -> None:
        """Mark an intent that was never sent as cancelled; an unopened position is cancelled with it,
        and an ``increase``'s reservation is released."""
        async with self._pool.acquire() as conn, conn.transaction():
            reserved = await conn.fetchval(
                "UPDATE trades SET status = 'cancelled', error_message = $2 WHERE id = $1 AND status = 'pending' "
                "RETURNING reserved", trade.id, message,
            )
            if trade.purpose == "increase" and trade.type == "paper" and reserved:
                quote = await conn.fetchval("SELECT quote_asset FROM paper_accounts WHERE trader_id = $1", trade.trader_id)
                await self._apply(conn, trade.trader_id, [BalanceChange(quote, reserved, -reserved)])
            if trade.purpose == "open":
                row = await conn.fetchrow(
                    "SELECT signal_id, reserved FROM positions WHERE id = $1 AND status = 'pending' FOR UPDATE",
                    trade.position_id,
                )
                if row is not None:
                    await conn.execute(
                        "UPDATE positions SET status = 'cancelled', closed_at = NOW(), close_reason = $2, reserved = 0 "
                        "WHERE id = $1", trade.position_id, message,
                    )
                signal_id = row["signal_id"] if row else None
                if row is not None and trade.type == "paper" and row["reserved"] > 0:
                    quote = await conn.fetchval("SELECT quote_asset FROM paper_accounts WHERE trader_id = $1", trade.trader_id)
                    await self._apply(conn, trade.trader_id, [BalanceChange(quote, row["reserved"], -row["reserved"])])
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
    async def _apply(conn: asyncpg.Connection, trader_id: UUID, changes: list[BalanceChange]) -> None:
        """Add each change to the trader's asset balance (``machine.persistence._balances``)."""
        await apply_changes(conn, [(trader_id, c) for c in changes])


def _trade(r: asyncpg.Record) -> TradeRecord:
    return TradeRecord(r["id"], r["position_id"], r["trader_id"], r["purpose"], r["side"], r["symbol"],
                       r["client_order_id"], r["quantity"], r["status"], r["type"], r["reserved"],
                       r.get("sequence_id"), r.get("step"))  # fmt: skip
