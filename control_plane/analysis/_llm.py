"""The ``llm`` backend: one decision per signal from any OpenAI-compatible chat-completions API.

The call itself (structured outputs with the ``json_object`` fallback, retries of
429/5xx after ``Retry-After``, refusals, ``finish_reason``, unparsable content) is
:class:`control_plane.llm.ChatClient`'s; this module writes the prompt and turns the
answer into a decision.

Prompt (:data:`PROMPT_VERSION`): a system message with the analyst's role, the decision
contract and :data:`DECISION_SCHEMA`; a user message with the trader's
``aiInstructions``, the symbol, the last candles of each interval (at most
``max_candles``, oldest first, Binance's first six columns), the indicators and the open
position, as JSON.

The answer is validated like any decision (a decision of seed 002, reasoning, confidence
0..100, levels positive and bounded). Whatever makes it unusable (a
:class:`~control_plane.llm.ChatFailure` or an invalid decision) is a failed analysis:
with ``on_failure="no_trade"`` the answer is ``no_trade`` with confidence 0 and the
reason; with ``on_failure="rules"`` the rules backend decides. Either way
``metadata.llmFailure`` carries the reason, so it is stored with the decision and a
failed analysis is never mistaken for the model's.

Every answer's ``metadata`` carries ``backend``, ``model``, ``modelTier``,
``promptVersion``, ``usage`` (token counts as the server reports them), ``latencyMs`` and
``costUsd`` (``usage`` priced at ``price_per_mtok`` = (input, output) USD per million
tokens; null when no price is configured).

Limits (seed 000's "max concurrent analyses"): at most ``max_concurrent_per_trader``
analyses of one trader at once (others wait their turn), and at most
``max_per_user_per_minute`` analyses per subscriber (``userId``, else ``traderId``) per
minute; beyond it the answer is 503 ``BackendUnavailable``, which the machine retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import httpx
import orjson
import structlog
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from control_plane.analysis._errors import BackendUnavailable
from control_plane.analysis._rules import RulesBackend
from control_plane.analysis._schemas import (
    MAX_PRICE,
    AnalysisResult,
    AnalyzeSignalRequest,
    Decision,
    format_validation_error,
)
from control_plane.llm import ChatClient, ChatFailure, cost_usd

__all__ = ["DECISION_SCHEMA", "PROMPT_VERSION", "LLMBackend"]

log = structlog.get_logger("control_plane.analysis")

PROMPT_VERSION = "llm-analysis/v2"
#: Longest reasoning kept (characters).
MAX_REASONING_CHARS = 4000
#: Candles sent per interval at most (seed 000: the analysis limit is 1..1000).
MAX_CANDLES = 1000

#: The answer's JSON schema (strict structured-output form: every property required,
#: optional values nullable, no other properties).
DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": [d.value for d in Decision]},
        "reasoning": {"type": "string"},
        "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
        "stopLoss": {"type": ["number", "null"]},
        "takeProfit": {"type": ["number", "null"]},
        "positionSize": {"type": ["number", "null"]},
        "closePercentage": {"type": ["number", "null"]},
        "scaleInAmount": {"type": ["number", "null"]},
        "scaleOutPercentage": {"type": ["number", "null"]},
        "newStopLoss": {"type": ["number", "null"]},
        "newTakeProfit": {"type": ["number", "null"]},
    },
    "required": ["decision", "reasoning", "confidence", "stopLoss", "takeProfit", "positionSize", "closePercentage",
                 "scaleInAmount", "scaleOutPercentage", "newStopLoss", "newTakeProfit"],
    "additionalProperties": False,
}

_SYSTEM = """You are the analyst of an automated crypto trader on Binance Spot.
You receive the trader's instructions, the market data of one symbol and, when the
trader holds one, its open position. Decide what the trader does now.

Answer with one JSON object and nothing else, matching this JSON schema:
{schema}

- decision: one of the enum values. Without a position: no_trade, watch, open_long or
  open_short. With a position: watch, close, partial_close, scale_in, scale_out,
  update_stop_loss, update_take_profit or flip_position.
- reasoning: why, in at most a few sentences.
- confidence: 0 to 100.
- stopLoss / takeProfit: prices in the quote asset for open_long, open_short or flip_position, else null.
- positionSize: a quantity in the base asset, or null to let the trader's risk settings size it.
- closePercentage (partial_close) / scaleOutPercentage (scale_out): the share of the position
  to sell, 0.25 for 25 %; else null.
- scaleInAmount (scale_in): the quantity to add in the base asset, or null to let the risk
  settings size it.
- newStopLoss (update_stop_loss) / newTakeProfit (update_take_profit): the new level, a price
  in the quote asset on the right side of the current price; else null.
Follow the trader's instructions where they do not contradict this contract."""


class _Answer(BaseModel):
    """The model's decision, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision
    reasoning: str = Field(min_length=1)
    confidence: int = Field(strict=True, ge=0, le=100)
    stopLoss: float | None = None  # noqa: N815 - wire name
    takeProfit: float | None = None  # noqa: N815
    positionSize: float | None = None  # noqa: N815
    closePercentage: float | None = None  # noqa: N815
    scaleInAmount: float | None = None  # noqa: N815
    scaleOutPercentage: float | None = None  # noqa: N815
    newStopLoss: float | None = None  # noqa: N815
    newTakeProfit: float | None = None  # noqa: N815


@dataclass(frozen=True)
class _Call:
    model: str
    tier: str
    usage: dict[str, Any]
    latency_ms: float


def _level(name: str, value: float | None, call: _Call) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(repr(float(value)))
    except (InvalidOperation, ValueError, OverflowError):
        raise ChatFailure(f"{name}: not a number", model=call.model, usage=call.usage) from None
    if not number.is_finite() or not 0 < number <= MAX_PRICE:
        raise ChatFailure(f"{name}: {value!r} is outside 0..{MAX_PRICE}", model=call.model, usage=call.usage)
    return number


#: The metadata field each decision that changes a position carries (seed 002).
_DECISION_FIELD = {Decision.PARTIAL_CLOSE: "closePercentage", Decision.SCALE_OUT: "scaleOutPercentage",
                   Decision.SCALE_IN: "scaleInAmount", Decision.UPDATE_STOP_LOSS: "newStopLoss",
                   Decision.UPDATE_TAKE_PROFIT: "newTakeProfit"}


def _sequence_metadata(answer: _Answer, call: _Call) -> dict[str, Decimal]:
    """The decision's own field (``_DECISION_FIELD``), validated: a share in (0, 100], an
    amount or level positive and bounded. The fields of other decisions are not forwarded."""
    key = _DECISION_FIELD.get(answer.decision)
    value = _level(key, getattr(answer, key), call) if key else None
    if value is None:
        return {}
    if key in ("closePercentage", "scaleOutPercentage") and value > 100:
        raise ChatFailure(f"{key}: {value} is not a share in (0, 100]", model=call.model, usage=call.usage)
    return {key: value}


class LLMBackend:
    """Decides with an OpenAI-compatible chat-completions API (see the module doc).

    Args:
        base_url: the API root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8080/v1``.
        api_key: sent as ``Authorization: Bearer``; never logged (registered as a secret).
        model_standard, model_fast: the model per trader tier (``modelTier`` of the request).
        on_failure: ``no_trade`` or ``rules`` (what a failed analysis answers).
        timeout_s: per request; attempts: tries in all for 429/5xx/connection errors.
        temperature: sampling temperature (0: the most likely answer, as reproducible as the
            server allows).
        max_tokens: the answer's token budget; an answer cut there is a failed analysis
            (``finish_reason length``), so a runaway answer costs at most this.
        max_candles: candles per interval put in the prompt (1..1000).
        price_per_mtok: (input, output) USD per million tokens, for ``costUsd``.
        max_concurrent_per_trader, max_per_user_per_minute: the limits (module doc).
        transport: an httpx transport (tests).
    """

    name = "llm"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        model_standard: str,
        model_fast: str | None = None,
        on_failure: Literal["no_trade", "rules"] = "no_trade",
        timeout_s: float = 30.0,
        attempts: int = 3,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        max_candles: int = 100,
        price_per_mtok: tuple[float, float] | None = None,
        max_concurrent_per_trader: int = 2,
        max_per_user_per_minute: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if on_failure not in ("no_trade", "rules"):
            raise ValueError("on_failure must be no_trade or rules")
        if not 1 <= max_candles <= MAX_CANDLES:
            raise ValueError(f"max_candles must be 1..{MAX_CANDLES}")
        self._models = {"standard": model_standard, "fast": model_fast or model_standard}
        self._on_failure = on_failure
        self._max_candles = max_candles
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._rules = RulesBackend()
        self._price = price_per_mtok
        self._per_trader = max_concurrent_per_trader
        self._per_user_per_minute = max_per_user_per_minute
        self._trader_slots: dict[str, asyncio.Semaphore] = {}
        self._user_limits: dict[str, AsyncLimiter] = {}
        self._chat = ChatClient(base_url, api_key, timeout_s=timeout_s, attempts=attempts, transport=transport)

    @property
    def json_schema_supported(self) -> bool:
        """False once the server refused structured outputs (``json_object`` is sent instead)."""
        return self._chat.json_schema_supported

    async def aclose(self) -> None:
        await self._chat.aclose()

    # -- prompt ----------------------------------------------------------------------------

    def messages(self, request: AnalyzeSignalRequest) -> list[dict[str, str]]:
        """The chat messages for ``request`` (system contract, then the data as JSON)."""
        market = request.market_data
        data: dict[str, Any] = {
            "instructions": request.ai_instructions or "",
            "symbol": market.symbol,
            "timestamp": market.timestamp,
            "lastPrice": market.ticker.last_price,
            "candles": {
                interval: [[k.open_time, k.open, k.high, k.low, k.close, k.volume] for k in rows[-self._max_candles:]]
                for interval, rows in market.klines.items()
            },
            "candleColumns": ["openTime", "open", "high", "low", "close", "volume"],
            "indicators": market.indicators,
            "position": request.position.model_dump(by_alias=True, mode="json") if request.position else None,
        }
        system = _SYSTEM.format(schema=orjson.dumps(DECISION_SCHEMA).decode())
        user = orjson.dumps(data, default=str).decode()
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    @staticmethod
    def _decision(data: Mapping[str, Any], call: _Call) -> _Answer:
        try:
            return _Answer.model_validate(data)
        except ValidationError as exc:
            reason = format_validation_error(exc).replace("invalid request", "invalid decision")
            raise ChatFailure(reason, model=call.model, usage=call.usage) from None

    async def analyze(self, request: AnalyzeSignalRequest) -> AnalysisResult:
        """Ask the model; a failed analysis answers per ``on_failure`` (module doc).

        Raises BackendUnavailable (503) beyond the subscriber's analyses per minute."""
        user = request.user_id or request.trader_id
        limiter = self._user_limits.setdefault(user, AsyncLimiter(self._per_user_per_minute, 60))
        if not limiter.has_capacity():
            raise BackendUnavailable(f"more than {self._per_user_per_minute:g} LLM analyses a minute for this subscriber")
        await limiter.acquire()
        slot = self._trader_slots.setdefault(request.trader_id, asyncio.Semaphore(self._per_trader))
        async with slot:
            return await self._analyze(request)

    async def _analyze(self, request: AnalyzeSignalRequest) -> AnalysisResult:
        tier = request.model_tier or "standard"
        model = self._models[tier]
        started = time.perf_counter()
        try:
            answer = await self._chat.complete_json(model, self.messages(request), schema_name="trade_decision",
                                                    schema=DECISION_SCHEMA, temperature=self._temperature,
                                                    max_tokens=self._max_tokens)
            call = _Call(answer.model, tier, answer.usage, answer.latency_ms)
            decision = self._decision(answer.data, call)
            return AnalysisResult(
                decision=decision.decision,
                reasoning=decision.reasoning[:MAX_REASONING_CHARS],
                confidence=decision.confidence,
                stop_loss=_level("stopLoss", decision.stopLoss, call),
                take_profit=_level("takeProfit", decision.takeProfit, call),
                position_size=_level("positionSize", decision.positionSize, call),
                extra_metadata={**self._metadata(call), **_sequence_metadata(decision, call)},
            )
        except ChatFailure as exc:
            latency = round((time.perf_counter() - started) * 1000, 1)
            call = _Call(exc.model or model, tier, exc.usage, latency)
            log.warning("llm_analysis_failed", model=model, reason=exc.reason, on_failure=self._on_failure,
                        trader_id=request.trader_id, signal_id=request.signal_id, symbol=request.market_data.symbol)
            return await self._failed(request, call, exc.reason)

    def _metadata(self, call: _Call) -> dict[str, Any]:
        return {"backend": self.name, "model": call.model, "modelTier": call.tier, "promptVersion": PROMPT_VERSION,
                "usage": call.usage, "latencyMs": call.latency_ms, "costUsd": cost_usd(call.usage, self._price)}

    async def _failed(self, request: AnalyzeSignalRequest, call: _Call, reason: str) -> AnalysisResult:
        metadata = {**self._metadata(call), "llmFailure": reason, "onFailure": self._on_failure}
        if self._on_failure == "rules":
            ruled = await self._rules.analyze(request)
            return AnalysisResult(
                decision=ruled.decision, reasoning=f"LLM analysis failed ({reason}); rules: {ruled.reasoning}",
                confidence=ruled.confidence, stop_loss=ruled.stop_loss, take_profit=ruled.take_profit,
                position_size=ruled.position_size, extra_metadata={**ruled.extra_metadata, **metadata},
            )
        return AnalysisResult(Decision.NO_TRADE, f"LLM analysis failed: {reason}"[:MAX_REASONING_CHARS], 0,
                              extra_metadata=metadata)
