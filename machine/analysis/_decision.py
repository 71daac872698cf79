"""Parsing the analysis endpoint's answer into an :class:`AnalysisDecision`.

The answer (seed 002, "2. Analyze Signal")::

    {"success": true,
     "analysis": {"decision": "open_long", "reasoning": "...", "confidence": 85,
                  "metadata": {"stopLoss": 41800, "takeProfit": 44500, "positionSize": 0.1}}}

This is the machine's trust boundary for decisions: the machine never executes an
invalid decision. A body that is not that envelope with a string ``decision`` raises
:class:`AnalysisInvalidResponse`; everything else parses, and ``valid`` is ``False``
(with ``invalid_reason``) when:

* the decision is not in :data:`EXECUTABLE_DECISIONS` (seed 002's eleven decisions);
  ``hedge`` is known and always refused (Binance Spot has no hedge mode: one position
  per symbol), unknown strings are never executed;
* ``partial_close``'s ``closePercentage`` or ``scale_out``'s ``scaleOutPercentage`` is
  not a share of the position: a fraction in (0, 1] (seed 002: 0.25, 0.5, 0.75) or a
  percent in (1, 100]; absent, they are 0.5 and 0.25 (:data:`DEFAULT_FRACTIONS`);
* ``scale_in``'s ``scaleInAmount`` (a quantity in the base asset; absent: sized by the
  trader's risk settings) is not a number > 0;
* ``update_stop_loss`` has neither ``newStopLoss`` nor ``stopLoss`` (and likewise
  ``update_take_profit`` with ``newTakeProfit``/``takeProfit``);
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
    "DEFAULT_FRACTIONS",
    "EXECUTABLE_DECISIONS",
    "KNOWN_DECISIONS",
    "AnalysisDecision",
    "parse_analysis_response",
]

#: Decisions this machine executes: seed 002's "Analyze Signal" response.
EXECUTABLE_DECISIONS: frozenset[str] = frozenset(
    {
        "no_trade",
        "watch",
        "open_long",
        "open_short",
        "close",
        "partial_close",
        "scale_in",
        "scale_out",
        "update_stop_loss",
        "update_take_profit",
        "flip_position",
    }
)

#: Every decision of seed 002 (``analysis_history.decision``): the executable ones and
#: ``hedge`` ("Advanced Operations"), stored and refused.
KNOWN_DECISIONS: frozenset[str] = EXECUTABLE_DECISIONS | frozenset({"hedge"})

#: Share of the position a ``partial_close`` / ``scale_out`` without its percentage reduces.
DEFAULT_FRACTIONS: dict[str, Decimal] = {"partial_close": Decimal("0.5"), "scale_out": Decimal("0.25")}
_FRACTION_KEYS = {"partial_close": "closePercentage", "scale_out": "scaleOutPercentage"}
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class AnalysisDecision:
    """One parsed analysis.

    Attributes:
        decision: the decision string as received.
        reasoning: the backend's explanation ("" when absent; then ``valid`` is False).
        confidence: 0..100, ``None`` when absent or invalid.
        stop_loss / take_profit: prices in the quote asset, ``None`` when absent/invalid.
        position_size: quantity in the base asset as the endpoint sent it, or ``None``.
        fraction: the share of the position a ``partial_close``/``scale_out`` reduces, in (0, 1].
        quantity: ``scale_in``'s ``scaleInAmount`` (base asset), or ``None``.
        new_stop_loss / new_take_profit: an ``update_*`` decision's level (quote asset).
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
    fraction: Decimal | None = None
    quantity: Decimal | None = None
    new_stop_loss: Decimal | None = None
    new_take_profit: Decimal | None = None


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


def _fraction(decision: str, metadata: dict[str, Any], problems: list[str]) -> Decimal | None:
    """``partial_close``/``scale_out``'s share in (0, 1]: a fraction, or a percent above 1."""
    key = _FRACTION_KEYS[decision]
    value = metadata.get(key)
    if value is None:
        return DEFAULT_FRACTIONS[decision]
    number = _decimal(value)
    if number is None or not 0 < number <= _HUNDRED:
        problems.append(f"metadata.{key} must be a fraction in (0, 1] or a percent in (1, 100], got {value!r}")
        return None
    return number if number <= 1 else number / _HUNDRED


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
    elif decision == "hedge":
        problems.append("hedge is refused: Binance Spot has no hedge mode (one position per symbol)")
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
    fraction = _fraction(decision, exact_metadata, problems) if decision in _FRACTION_KEYS else None
    quantity = _positive(exact_metadata, "scaleInAmount", problems) if decision == "scale_in" else None
    new_stop_loss = new_take_profit = None
    if decision == "update_stop_loss":
        new_stop_loss = _positive(exact_metadata, "newStopLoss", problems) or stop_loss
        if new_stop_loss is None and not problems:
            problems.append("update_stop_loss needs metadata.newStopLoss")
    if decision == "update_take_profit":
        new_take_profit = _positive(exact_metadata, "newTakeProfit", problems) or take_profit
        if new_take_profit is None and not problems:
            problems.append("update_take_profit needs metadata.newTakeProfit")
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
        fraction=fraction,
        quantity=quantity,
        new_stop_loss=new_stop_loss,
        new_take_profit=new_take_profit,
    )
