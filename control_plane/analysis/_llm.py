"""The ``llm`` backend: one decision per signal from any OpenAI-compatible chat-completions API.

Works with OpenAI, Gemini's OpenAI-compatible endpoint, OpenRouter, vLLM, llama.cpp's
``llama-server`` and Ollama: ``POST {base_url}/chat/completions`` with
``Authorization: Bearer <api key>`` (OpenAI API reference, "Create chat completion").

Prompt (:data:`PROMPT_VERSION`): a system message with the analyst's role, the decision
contract and :data:`DECISION_SCHEMA`; a user message with the trader's
``aiInstructions``, the symbol, the last candles of each interval (at most
``max_candles``, oldest first, Binance's first six columns), the indicators and the open
position, as JSON.

The answer is constrained with structured outputs (``response_format`` ``json_schema``,
``strict``); a server that refuses them (a 400 naming ``response_format``) is asked
again with ``json_object``, and this backend keeps using ``json_object`` with it.
``message.content`` is parsed as JSON and validated like any decision (a decision of
seed 002, reasoning, confidence 0..100, levels positive and bounded). A non-null
``refusal``, a ``finish_reason`` of ``length`` or ``content_filter``, no choice,
unparsable or invalid content, a timeout, or an error status after the retries is a
failed analysis: with ``on_failure="no_trade"`` the answer is ``no_trade`` with
confidence 0 and the reason; with ``on_failure="rules"`` the rules backend decides.
Either way ``metadata.llmFailure`` carries the reason, so it is stored with the decision
and a failed analysis is never mistaken for the model's. 429 and 5xx are retried after
``Retry-After`` (or an exponential back-off), at most ``attempts`` times in all.

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
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential

from control_plane.analysis._errors import BackendUnavailable
from control_plane.analysis._rules import RulesBackend
from control_plane.analysis._schemas import (
    MAX_PRICE,
    AnalysisResult,
    AnalyzeSignalRequest,
    Decision,
    format_validation_error,
)
from control_plane.logs import register_secret

__all__ = ["DECISION_SCHEMA", "PROMPT_VERSION", "LLMBackend", "LLMFailure"]

log = structlog.get_logger("control_plane.analysis")

PROMPT_VERSION = "llm-analysis/v1"
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
    },
    "required": ["decision", "reasoning", "confidence", "stopLoss", "takeProfit", "positionSize"],
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
- stopLoss / takeProfit: prices in the quote asset for an opening decision, else null.
- positionSize: a quantity in the base asset, or null to let the trader's risk settings size it.
Follow the trader's instructions where they do not contradict this contract."""


class LLMFailure(Exception):
    """The model's answer could not be used; ``reason`` says why (stored with the analysis)."""

    def __init__(self, reason: str, *, retryable: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class _Answer(BaseModel):
    """The model's decision, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision
    reasoning: str = Field(min_length=1)
    confidence: int = Field(strict=True, ge=0, le=100)
    stopLoss: float | None = None  # noqa: N815 - wire name
    takeProfit: float | None = None  # noqa: N815
    positionSize: float | None = None  # noqa: N815


def _level(name: str, value: float | None) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(repr(float(value)))
    except (InvalidOperation, ValueError, OverflowError):
        raise LLMFailure(f"{name}: not a number") from None
    if not number.is_finite() or not 0 < number <= MAX_PRICE:
        raise LLMFailure(f"{name}: {value!r} is outside 0..{MAX_PRICE}")
    return number


@dataclass(frozen=True)
class _Call:
    model: str
    tier: str
    usage: dict[str, Any]
    latency_ms: float


class _RetryAfterOrBackoff(wait_base):
    def __init__(self) -> None:
        self._backoff = wait_exponential(multiplier=0.5, max=8.0)

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, LLMFailure) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, 30.0)
        return self._backoff(retry_state)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class LLMBackend:
    """Decides with an OpenAI-compatible chat-completions API (see the module doc).

    Args:
        base_url: the API root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8080/v1``.
        api_key: sent as ``Authorization: Bearer``; never logged (registered as a secret).
        model_standard, model_fast: the model per trader tier (``modelTier`` of the request).
        on_failure: ``no_trade`` or ``rules`` (what a failed analysis answers).
        timeout_s: per request; attempts: tries in all for 429/5xx/connection errors.
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
        register_secret(api_key)
        self._models = {"standard": model_standard, "fast": model_fast or model_standard}
        self._on_failure = on_failure
        self._attempts = attempts
        self._max_candles = max_candles
        self._rules = RulesBackend()
        self._price = price_per_mtok
        self._per_trader = max_concurrent_per_trader
        self._per_user_per_minute = max_per_user_per_minute
        self._trader_slots: dict[str, asyncio.Semaphore] = {}
        self._user_limits: dict[str, AsyncLimiter] = {}
        self.json_schema_supported = True
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

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

    def _body(self, model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
        if self.json_schema_supported:
            response_format: dict[str, Any] = {
                "type": "json_schema",
                "json_schema": {"name": "trade_decision", "strict": True, "schema": DECISION_SCHEMA},
            }
        else:
            response_format = {"type": "json_object"}
        return {"model": model, "messages": messages, "response_format": response_format, "temperature": 0}

    # -- the call --------------------------------------------------------------------------

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post("/chat/completions", content=orjson.dumps(body),
                                             headers={"Content-Type": "application/json"})
        except httpx.TimeoutException:
            raise LLMFailure("timed out", retryable=True) from None
        except httpx.TransportError as exc:
            raise LLMFailure(f"connection failed: {type(exc).__name__}", retryable=True) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise LLMFailure(f"HTTP {response.status_code}", retryable=True, retry_after_s=_retry_after(response))
        if response.status_code >= 400:
            text = response.text[:300]
            if response.status_code == 400 and self.json_schema_supported and (
                "response_format" in text or "json_schema" in text
            ):
                raise _SchemaUnsupported(text)
            raise LLMFailure(f"HTTP {response.status_code}: {text}")
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise LLMFailure("the server's answer is not JSON") from None
        if not isinstance(payload, dict):
            raise LLMFailure("the server's answer is not a JSON object")
        return payload

    async def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=_RetryAfterOrBackoff(),
            retry=retry_if_exception(lambda exc: isinstance(exc, LLMFailure) and exc.retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._post(body)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _decision(payload: Mapping[str, Any]) -> _Answer:
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LLMFailure("no choice in the answer")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        if message.get("refusal"):
            raise LLMFailure(f"the model refused: {str(message['refusal'])[:200]}")
        finish = choice.get("finish_reason")
        if finish in ("length", "content_filter"):
            raise LLMFailure(f"finish_reason {finish}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise LLMFailure("empty content")
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise LLMFailure(f"content is not JSON: {content[:80]!r}") from None
        if not isinstance(data, dict):
            raise LLMFailure("content is not a JSON object")
        try:
            return _Answer.model_validate(data)
        except ValidationError as exc:
            raise LLMFailure(format_validation_error(exc).replace("invalid request", "invalid decision")) from None

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
        messages = self.messages(request)
        started = time.perf_counter()
        call = _Call(model, tier, {}, 0.0)
        try:
            try:
                payload = await self._complete(self._body(model, messages))
            except _SchemaUnsupported:
                self.json_schema_supported = False
                log.info("llm_json_schema_unsupported", model=model)
                payload = await self._complete(self._body(model, messages))
            usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
            call = _Call(str(payload.get("model") or model), tier, usage,
                         round((time.perf_counter() - started) * 1000, 1))
            answer = self._decision(payload)
            result = AnalysisResult(
                decision=answer.decision,
                reasoning=answer.reasoning[:MAX_REASONING_CHARS],
                confidence=answer.confidence,
                stop_loss=_level("stopLoss", answer.stopLoss),
                take_profit=_level("takeProfit", answer.takeProfit),
                position_size=_level("positionSize", answer.positionSize),
                extra_metadata=self._metadata(call),
            )
        except LLMFailure as exc:
            latency = round((time.perf_counter() - started) * 1000, 1)
            call = _Call(call.model, tier, call.usage, call.latency_ms or latency)
            log.warning("llm_analysis_failed", model=model, reason=exc.reason, on_failure=self._on_failure,
                        trader_id=request.trader_id, signal_id=request.signal_id, symbol=request.market_data.symbol)
            return await self._failed(request, call, exc.reason)
        return result

    def _metadata(self, call: _Call) -> dict[str, Any]:
        return {"backend": self.name, "model": call.model, "modelTier": call.tier, "promptVersion": PROMPT_VERSION,
                "usage": call.usage, "latencyMs": call.latency_ms, "costUsd": self._cost(call.usage)}

    def _cost(self, usage: Mapping[str, Any]) -> float | None:
        if self._price is None:
            return None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        return round((prompt * self._price[0] + completion * self._price[1]) / 1_000_000, 6)

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


class _SchemaUnsupported(Exception):
    """The server refused ``response_format`` ``json_schema``."""
