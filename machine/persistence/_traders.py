"""Reading traders and recording their errors."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from machine.traders import TraderConfig

__all__ = ["TraderRepository"]


class TraderRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load_active(self, user_id: UUID) -> list[TraderConfig]:
        """The user's traders with status ``active``, oldest first."""
        rows = await self._pool.fetch(
            "SELECT * FROM traders WHERE user_id = $1 AND status = 'active' ORDER BY created_at, id", user_id
        )
        return [TraderConfig.from_row(r) for r in rows]

    async def set_error(self, trader_id: UUID, message: str) -> None:
        """Move a trader to ``error`` with a message for its owner (cut to 2 KiB)."""
        await self._pool.execute(
            "UPDATE traders SET status = 'error', error_message = $2, updated_at = NOW() WHERE id = $1",
            trader_id,
            message[:2048],
        )
