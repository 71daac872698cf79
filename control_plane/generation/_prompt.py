"""What the LLM is told and must answer when it writes a trader (:data:`PROMPT_VERSION`).

The system message is the role, the filter contract written by the sandbox from the code
that enforces it (:func:`sandbox.filter_contract`), the trader fields with their
ranges (from :class:`control_plane.traders.TraderSpec`'s own intervals and limits) and
:data:`TRADER_SCHEMA`. The user message is the subscriber's description. A repair round
appends the model's previous answer and the reason it was rejected.
"""

from __future__ import annotations

from typing import Any

import orjson

from control_plane.traders import INTERVALS, RiskSpec, TraderSpec
from sandbox import filter_contract

__all__ = ["PROMPT_VERSION", "TRADER_SCHEMA", "repair_message", "system_message", "user_message"]

PROMPT_VERSION = "trader-generation/v1"
#: Longest description accepted (characters).
MAX_DESCRIPTION_CHARS = 2000

_NUMBER = {"type": "number"}

#: The answer's JSON schema (strict structured-output form: every property required,
#: optional values nullable, no other properties). Field names are the trader spec's
#: (``examples/traders/*.json``), so an answer is a spec; ranges are checked after.
TRADER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "filter_code": {"type": "string"},
        "ai_instructions": {"type": "string"},
        "timeframes": {"type": "array", "items": {"type": "string", "enum": list(INTERVALS)}},
        "check_interval": {"type": "string"},
        "reanalysis_interval": {"type": "string"},
        "symbols": {"type": ["array", "null"], "items": {"type": "string"}},
        "risk": {
            "type": "object",
            "properties": {"stop_loss_pct": _NUMBER, "take_profit_pct": _NUMBER, "position_size_pct": _NUMBER,
                           "max_positions": {"type": "integer"}},
            "required": ["stop_loss_pct", "take_profit_pct", "position_size_pct", "max_positions"],
            "additionalProperties": False,
        },
        "model_tier": {"type": "string", "enum": ["standard", "fast"]},
        "analysis_candles": {"type": "integer"},
    },
    "required": ["name", "description", "filter_code", "ai_instructions", "timeframes", "check_interval",
                 "reanalysis_interval", "symbols", "risk", "model_tier", "analysis_candles"],
    "additionalProperties": False,
}


def _bounds(model: type, name: str) -> str:
    """``ge``/``gt``/``le``/``lt`` of a pydantic field, as text (``> 0, < 100``)."""
    parts = []
    for meta in model.model_fields[name].metadata:  # type: ignore[attr-defined]
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return ", ".join(parts)


def _fields() -> str:
    return "\n".join([
        "## The trader you answer (one JSON object)",
        "- name: short, at most 200 characters. description: one or two sentences for the user.",
        "- filter_code: the filter (contract above). It must run cleanly on real klines of 20 symbols.",
        "- ai_instructions: what the analyst LLM should weigh when the filter matches: entry",
        "  confirmation, when to stay out, how to manage an open position.",
        f"- timeframes: the intervals the filter reads (klines keys), from: {', '.join(INTERVALS)}.",
        "- check_interval: when the filter runs: a fixed period like 30s, 1m, 5m, 1h, or a candle",
        "  close like 1m_close, 15m_close, 1h_close (preferred for candle-based rules).",
        "- reanalysis_interval: how often an open position is analysed again, same format.",
        "- symbols: null to screen every USDT pair, or a list like [\"BTCUSDT\", \"ETHUSDT\"].",
        f"- risk.stop_loss_pct ({_bounds(RiskSpec, 'stop_loss_pct')}), risk.take_profit_pct"
        f" ({_bounds(RiskSpec, 'take_profit_pct')}): percent from the entry price;"
        f" risk.position_size_pct ({_bounds(RiskSpec, 'position_size_pct')}): percent of the quote balance"
        f" per position; risk.max_positions ({_bounds(RiskSpec, 'max_positions')}).",
        "- model_tier: standard (careful) or fast (cheap) analysis.",
        f"- analysis_candles ({_bounds(TraderSpec, 'analysis_candles')}): candles per interval the analyst sees.",
    ])


def system_message() -> str:
    """The system prompt (see the module doc)."""
    return "\n\n".join([
        "You write automated crypto traders for Binance Spot. From the user's description you write a\n"
        "filter (Python, run in a restricted sandbox) that decides which symbols match right now, the\n"
        "instructions for the analyst that decides the trade on a match, and the trader's settings.\n"
        "Write plain, robust code: check every helper result for None, use only the timeframes you list,\n"
        "keep it short. The trader is saved paused and runs in paper mode until the user enables it.",
        filter_contract(),
        _fields(),
        "Answer with one JSON object and nothing else, matching this JSON schema:\n"
        + orjson.dumps(TRADER_SCHEMA).decode(),
    ])


def user_message(description: str) -> str:
    """The user's description, as the model sees it."""
    return f"Write a trader for this description:\n\n{description}"


def repair_message(reason: str) -> str:
    """What a repair round tells the model about its rejected answer."""
    return (f"Your trader was rejected: {reason}\n\nFix it and answer the whole trader again as one JSON "
            "object matching the schema.")
