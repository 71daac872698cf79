"""Order sequences and their steps (migration 010): written before they run, each step marked
``running`` before it is taken and ``done``/``failed`` after, so a restart knows where each
sequence stood."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

__all__ = ["SequenceRecord", "SequenceRepository", "StepRecord"]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A step: ``kind`` (open, close, reduce, increase, set_levels), ``status`` (pending,
    running, done, failed), ``params`` (what it does), ``result`` (what it did, or why not)."""

    step: int
    kind: str
    status: str
    params: dict[str, Any]
    result: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class SequenceRecord:
    id: UUID
    trader_id: UUID
    signal_id: UUID | None
    analysis_id: UUID | None
    position_id: UUID | None
    symbol: str
    decision: str
    status: str
    error: str | None
    steps: tuple[StepRecord, ...]


class SequenceRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self, *, sequence_id: UUID, user_id: UUID, trader_id: UUID, signal_id: UUID | None, analysis_id: UUID | None,
        position_id: UUID | None, symbol: str, decision: str, steps: Sequence[tuple[str, dict[str, Any]]],
    ) -> None:
        """Insert the sequence (``running``) and its steps (``pending``) in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO order_sequences (id, user_id, trader_id, signal_id, analysis_id, position_id, symbol, "
                "decision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                sequence_id, user_id, trader_id, signal_id, analysis_id, position_id, symbol, decision)
            await conn.executemany(
                "INSERT INTO order_sequence_steps (sequence_id, step, user_id, kind, params) VALUES ($1, $2, $3, $4, $5)",
                [(sequence_id, i, user_id, kind, params) for i, (kind, params) in enumerate(steps)])

    async def start_step(self, sequence_id: UUID, step: int) -> None:
        await self._pool.execute(
            "UPDATE order_sequence_steps SET status = 'running', started_at = coalesce(started_at, NOW()) "
            "WHERE sequence_id = $1 AND step = $2", sequence_id, step)

    async def finish_step(self, sequence_id: UUID, step: int, result: dict[str, Any], *, last: bool) -> None:
        """Mark the step ``done`` with its result; with ``last`` the sequence is ``done`` too (one transaction)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE order_sequence_steps SET status = 'done', result = $3, finished_at = NOW() "
                "WHERE sequence_id = $1 AND step = $2", sequence_id, step, result)
            if last:
                await conn.execute("UPDATE order_sequences SET status = 'done', finished_at = NOW() WHERE id = $1",
                                   sequence_id)

    async def fail(self, sequence_id: UUID, step: int, error: str) -> None:
        """The step failed (or was not resumed): it and the sequence are ``failed`` with ``error``;
        later steps stay ``pending``, never taken."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE order_sequence_steps SET status = 'failed', result = $3, finished_at = NOW() "
                "WHERE sequence_id = $1 AND step = $2", sequence_id, step, {"error": error})
            await conn.execute(
                "UPDATE order_sequences SET status = 'failed', error = $2, finished_at = NOW() WHERE id = $1",
                sequence_id, error)

    async def running(self, user_id: UUID) -> list[SequenceRecord]:
        """The user's sequences still ``running`` (oldest first), with their steps."""
        rows = await self._pool.fetch(
            "SELECT * FROM order_sequences WHERE user_id = $1 AND status = 'running' ORDER BY created_at", user_id)
        return [await self._with_steps(r) for r in rows]

    async def get(self, sequence_id: UUID) -> SequenceRecord | None:
        row = await self._pool.fetchrow("SELECT * FROM order_sequences WHERE id = $1", sequence_id)
        return await self._with_steps(row) if row else None

    async def _with_steps(self, row: asyncpg.Record) -> SequenceRecord:
        steps = await self._pool.fetch(
            "SELECT * FROM order_sequence_steps WHERE sequence_id = $1 ORDER BY step", row["id"])
        return SequenceRecord(
            row["id"], row["trader_id"], row["signal_id"], row["analysis_id"], row["position_id"], row["symbol"],
            row["decision"], row["status"], row["error"],
            tuple(StepRecord(s["step"], s["kind"], s["status"], s["params"], s["result"]) for s in steps),
        )
