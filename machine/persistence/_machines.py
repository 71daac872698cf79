"""The machine's own row in ``fly_machines`` (heartbeat)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

__all__ = ["MachineRepository"]


class MachineRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def heartbeat(self, user_id: UUID, machine_id: str | None, stats: dict[str, Any]) -> int:
        """Set ``last_heartbeat = NOW()`` and ``stats`` on this machine's live row; returns rows updated.

        With a Fly machine id the row is matched by it (and a ``provisioning``/``starting``
        row becomes ``running``, as does an ``error`` row: the fleet marked it silent and it
        is back); otherwise by the user's live (not destroyed) row.
        """
        if machine_id:
            result = await self._pool.execute(
                "UPDATE fly_machines SET last_heartbeat = NOW(), stats = $2, status = CASE WHEN status IN "
                "('provisioning','starting','error') THEN 'running' ELSE status END, updated_at = NOW() "
                "WHERE machine_id = $1 AND status <> 'destroyed'",
                machine_id, stats,
            )
        else:
            result = await self._pool.execute(
                "UPDATE fly_machines SET last_heartbeat = NOW(), stats = $2, updated_at = NOW() "
                "WHERE user_id = $1 AND status <> 'destroyed'",
                user_id, stats,
            )
        return int(result.split()[-1])
