"""analysis_history: every decision received, executable or not."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

__all__ = ["AnalysisRepository"]


class AnalysisRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(
        self,
        *,
        signal_id: UUID,
        trader_id: UUID,
        user_id: UUID,
        decision: str,
        executable: bool,
        rejection_reason: str | None,
        reasoning: str,
        confidence: int | None,
        market_data: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        position_id: UUID | None = None,
    ) -> UUID:
        """Store one analysis result before anything is executed; returns its id.

        ``confidence`` outside 0..100 is stored as NULL (the raw value stays in ``metadata``).
        """
        if confidence is not None and not 0 <= confidence <= 100:
            confidence = None
        return await self._pool.fetchval(
            "INSERT INTO analysis_history (signal_id, trader_id, user_id, position_id, decision, executable, "
            "rejection_reason, reasoning, confidence, market_data, metadata) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            signal_id,
            trader_id,
            user_id,
            position_id,
            decision,
            executable,
            rejection_reason,
            reasoning,
            confidence,
            market_data,
            metadata,
        )

    async def count_for_signal(self, signal_id: UUID) -> int:
        """How many analyses the signal has had."""
        return await self._pool.fetchval("SELECT count(*) FROM analysis_history WHERE signal_id = $1", signal_id)

    async def reject(self, analysis_id: UUID, reason: str) -> None:
        """Mark a stored decision as not executed (e.g. denied by risk limits)."""
        await self._pool.execute(
            "UPDATE analysis_history SET executable = false, rejection_reason = $2 WHERE id = $1", analysis_id, reason
        )
