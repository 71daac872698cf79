"""Signals: one row per filter match, written before the analysis call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from uuid import UUID

import asyncpg

__all__ = ["SignalRecord", "SignalRepository"]


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """A signal row.

    Attributes:
        trigger_price: last price (quote asset) when the filter matched.
        market_time_ms: exchange time of the matching tick, ms since the epoch (UTC).
    """

    id: UUID
    trader_id: UUID
    symbol: str
    status: str
    trigger_price: Decimal
    market_time_ms: int = 0


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


class SignalRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, trader_id: UUID, user_id: UUID, symbol: str, market_time_ms: int, trigger_price: Decimal) -> UUID:
        """Insert a ``new`` signal and return its id.

        Args:
            market_time_ms: exchange time of the matching tick, ms since the epoch (UTC).
            trigger_price: last price in the quote asset when the filter matched.
        """
        return await self._pool.fetchval(
            "INSERT INTO signals (trader_id, user_id, symbol, timestamp, status, trigger_price, current_price) "
            "VALUES ($1, $2, $3, $4, 'new', $5, $5) RETURNING id",
            trader_id,
            user_id,
            symbol,
            _ts(market_time_ms),
            trigger_price,
        )

    async def set_watching(self, signal_id: UUID, current_price: Decimal | None) -> None:
        await self._pool.execute(
            "UPDATE signals SET status = 'watching', current_price = COALESCE($2, current_price), updated_at = NOW() "
            "WHERE id = $1 AND status IN ('new', 'watching')",
            signal_id,
            current_price,
        )

    async def close(self, signal_id: UUID, reason: str, current_price: Decimal | None = None) -> None:
        """Close a signal that did not (or no longer) lead to a position."""
        await self._pool.execute(
            "UPDATE signals SET status = 'closed', close_reason = $2, closed_at = NOW(), "
            "current_price = COALESCE($3, current_price), updated_at = NOW() WHERE id = $1 AND status <> 'closed'",
            signal_id,
            reason,
            current_price,
        )

    async def watching(self, user_id: UUID) -> list[SignalRecord]:
        rows = await self._pool.fetch(
            "SELECT id, trader_id, symbol, status, trigger_price, timestamp FROM signals "
            "WHERE user_id = $1 AND status = 'watching' ORDER BY created_at",
            user_id,
        )
        return [
            SignalRecord(r["id"], r["trader_id"], r["symbol"], r["status"], r["trigger_price"],
                         int(r["timestamp"].timestamp() * 1000))
            for r in rows
        ]  # fmt: skip

    async def close_interrupted(self, user_id: UUID) -> int:
        """Close ``new`` signals whose analysis a previous run never finished; returns how many."""
        result = await self._pool.execute(
            "UPDATE signals SET status = 'closed', close_reason = 'interrupted', closed_at = NOW(), updated_at = NOW() "
            "WHERE user_id = $1 AND status = 'new'",
            user_id,
        )
        return int(result.split()[-1])

    async def has_live(self, trader_id: UUID, symbol: str) -> bool:
        """Whether the trader already has a signal on this symbol awaiting analysis or being watched."""
        return bool(
            await self._pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM signals WHERE trader_id = $1 AND symbol = $2 AND status IN ('new', 'watching'))",
                trader_id,
                symbol,
            )
        )
