"""A trader from a sentence: ask, check, repair (seed 000 "generate-strategy", issue 20 part 3).

Round 1 sends the system prompt (``_prompt``) and the description. The answer must be a
valid :class:`~control_plane.traders.TraderSpec` (mode forced to ``paper``) whose filter
passes the sandbox check on real klines with the trader's own timeframes
(:func:`sandbox.validate_filter_async`: compiled with the production policy and run once
in an isolated worker; ``match`` or ``no_match`` passes). A rejection (unparsable answer,
answer cut at ``length``, invalid spec, filter rejected or failing) is sent back with the
model's answer for another round, at most ``max_repairs`` times. A refusal or a transport
failure (timeout, error status after the retries) ends the generation at once.

Every outcome carries :class:`GenerationMeta`: the model, prompt version, rounds, token
usage summed over the rounds, cost estimate, latency and the reason of each repair.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import structlog
from pydantic import ValidationError

from control_plane.generation._prompt import (
    MAX_DESCRIPTION_CHARS,
    PROMPT_VERSION,
    TRADER_SCHEMA,
    repair_message,
    system_message,
    user_message,
)
from control_plane.llm import ChatClient, ChatFailure, add_usage, cost_usd
from control_plane.traders import TraderSpec
from sandbox import CheckResult, validate_filter_async

__all__ = ["GeneratedTrader", "GenerationFailed", "GenerationMeta", "TraderGenerator", "Validate"]

log = structlog.get_logger("control_plane.generation")

#: ``(filter code, timeframes) -> check result``; the default is the sandbox check.
Validate = Callable[[str, Sequence[str]], Awaitable[CheckResult]]
#: Symbol errors quoted back to the model at most.
_ERRORS_QUOTED = 3


@dataclass(frozen=True)
class GenerationMeta:
    """What a generation cost: ``usage`` sums the rounds' token counts; ``cost_usd`` is None
    without a configured price; ``repairs`` holds the rejection sent back in each repair round."""

    model: str
    prompt_version: str = PROMPT_VERSION
    rounds: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    cost_usd: float | None = None
    latency_ms: float = 0.0
    repairs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "promptVersion": self.prompt_version, "rounds": self.rounds,
                "usage": self.usage, "costUsd": self.cost_usd, "latencyMs": self.latency_ms,
                "repairs": list(self.repairs)}


@dataclass(frozen=True)
class GeneratedTrader:
    """A trader that passed: its spec (``mode`` paper), its sandbox check and the generation's meta."""

    spec: TraderSpec
    check: CheckResult
    meta: GenerationMeta


class GenerationFailed(Exception):
    """No trader: ``reason`` says why; ``meta`` what it cost. ``kind``: ``invalid`` (no valid
    trader within the rounds), ``refused`` (the model refused) or ``llm`` (the LLM failed)."""

    def __init__(self, reason: str, meta: GenerationMeta, kind: Literal["invalid", "refused", "llm"]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.meta = meta
        self.kind = kind


def _spec_errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'answer'}: {error['msg']}"
                     for error in exc.errors(include_url=False))


def _check_failure(check: CheckResult) -> str:
    """The check's outcome and detail, plus up to three other distinct symbol errors."""
    others = list(dict.fromkeys(text for text in check.errors.values() if text not in check.detail))
    quoted = "; ".join(others[:_ERRORS_QUOTED])
    return f"the sandbox check of filter_code ended {check.outcome}: {check.detail}" + (
        f" (also: {quoted})" if quoted else "")


class TraderGenerator:
    """Writes traders with an LLM (see the module doc).

    Args:
        chat: the chat-completions client; model: the model asked.
        max_repairs: repair rounds after the first answer (0..5).
        temperature, max_tokens: per answer.
        price_per_mtok: (input, output) USD per million tokens, for ``cost_usd``.
        validate: the filter check (default: the sandbox check on ``replay_dir``'s klines,
            ``../shared/data/binance`` beside the repository when None).
    """

    def __init__(self, chat: ChatClient, model: str, *, max_repairs: int = 2, temperature: float = 0.2,
                 max_tokens: int = 4096, price_per_mtok: tuple[float, float] | None = None,
                 validate: Validate | None = None, replay_dir: Path | None = None) -> None:
        if not 0 <= max_repairs <= 5:
            raise ValueError("max_repairs must be 0..5")
        self._chat = chat
        self.model = model
        self._max_repairs = max_repairs
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._price = price_per_mtok
        self._replay_dir = replay_dir
        self._validate = validate or self._sandbox_check

    async def aclose(self) -> None:
        """Close the chat client."""
        await self._chat.aclose()

    async def _sandbox_check(self, code: str, timeframes: Sequence[str]) -> CheckResult:
        return await validate_filter_async(code, intervals=list(timeframes), replay_dir=self._replay_dir)

    async def generate(self, description: str) -> GeneratedTrader:
        """Write, check and repair a trader for ``description`` (1..2000 characters).

        Raises:
            ValueError: empty or too long description.
            GenerationFailed: see the class (never another exception for what the LLM answers).
        """
        description = description.strip()
        if not description or len(description) > MAX_DESCRIPTION_CHARS:
            raise ValueError(f"the description must be 1..{MAX_DESCRIPTION_CHARS} characters")
        messages = [{"role": "system", "content": system_message()},
                    {"role": "user", "content": user_message(description)}]
        started = time.perf_counter()
        usage: dict[str, Any] = {}
        repairs: list[str] = []
        model = self.model

        def meta(rounds: int) -> GenerationMeta:
            return GenerationMeta(model, PROMPT_VERSION, rounds, usage, cost_usd(usage, self._price),
                                  round((time.perf_counter() - started) * 1000, 1), tuple(repairs))

        for round_ in range(1, self._max_repairs + 2):
            answer_text: str | None = None
            try:
                answer = await self._chat.complete_json(model, messages, schema_name="trader", schema=TRADER_SCHEMA,
                                                        temperature=self._temperature, max_tokens=self._max_tokens)
            except ChatFailure as exc:
                usage = add_usage(usage, exc.usage)
                model = exc.model or model
                if exc.kind != "content":
                    kind: Literal["refused", "llm"] = "refused" if exc.kind == "refusal" else "llm"
                    log.warning("trader_generation_failed", reason=exc.reason, rounds=round_, kind=kind)
                    raise GenerationFailed(exc.reason, meta(round_), kind) from None
                reason = f"the answer was unusable: {exc.reason}"
            else:
                usage = add_usage(usage, answer.usage)
                model = answer.model
                answer_text = orjson.dumps(answer.data).decode()
                accepted, reason = await self._accept(answer.data)
                if accepted is not None:
                    spec, check = accepted
                    log.info("trader_generated", rounds=round_, model=model, name=spec.name,
                             check=check.outcome, tokens=usage.get("total_tokens"))
                    return GeneratedTrader(spec, check, meta(round_))
            if round_ > self._max_repairs:
                log.warning("trader_generation_failed", reason=reason, rounds=round_, kind="invalid")
                raise GenerationFailed(f"no valid trader after {round_} round(s): {reason}", meta(round_), "invalid")
            repairs.append(reason)
            if answer_text is not None:
                messages.append({"role": "assistant", "content": answer_text})
            messages.append({"role": "user", "content": repair_message(reason)})
        raise AssertionError("unreachable")  # pragma: no cover

    async def _accept(self, data: dict[str, Any]) -> tuple[tuple[TraderSpec, CheckResult] | None, str]:
        """(spec, check) when the answer is a valid trader whose filter passes, else the reason."""
        extra = sorted(set(data) - set(TRADER_SCHEMA["properties"]))
        if extra:  # e.g. a "mode": generated traders are paper until the user says otherwise
            return None, f"the trader is invalid: {', '.join(extra)}: not a field of the schema"
        try:
            spec = TraderSpec.model_validate({**data, "mode": "paper"})
        except ValidationError as exc:
            return None, f"the trader is invalid: {_spec_errors(exc)}"
        check = await self._validate(spec.filter_code, spec.timeframes)
        if not check.ok:
            return None, _check_failure(check)
        return (spec, check), ""
