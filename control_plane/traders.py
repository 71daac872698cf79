"""Creating traders: the spec, its validation and the insert.

A trader spec is JSON (see ``examples/traders/*.json``)::

    {"name": str, "description": str, "filter": "file.py" | "filter_code": str,
     "ai_instructions": str, "timeframes": ["1m", "1h"], "check_interval": "1m_close",
     "reanalysis_interval": "5m", "symbols": null | ["BTCUSDT", ...], "mode": "paper",
     "risk": {"stop_loss_pct": 2, "take_profit_pct": 4, "position_size_pct": 10, "max_positions": 3},
     "model_tier": "standard" | "fast", "analysis_candles": 1..1000}

The filter is validated with the production sandbox policy in a worker
(``sandbox.validate_filter``) before it is saved; rejected code is refused.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import asyncpg
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["INTERVALS", "RiskSpec", "TraderRejected", "TraderSpec", "insert_trader", "load_spec"]

INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
_SCHEDULE = re.compile(r"^(\d+[smh]|(" + "|".join(INTERVALS) + r")_close)$")


class TraderRejected(ValueError):
    """The spec or its filter code is not acceptable; the message says why."""


class RiskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_loss_pct: Decimal = Field(default=Decimal(2), gt=0, lt=100)
    take_profit_pct: Decimal = Field(default=Decimal(4), gt=0)
    position_size_pct: Decimal = Field(default=Decimal(10), gt=0, le=100)
    max_positions: int = Field(default=3, ge=0, le=100)


class TraderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    filter_code: str = Field(min_length=1, max_length=100_000)
    ai_instructions: str = Field(min_length=1)
    timeframes: list[str] = Field(min_length=1)
    check_interval: str
    reanalysis_interval: str = "5m"
    symbols: list[str] | None = None
    mode: Literal["paper", "live"] = "paper"
    risk: RiskSpec = RiskSpec()
    model_tier: Literal["standard", "fast"] = "standard"
    analysis_candles: int = Field(default=100, ge=1, le=1000)

    @field_validator("timeframes")
    @classmethod
    def _timeframes(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if v not in INTERVALS]
        if bad:
            raise ValueError(f"unknown interval(s) {bad}; use {', '.join(INTERVALS)}")
        return value

    @field_validator("check_interval", "reanalysis_interval")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not _SCHEDULE.match(value):
            raise ValueError(f"{value!r} must look like '5s', '1m', '1h' or '1h_close'")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [s.upper() for s in value]


def load_spec(path: Path) -> TraderSpec:
    """Read a JSON spec; ``"filter"`` names a Python file relative to the spec.

    Raises:
        TraderRejected: unreadable or invalid spec.
    """
    try:
        raw: dict[str, Any] = orjson.loads(path.read_bytes())
        if "filter" in raw:
            raw["filter_code"] = (path.parent / raw.pop("filter")).read_text()
        return TraderSpec.model_validate(raw)
    except (OSError, orjson.JSONDecodeError, ValueError) as exc:
        raise TraderRejected(f"{path}: {exc}") from exc


def validate_code(code: str) -> dict[str, Any]:
    """Run the sandbox check; returns its result dict.

    Raises:
        TraderRejected: the policy rejects the code or it fails/overruns on real klines.
    """
    from sandbox import validate_filter

    result = validate_filter(code)
    outcome = result.outcome
    if outcome not in ("match", "no_match"):
        raise TraderRejected(f"filter {outcome}: {result.detail}")
    return {"outcome": outcome, "detail": result.detail, "symbols": result.symbols, "matches": result.matches}


async def insert_trader(conn: asyncpg.Connection | asyncpg.Pool, user_id: UUID, spec: TraderSpec, *,
                        status: Literal["active", "paused"] = "active") -> UUID:
    """Insert a trader for ``user_id`` (``active``, or ``paused`` until the user enables it); returns its id."""
    return await conn.fetchval(
        "INSERT INTO traders (user_id, name, description, filter_code, ai_instructions, timeframes, check_interval, "
        "reanalysis_interval, symbols, mode, stop_loss_pct, take_profit_pct, position_size_pct, max_positions, "
        "model_tier, analysis_candles, status) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id",
        user_id, spec.name, spec.description, spec.filter_code, spec.ai_instructions, spec.timeframes,
        spec.check_interval, spec.reanalysis_interval, spec.symbols, spec.mode, spec.risk.stop_loss_pct,
        spec.risk.take_profit_pct, spec.risk.position_size_pct, spec.risk.max_positions, spec.model_tier,
        spec.analysis_candles, status,
    )
