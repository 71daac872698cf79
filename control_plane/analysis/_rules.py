"""The ``rules`` backend: an offline, deterministic decision from the request's indicators.

Inputs (see ``control_plane.analysis._inputs``): on the *primary* interval (the
shortest interval with an RSI), ``P`` = last close (quote asset; ``ticker.lastPrice``
when that interval has no klines), the previous close, ``RSI`` (14), the MACD
histogram ``H`` (12/26/9), the lower Bollinger band ``BBL`` (20, 2σ) and ``ATR`` (14),
each taken from ``marketData.indicators`` or computed from the klines with TA-Lib.
A missing ``H`` or ``BBL`` makes the conditions that read it false.

Conditions::

    A  RSI < 35                    oversold
    B  H > 0                       MACD momentum turned up
    C  P < BBL                     price below the lower Bollinger band
    D  P > previous close          rising close
    S  RSI > 70 and H < 0          overbought with momentum turning down

Without an open position (first match wins)::

    open_long   (A and B) or (C and D)
    open_short  S
    watch       A or C             an oversold setup not yet confirmed
    no_trade    otherwise

With an open position (re-analysis, ``position`` in the request)::

    long:  close when RSI > 70, else watch
    short: close when RSI < 30, else watch

Confidence = ``50 + 2 * d`` rounded half-even to an integer and clamped to 0..100,
where ``d`` is the signed distance in RSI points from RSI to the threshold of the
decision: ``35 - RSI`` for open_long and watch (no position), ``RSI - 70`` for
open_short, ``min(RSI - 35, 70 - RSI)`` for no_trade; with a long position
``RSI - 70`` for close and ``70 - RSI`` for watch; with a short position ``30 - RSI``
for close and ``RSI - 30`` for watch.

Stop-loss/take-profit (open_long/open_short only, in Decimal)::

    long:  stopLoss = P - 1.5 * ATR    takeProfit = P + 3 * ATR
    short: stopLoss = P + 1.5 * ATR    takeProfit = P - 3 * ATR

rounded half-even to the decimal places of ``P`` as sent, at least 2 and at most 8.
A level that is not strictly positive, or that rounds onto ``P``, is omitted; without
an ATR both are omitted and the machine falls back to the trader's risk settings.
``positionSize`` is never set by this backend (the machine sizes from
``risk.position_size_pct``). ``metadata`` also carries ``backend``, ``rule``,
``interval``, the ``inputs`` read, their ``sources`` and the ``conditions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from control_plane.analysis._inputs import RuleInputs, resolve_inputs
from control_plane.analysis._schemas import AnalysisResult, AnalyzeSignalRequest, Decision

__all__ = ["RULE_VERSION", "RuleParameters", "RulesBackend"]

RULE_VERSION = "rules/v1"


@dataclass(frozen=True, slots=True)
class RuleParameters:
    """Thresholds of the rule (RSI points) and ATR multiples for SL/TP."""

    rsi_oversold: Decimal = Decimal(35)
    rsi_overbought: Decimal = Decimal(70)
    close_long_rsi: Decimal = Decimal(70)
    close_short_rsi: Decimal = Decimal(30)
    stop_loss_atr: Decimal = Decimal("1.5")
    take_profit_atr: Decimal = Decimal(3)


def _dec(value: float) -> Decimal:
    return Decimal(repr(value))


def _confidence(distance: Decimal) -> int:
    raw = (Decimal(50) + 2 * distance).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return int(min(max(raw, Decimal(0)), Decimal(100)))


def _fmt(value: float | Decimal | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, Decimal):
        return format(value, "f")
    return f"{value:.6g}"


class RulesBackend:
    """Deterministic indicator rule; see the module docstring for the exact rule.

    ``analyze`` raises ``InsufficientMarketData`` (422) when no RSI or no price can be
    found, and ``InvalidAnalysisRequest`` (400) for a non-numeric indicator value.
    """

    name = "rules"

    def __init__(self, parameters: RuleParameters | None = None) -> None:
        self.parameters = parameters or RuleParameters()

    async def analyze(self, request: AnalyzeSignalRequest) -> AnalysisResult:
        return self.decide(request)

    def decide(self, request: AnalyzeSignalRequest) -> AnalysisResult:
        """Synchronous core of :meth:`analyze` (pure function of the request)."""
        inputs = resolve_inputs(request.market_data)
        p = self.parameters
        rsi = _dec(inputs.rsi)
        hist = inputs.macd_histogram
        conditions = {
            "rsiOversold": rsi < p.rsi_oversold,
            "macdRising": hist is not None and hist > 0,
            "belowLowerBand": inputs.bb_lower is not None and inputs.price < _dec(inputs.bb_lower),
            "risingClose": inputs.rising_close,
            "shortSetup": rsi > p.rsi_overbought and hist is not None and hist < 0,
        }
        a, b = conditions["rsiOversold"], conditions["macdRising"]
        c, d = conditions["belowLowerBand"], conditions["risingClose"]
        stop_loss = take_profit = None
        notes: list[str] = []
        position = request.position
        values = (
            f"{inputs.interval}: price {_fmt(inputs.price)}, RSI {_fmt(inputs.rsi)}, "
            f"MACD histogram {_fmt(hist)}, lower band {_fmt(inputs.bb_lower)}, ATR {_fmt(inputs.atr)}"
        )
        if position is not None and position.side == "long":
            if rsi > p.close_long_rsi:
                decision, distance = Decision.CLOSE, rsi - p.close_long_rsi
                why = f"long position and RSI above {p.close_long_rsi}: overbought, close"
            else:
                decision, distance = Decision.WATCH, p.close_long_rsi - rsi
                why = f"long position and RSI not above {p.close_long_rsi}: keep watching"
        elif position is not None:
            if rsi < p.close_short_rsi:
                decision, distance = Decision.CLOSE, p.close_short_rsi - rsi
                why = f"short position and RSI below {p.close_short_rsi}: oversold, close"
            else:
                decision, distance = Decision.WATCH, rsi - p.close_short_rsi
                why = f"short position and RSI not below {p.close_short_rsi}: keep watching"
        elif (a and b) or (c and d):
            decision, distance = Decision.OPEN_LONG, p.rsi_oversold - rsi
            why = " and ".join(
                part
                for part, holds in (
                    (f"RSI below {p.rsi_oversold} with MACD histogram above 0", a and b),
                    ("price below the lower Bollinger band with a rising close", c and d),
                )
                if holds
            )
            stop_loss, take_profit = self._levels(inputs, long=True, notes=notes)
        elif conditions["shortSetup"]:
            decision, distance = Decision.OPEN_SHORT, rsi - p.rsi_overbought
            why = f"RSI above {p.rsi_overbought} with MACD histogram below 0"
            stop_loss, take_profit = self._levels(inputs, long=False, notes=notes)
        elif a or c:
            decision, distance = Decision.WATCH, p.rsi_oversold - rsi
            why = (
                f"RSI below {p.rsi_oversold} without MACD histogram above 0"
                if a
                else "price below the lower Bollinger band without a rising close"
            ) + ": oversold setup not confirmed yet"
        else:
            decision = Decision.NO_TRADE
            distance = min(rsi - p.rsi_oversold, p.rsi_overbought - rsi)
            why = "no entry condition holds"
        reasoning = f"{decision.value}: {why}. {values}." + "".join(f" {n}" for n in notes)
        return AnalysisResult(
            decision=decision,
            reasoning=reasoning,
            confidence=_confidence(distance),
            stop_loss=stop_loss,
            take_profit=take_profit,
            extra_metadata=self._metadata(inputs, conditions),
        )

    def _levels(
        self, inputs: RuleInputs, *, long: bool, notes: list[str]
    ) -> tuple[Decimal | None, Decimal | None]:
        """Stop-loss and take-profit from ATR (see the module docstring)."""
        if inputs.atr is None or inputs.atr <= 0:
            notes.append("No ATR: stop-loss/take-profit left to the trader's risk settings.")
            return None, None
        p = self.parameters
        price, atr = inputs.price, _dec(inputs.atr)
        places = min(max(-inputs.price_exponent, 2), 8)
        quantum = Decimal(1).scaleb(-places)
        sign = 1 if long else -1
        levels: list[Decimal | None] = []
        for label, offset in (
            ("stop-loss", -sign * p.stop_loss_atr * atr),
            ("take-profit", sign * p.take_profit_atr * atr),
        ):
            level = (price + offset).quantize(quantum, rounding=ROUND_HALF_EVEN)
            if level <= 0 or level == price:
                notes.append(f"The {label} from ATR ({_fmt(level)}) is unusable and omitted.")
                levels.append(None)
            else:
                levels.append(level)
        return levels[0], levels[1]

    @staticmethod
    def _metadata(inputs: RuleInputs, conditions: dict[str, bool]) -> dict[str, Any]:
        return {
            "backend": RulesBackend.name,
            "rule": RULE_VERSION,
            "interval": inputs.interval,
            "inputs": {
                "price": inputs.price,
                "previousClose": inputs.previous_close,
                "rsi": inputs.rsi,
                "macdHistogram": inputs.macd_histogram,
                "bbLower": inputs.bb_lower,
                "atr": inputs.atr,
            },
            "sources": dict(inputs.sources),
            "conditions": conditions,
        }
