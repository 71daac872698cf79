"""From a decision and the state it meets to the steps that carry it out, or the reason it cannot.

A pure function (no I/O): :func:`plan` takes the validated decision
(``machine.analysis.AnalysisDecision``), the trader's mode, the open position on the
symbol if any, the symbol's last price and exchange rules, and returns the steps or a
:class:`Refused` with the reason (stored with the analysis; nothing is executed).

| decision | without a position | with a position |
|---|---|---|
| ``no_trade``, ``watch`` | no steps (the signal closes or is watched) | no steps |
| ``open_long``/``open_short`` | ``open`` | refused: a position is open |
| ``close`` | refused: nothing to close | ``close`` |
| ``partial_close``/``scale_out`` | refused | ``reduce`` by the share (``close`` at 100 %) |
| ``scale_in`` | refused | ``increase`` |
| ``update_stop_loss``/``update_take_profit`` | refused | ``set_levels`` |
| ``flip_position`` | refused | ``close``, then ``open`` on the other side |

Refused as well: a live short (spot cannot short: ``open_short``, a ``flip_position``
into a short, a ``scale_in`` of a short); a moved level on the wrong side of the last
price; a reduce that rounds to nothing, is below the exchange minimums
(LOT_SIZE/MARKET_LOT_SIZE, NOTIONAL), or would leave a rest the exchange would not let
the position sell; no last price. The execution service checks again, with the balances,
when each step runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal
from uuid import UUID

from machine.accounts import reduce_quantity
from machine.analysis import AnalysisDecision
from machine.execution import SymbolRules
from machine.execution._rules import market_quantity_problem, notional_problem
from machine.persistence import PositionRecord

__all__ = ["MarketView", "Refused", "StepPlan", "plan"]

StepKind = Literal["open", "close", "reduce", "increase", "set_levels"]


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One step: ``kind`` and its ``params`` (JSON values: decimals as strings)."""

    kind: StepKind
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refused:
    """The decision does not fit the state; ``reason`` is stored with the analysis.
    ``needs_position``: it acts on a position and there is none."""

    reason: str
    needs_position: bool = False


@dataclass(frozen=True, slots=True)
class MarketView:
    """The symbol's last price (quote asset; None before the first), exchange rules (None when
    unknown) and the executor's taker commission rate."""

    price: Decimal | None
    rules: SymbolRules | None
    taker_rate: Decimal


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _other(side: str) -> str:
    return "short" if side == "long" else "long"


def _level_side_problem(side: str, kind: str, level: Decimal, price: Decimal) -> str | None:
    below = (side == "long") == (kind == "stop_loss")
    name = kind.replace("_", "-")
    if below and level >= price:
        return f"{name} {level:f} is not below the current price {price:f} of a {side}"
    if not below and level <= price:
        return f"{name} {level:f} is not above the current price {price:f} of a {side}"
    return None


def _reduce(decision: AnalysisDecision, position: PositionRecord, market: MarketView) -> tuple[StepPlan, ...] | Refused:
    fraction = decision.fraction
    assert fraction is not None  # parse_analysis_response sets it for these decisions
    if fraction >= 1:
        return (StepPlan("close", {"reason": decision.decision}),)
    rules = market.rules
    step = rules.step_size if rules is not None else Decimal(0)
    quantity = reduce_quantity(position.side, position.size, fraction, market.taker_rate, step)
    pct = f"{fraction * 100:g} %"
    if quantity <= 0:
        return Refused(f"{decision.decision} of {pct} rounds to nothing at the step size {step:f}")
    if rules is not None and market.price is not None:
        problem = market_quantity_problem(quantity, rules) or notional_problem(quantity, market.price, rules)
        if problem:
            return Refused(f"{decision.decision} of {pct} is below the exchange minimum: {problem}")
        repaid = quantity if position.side == "long" else quantity - quantity * market.taker_rate
        rest = position.size - repaid
        sellable = (rest / step).to_integral_value(rounding=ROUND_DOWN) * step if step > 0 else rest
        if rest > 0 and (market_quantity_problem(sellable, rules) or notional_problem(sellable, market.price, rules)):
            return Refused(f"{decision.decision} of {pct} would leave {rest:f}, which the exchange would not let the "
                           f"position sell; close instead")
    return (StepPlan("reduce", {"fraction": _s(fraction), "quantity": _s(quantity)}),)


def plan(
    decision: AnalysisDecision, mode: str, position: PositionRecord | None, market: MarketView, new_position_id: UUID
) -> tuple[StepPlan, ...] | Refused:
    """The steps of a valid ``decision`` (module doc), or why it cannot be executed.

    ``new_position_id``: the id an ``open`` step gives the position it opens (fixed in
    advance, so a restart finds it).
    """
    kind = decision.decision
    if kind in ("no_trade", "watch"):
        return ()
    if market.price is None:
        return Refused("no last price for the symbol yet")
    if position is None:
        if kind in ("open_long", "open_short"):
            side = "long" if kind == "open_long" else "short"
            if side == "short" and mode != "paper":
                return Refused("live spot cannot short")
            return (StepPlan("open", {"side": side, "position_id": str(new_position_id),
                                      "stop_loss": _s(decision.stop_loss), "take_profit": _s(decision.take_profit)}),)
        return Refused(f"{kind} needs an open position; there is none on this symbol", needs_position=True)
    if kind in ("open_long", "open_short"):
        return Refused("a position is already open on this symbol")
    if kind == "close":
        return (StepPlan("close", {"reason": "analysis_close"}),)
    if kind in ("partial_close", "scale_out"):
        return _reduce(decision, position, market)
    if kind == "scale_in":
        if position.side == "short" and mode != "paper":
            return Refused("live spot cannot short")
        return (StepPlan("increase", {"quantity": _s(decision.quantity)}),)
    if kind in ("update_stop_loss", "update_take_profit"):
        level_kind = "stop_loss" if kind == "update_stop_loss" else "take_profit"
        level = decision.new_stop_loss if level_kind == "stop_loss" else decision.new_take_profit
        assert level is not None  # parse_analysis_response requires it
        problem = _level_side_problem(position.side, level_kind, level, market.price)
        if problem:
            return Refused(problem)
        return (StepPlan("set_levels", {level_kind: _s(level)}),)
    if kind == "flip_position":
        side = _other(position.side)
        if side == "short" and mode != "paper":
            return Refused("live spot cannot short: a long cannot flip into a short")
        sl, tp = decision.stop_loss, decision.take_profit
        for level_kind, level in (("stop_loss", sl), ("take_profit", tp)):
            problem = level is not None and _level_side_problem(side, level_kind, level, market.price)
            if problem:
                return Refused(f"flip into a {side}: {problem}")
        return (StepPlan("close", {"reason": "flip_position"}),
                StepPlan("open", {"side": side, "position_id": str(new_position_id), "stop_loss": _s(sl),
                                  "take_profit": _s(tp)}))
    return Refused(f"decision {kind!r} is not executable")
