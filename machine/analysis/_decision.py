"""Parsing the analysis endpoint's answer into an :class:`AnalysisDecision`.

The answer (seed 002, "2. Analyze Signal")::

    {"success": true,
     "analysis": {"decision": "open_long", "reasoning": "...", "confidence": 85,
                  "metadata": {"stopLoss": 41800, "takeProfit": 44500, "positionSize": 0.1}}}

This is the machine's trust boundary for decisions: the machine never executes an
invalid decision. A body that is not that envelope with a string ``decision`` raises
:class:`AnalysisInvalidResponse`; everything else parses, and ``valid`` is ``False``
(with ``invalid_reason``) when:

* the decision is not in :data:`EXECUTABLE_DECISIONS` (seed 002's other decisions,
  :data:`KNOWN_DECISIONS`, come in later issues; unknown strings are never executed);
* ``reasoning`` is not a string;
* ``confidence`` is present but not a number within 0..100 (it is rounded half-even
  to an int);
* ``metadata`` is not an object, or ``stopLoss``/``takeProfit``/``positionSize`` is
  present but not a finite number > 0 (numeric strings are accepted);
* ``open_long`` has ``stopLoss >= takeProfit``, or ``open_short`` has
  ``stopLoss <= takeProfit``.

Numbers become :class:`~decimal.Decimal` from their JSON text (``json`` with
``parse_float=Decimal``), never through a binary float. ``metadata`` and ``raw`` are
the plain JSON values (``raw`` is the whole body) for storage as JSONB.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import orjson

from machine.analysis._errors import AnalysisInvalidResponse

__all__ = [
    "EXECUTABLE_DECISIONS",
    "KNOWN_DECISIONS",
    "AnalysisDecision",
    "parse_analysis_response",
]

#: Decisions this machine executes (issue 2).
EXECUTABLE_DECISIONS: frozenset[str] = frozenset(
    {"open_long", "open_short", "close", "watch", "no_trade"}
)

#: Every decision of seed 002 (``analysis_history.decision``).
KNOWN_DECISIONS: frozenset[str] = EXECUTABLE_DECISIONS | frozenset(
    {
        "partial_close",
        "scale_in",
        "scale_out",
        "update_stop_loss",
        "update_take_profit",
        "flip_position",
    }
)


@dataclass(frozen=True, slots=True)
class AnalysisDecision:
    """One parsed analysis.

    Attributes:
        decision: the decision string as received.
        reasoning: the backend's explanation ("" when absent; then ``valid`` is False).
        confidence: 0..100, ``None`` when absent or invalid.
        stop_loss / take_profit: prices in the quote asset, ``None`` when absent/invalid.
        position_size: quantity in the base asset as the endpoint sent it, or ``None``.
        metadata: the ``metadata`` object as received (JSON values).
        raw: the whole response body as received (JSON values).
        valid: True only if the decision may be executed.
        invalid_reason: why it may not (``None`` when valid).
    """

    decision: str
    reasoning: str
    confidence: int | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    position_size: Decimal | None
    metadata: dict[str, Any]
    raw: dict[str, Any]
    valid: bool
    invalid_reason: str | None


def _decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a JSON number/numeric string, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return result if result.is_finite() else None


def _positive(metadata: dict[str, Any], key: str, problems: list[str]) -> Decimal | None:
    value = metadata.get(key)
    if value is None:
        return None
    number = _decimal(value)
    if number is None or number <= 0:
        problems.append(f"metadata.{key} must be a number > 0, got {value!r}")
        return None
    return number


def _confidence(analysis: dict[str, Any], problems: list[str]) -> int | None:
    value = analysis.get("confidence")
    if value is None:
        return None
    number = _decimal(value) if not isinstance(value, str) else None
    if number is None or not Decimal(0) <= number <= Decimal(100):
        problems.append(f"confidence must be a number within 0..100, got {value!r}")
        return None
    return int(number.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def parse_analysis_response(body: bytes) -> AnalysisDecision:
    """Parse a 2xx body of ``POST /analyze-signal`` (rules: module docstring).

    Raises:
        AnalysisInvalidResponse: not JSON, not ``{"success": true, "analysis": {...}}``,
            or ``analysis.decision`` is not a string.
    """
    try:
        raw = orjson.loads(body)
        exact = json.loads(body, parse_float=Decimal)
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise AnalysisInvalidResponse(f"analysis response is not JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("success") is not True:
        raise AnalysisInvalidResponse(
            f"analysis response is not a success envelope: {body[:200]!r}"
        )
    analysis, exact_analysis = raw.get("analysis"), exact.get("analysis")
    if not isinstance(analysis, dict) or not isinstance(analysis.get("decision"), str):
        raise AnalysisInvalidResponse("analysis response has no analysis.decision string")

    problems: list[str] = []
    decision = analysis["decision"]
    if decision not in KNOWN_DECISIONS:
        problems.append(f"unknown decision {decision!r}")
    elif decision not in EXECUTABLE_DECISIONS:
        problems.append(f"decision {decision!r} is not supported by this machine yet")
    reasoning = analysis.get("reasoning")
    if not isinstance(reasoning, str):
        problems.append("reasoning must be a string")
        reasoning = ""
    confidence = _confidence(exact_analysis, problems)
    metadata = analysis.get("metadata", {})
    exact_metadata = exact_analysis.get("metadata", {})
    if metadata is None:
        metadata = exact_metadata = {}
    if not isinstance(metadata, dict):
        problems.append(f"metadata must be an object, got {type(metadata).__name__}")
        metadata = exact_metadata = {}
    stop_loss = _positive(exact_metadata, "stopLoss", problems)
    take_profit = _positive(exact_metadata, "takeProfit", problems)
    position_size = _positive(exact_metadata, "positionSize", problems)
    if stop_loss is not None and take_profit is not None:
        if decision == "open_long" and stop_loss >= take_profit:
            problems.append(f"open_long with stopLoss {stop_loss} >= takeProfit {take_profit}")
        if decision == "open_short" and stop_loss <= take_profit:
            problems.append(f"open_short with stopLoss {stop_loss} <= takeProfit {take_profit}")
    return AnalysisDecision(
        decision=decision,
        reasoning=reasoning,
        confidence=confidence,
        stop_loss=stop_loss,
        take_profit=take_profit,
        position_size=position_size,
        metadata=metadata,
        raw=raw,
        valid=not problems,
        invalid_reason="; ".join(problems) if problems else None,
    )
