"""Risk states, risk events and trader metrics (migration 011)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

__all__ = ["RiskRepository", "RiskStateRecord"]


@dataclass(frozen=True, slots=True)
class RiskStateRecord:
    """A trader's or user's risk state (``scope`` trader/user); equity figures in the quote asset."""

    scope: str
    subject_id: UUID
    state: str
    reason: str | None
    set_by: str
    equity_peak: Decimal | None
    day: date | None
    day_start_equity: Decimal | None


class RiskRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def states(self, user_id: UUID) -> dict[tuple[str, UUID], RiskStateRecord]:
        rows = await self._pool.fetch("SELECT * FROM risk_states WHERE user_id = $1", user_id)
        return {(r["scope"], r["subject_id"]): RiskStateRecord(
            r["scope"], r["subject_id"], r["state"], r["reason"], r["set_by"], r["equity_peak"], r["day"],
            r["day_start_equity"]) for r in rows}

    async def save_state(self, user_id: UUID, record: RiskStateRecord, *, event: str | None = None,
                         trader_id: UUID | None = None) -> None:
        """Upsert the state; with ``event`` (a transition's reason) a ``state`` event too, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO risk_states (scope, subject_id, user_id, state, reason, set_by, equity_peak, day, "
                "day_start_equity, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NOW()) "
                "ON CONFLICT (scope, subject_id) DO UPDATE SET state = $4, reason = $5, set_by = $6, equity_peak = $7, "
                "day = $8, day_start_equity = $9, updated_at = NOW()",
                record.scope, record.subject_id, user_id, record.state, record.reason, record.set_by,
                record.equity_peak, record.day, record.day_start_equity)
            if event is not None:
                await conn.execute(
                    "INSERT INTO risk_events (user_id, trader_id, kind, state, reason, details) "
                    "VALUES ($1, $2, 'state', $3, $4, $5)",
                    user_id, trader_id, record.state, event, {"scope": record.scope, "setBy": record.set_by})

    async def denied(self, user_id: UUID, trader_id: UUID | None, reason: str, details: dict[str, Any]) -> None:
        """Record a denied order."""
        await self._pool.execute(
            "INSERT INTO risk_events (user_id, trader_id, kind, reason, details) VALUES ($1, $2, 'denied', $3, $4)",
            user_id, trader_id, reason, details)

    async def kill_switch_loss_pct(self, user_id: UUID) -> Decimal | None:
        return await self._pool.fetchval("SELECT user_kill_switch_loss_pct($1)", user_id)

    async def last_losing_close(self, trader_id: UUID, symbol: str) -> datetime | None:
        return await self._pool.fetchval(
            "SELECT max(closed_at) FROM positions WHERE trader_id = $1 AND symbol = $2 AND status = 'closed' "
            "AND pnl < 0", trader_id, symbol)

    async def closed_pnls(self, trader_id: UUID, mode: str) -> list[Decimal]:
        """PnL of the trader's closed positions in ``mode``, in close order."""
        rows = await self._pool.fetch(
            "SELECT pnl FROM positions WHERE trader_id = $1 AND mode = $2 AND status = 'closed' AND pnl IS NOT NULL "
            "ORDER BY closed_at, id", trader_id, mode)
        return [r["pnl"] for r in rows]

    async def activity(self, trader_id: UUID, mode: str) -> tuple[int, int, datetime | None]:
        """``(signals, open positions in mode, last signal time)`` of the trader."""
        row = await self._pool.fetchrow(
            "SELECT (SELECT count(*) FROM signals WHERE trader_id = $1) AS signals, "
            "(SELECT max(created_at) FROM signals WHERE trader_id = $1) AS last_signal, "
            "(SELECT count(*) FROM positions WHERE trader_id = $1 AND mode = $2 AND status IN ('pending', 'open')) "
            "AS open", trader_id, mode)
        return row["signals"], row["open"], row["last_signal"]

    async def save_metrics(self, trader_id: UUID, user_id: UUID, mode: str, metrics: Any,
                           last_signal_at: datetime | None) -> None:
        m = metrics
        await self._pool.execute(
            "INSERT INTO trader_metrics (trader_id, user_id, mode, signals, open_positions, closed_positions, total_pnl, "
            "total_pnl_pct, wins, losses, win_rate, avg_win, avg_loss, max_drawdown, max_drawdown_pct, profit_factor, "
            "last_signal_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
            "$17, NOW()) ON CONFLICT (trader_id, mode) DO UPDATE SET signals = $4, open_positions = $5, "
            "closed_positions = $6, total_pnl = $7, total_pnl_pct = $8, wins = $9, losses = $10, win_rate = $11, "
            "avg_win = $12, avg_loss = $13, max_drawdown = $14, max_drawdown_pct = $15, profit_factor = $16, "
            "last_signal_at = $17, updated_at = NOW()",
            trader_id, user_id, mode, m.signals, m.open_positions, m.closed_positions, m.total_pnl, m.total_pnl_pct,
            m.wins, m.losses, m.win_rate, m.avg_win, m.avg_loss, m.max_drawdown, m.max_drawdown_pct, m.profit_factor,
            last_signal_at)

    async def metrics(self, trader_id: UUID) -> list[asyncpg.Record]:
        return await self._pool.fetch("SELECT * FROM trader_metrics WHERE trader_id = $1 ORDER BY mode", trader_id)
