"""Recording generations: a ``trader_generations`` row before the LLM is asked, closed with
the paused trader it produced or the reason it failed (migration 009)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from control_plane.generation._generator import GeneratedTrader, GenerationFailed, GenerationMeta, TraderGenerator
from control_plane.generation._prompt import MAX_DESCRIPTION_CHARS, PROMPT_VERSION
from control_plane.traders import insert_trader

__all__ = ["SavedTrader", "UnknownUser", "generate_and_save", "spec_json"]


class UnknownUser(LookupError):
    """No user with that id."""


@dataclass(frozen=True)
class SavedTrader:
    """The generation's row id, the new trader's id (status ``paused``) and what was generated."""

    generation_id: UUID
    trader_id: UUID
    generated: GeneratedTrader


def spec_json(generated: GeneratedTrader) -> dict[str, Any]:
    """The trader as a spec (``examples/traders/*.json`` shape, numbers as JSON numbers)."""
    return generated.spec.model_dump(mode="json")


def _finish_args(meta: GenerationMeta) -> tuple[Any, ...]:
    cost = None if meta.cost_usd is None else Decimal(str(meta.cost_usd))
    return (meta.model, meta.rounds, orjson.dumps(meta.usage).decode(), cost, meta.latency_ms,
            orjson.dumps(list(meta.repairs)).decode())


_FINISH = ("model = $2, rounds = $3, usage = $4::jsonb, cost_usd = $5, latency_ms = $6, repairs = $7::jsonb, "
           "finished_at = now()")


async def generate_and_save(pool: asyncpg.Pool, generator: TraderGenerator, user_id: UUID,
                            description: str) -> SavedTrader:
    """Generate a trader for ``user_id`` and save it ``paused``, recording the generation.

    Raises:
        UnknownUser: no such user (nothing recorded).
        ValueError: empty or too long description (nothing recorded).
        GenerationFailed: recorded as ``failed`` with its reason and cost.
    """
    description = description.strip()
    if not description or len(description) > MAX_DESCRIPTION_CHARS:
        raise ValueError(f"the description must be 1..{MAX_DESCRIPTION_CHARS} characters")
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id):
            raise UnknownUser(f"no user {user_id}")
        generation_id: UUID = await conn.fetchval(
            "INSERT INTO trader_generations (user_id, request, prompt_version, model) VALUES ($1, $2, $3, $4) "
            "RETURNING id", user_id, description, PROMPT_VERSION, generator.model)
    try:
        generated = await generator.generate(description)
    except GenerationFailed as exc:
        await pool.execute(f"UPDATE trader_generations SET status = 'failed', reason = $8, {_FINISH} WHERE id = $1",
                           generation_id, *_finish_args(exc.meta), exc.reason)
        raise
    except BaseException as exc:  # cancelled, or a bug: the row must not stay 'running'
        await pool.execute("UPDATE trader_generations SET status = 'failed', reason = $2, finished_at = now() "
                           "WHERE id = $1", generation_id, f"interrupted: {type(exc).__name__}")
        raise
    async with pool.acquire() as conn, conn.transaction():
        trader_id = await insert_trader(conn, user_id, generated.spec, status="paused")
        await conn.execute(f"UPDATE trader_generations SET status = 'saved', trader_id = $8, {_FINISH} WHERE id = $1",
                           generation_id, *_finish_args(generated.meta), trader_id)
    return SavedTrader(generation_id, trader_id, generated)
