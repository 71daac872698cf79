"""Re-running a stored analysis offline, from the input its row kept.

``analysis_history.market_data`` holds what the machine sent (``marketData`` with the
candles as sent, and under ``request`` the instructions, position, mode and user), so a
stored analysis can be asked again of any backend: a prompt or model change judged
against the decisions it would have changed. Rows stored before the candles were kept
replay from their indicators alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from control_plane.analysis._backend import AnalysisBackend
from control_plane.analysis._errors import InvalidAnalysisRequest
from control_plane.analysis._schemas import AnalysisResult, AnalyzeSignalRequest

__all__ = ["Replay", "replay_analysis", "stored_request"]


@dataclass(frozen=True)
class Replay:
    """The stored analysis (``stored``: decision, confidence, reasoning, metadata) and the new ``result``."""

    analysis_id: UUID
    stored: dict[str, Any]
    result: AnalysisResult


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def stored_request(row: Mapping[str, Any]) -> AnalyzeSignalRequest:
    """The request an ``analysis_history`` row was answered for.

    Raises InvalidAnalysisRequest when the row keeps no usable input."""
    market = dict(_json(row["market_data"]) or {})
    extra = market.pop("request", None) or {}
    payload = {
        "traderId": str(row["trader_id"]),
        "signalId": str(row["signal_id"]),
        "userId": str(row["user_id"]),
        "marketData": {"ticker": {}, **market},
        **extra,
    }
    try:
        return AnalyzeSignalRequest.model_validate(payload)
    except Exception as exc:  # noqa: BLE001 - any malformed stored input is one clear error
        raise InvalidAnalysisRequest(f"analysis {row['id']} keeps no replayable input: {exc}") from None


async def replay_analysis(pool: asyncpg.Pool, analysis_id: UUID, backend: AnalysisBackend) -> Replay:
    """Ask ``backend`` again for stored analysis ``analysis_id``.

    Raises LookupError for an unknown id, InvalidAnalysisRequest without usable input, and
    what the backend raises (e.g. InsufficientMarketData)."""
    row = await pool.fetchrow("SELECT * FROM analysis_history WHERE id = $1", analysis_id)
    if row is None:
        raise LookupError(f"analysis {analysis_id} does not exist")
    result = await backend.analyze(stored_request(row))
    stored = {"decision": row["decision"], "confidence": row["confidence"], "reasoning": row["reasoning"],
              "executable": row["executable"], "metadata": _json(row["metadata"]) or {}}
    return Replay(analysis_id, stored, result)
