"""One JSON answer from any OpenAI-compatible chat-completions API.

``POST {base_url}/chat/completions`` with ``Authorization: Bearer <api key>`` (OpenAI API
reference, "Create chat completion"); works with OpenAI, Gemini's OpenAI-compatible
endpoint, OpenRouter, vLLM, llama.cpp's ``llama-server`` and Ollama.

The answer is constrained with structured outputs (``response_format`` ``json_schema``,
``strict``); a server that refuses them (a 400 naming ``response_format`` or
``json_schema``) is asked again with ``json_object``, and this client keeps using
``json_object`` with it (the schema is in the prompt the caller writes). 429 and 5xx
(and timeouts, dropped connections) are retried after ``Retry-After`` (or an exponential
back-off, capped at 30 s), at most ``attempts`` times in all.

Everything that makes the answer unusable is a :class:`ChatFailure` with a short reason:
a timeout, an error status after the retries, a body that is not JSON (including invalid
UTF-8), no choice, a non-null ``refusal``, a ``finish_reason`` of ``length`` or
``content_filter``, empty content, or content that is not one JSON object. The caller
validates the object against its own model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential

from control_plane.logs import register_secret

__all__ = ["ChatAnswer", "ChatClient", "ChatFailure", "FailureKind", "add_usage", "cost_usd", "parse_answer"]

#: Longest wait honoured from a ``Retry-After`` header (s).
MAX_RETRY_AFTER_S = 30.0


FailureKind = Literal["transport", "refusal", "content"]


class ChatFailure(Exception):
    """The call or its answer is unusable; ``reason`` says why (short, safe to store).

    ``kind``: ``transport`` (no usable HTTP answer: timeout, connection, error status),
    ``refusal`` (a ``refusal`` or ``finish_reason`` ``content_filter``) or ``content``
    (the answer is there but unusable: not JSON, cut at ``length``, invalid for the
    caller); a ``content`` failure is worth telling the model about, the others are not.
    ``model`` and ``usage`` are the server's, when it answered at all."""

    def __init__(self, reason: str, *, kind: FailureKind = "content", retryable: bool = False,
                 retry_after_s: float | None = None, model: str | None = None,
                 usage: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.model = model
        self.usage: dict[str, Any] = dict(usage or {})


@dataclass(frozen=True)
class ChatAnswer:
    """A parsed answer: ``data`` the JSON object, ``model`` as the server names it, ``usage``
    its token counts (``prompt_tokens``, ``completion_tokens``, ``total_tokens``),
    ``latency_ms`` the wall time of the call including retries."""

    data: dict[str, Any]
    model: str
    usage: dict[str, Any] = field(default_factory=dict)
    latency_ms: float = 0.0


def add_usage(total: Mapping[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    """Sum two ``usage`` objects' integer counts (other keys of ``total`` are kept)."""
    summed = dict(total)
    for key, value in more.items():
        if isinstance(value, int) and not isinstance(value, bool):
            summed[key] = int(summed.get(key) or 0) + value
    return summed


def cost_usd(usage: Mapping[str, Any], price_per_mtok: tuple[float, float] | None) -> float | None:
    """``usage`` priced at (input, output) USD per million tokens; None without a price or counts."""
    if price_per_mtok is None:
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return round((prompt * price_per_mtok[0] + completion * price_per_mtok[1]) / 1_000_000, 6)


class _SchemaUnsupported(Exception):
    """The server refused ``response_format`` ``json_schema``."""


class _RetryAfterOrBackoff(wait_base):
    def __init__(self) -> None:
        self._backoff = wait_exponential(multiplier=0.5, max=8.0)

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ChatFailure) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, MAX_RETRY_AFTER_S)
        return self._backoff(retry_state)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def parse_answer(payload: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The JSON object in the first choice's ``message.content``.

    Raises:
        ChatFailure: refusal, ``finish_reason`` ``length``/``content_filter``, no choice,
            empty content, content that is not a JSON object.
    """
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}

    def failure(reason: str, kind: FailureKind = "content") -> ChatFailure:
        return ChatFailure(reason, kind=kind, model=model, usage=usage)

    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise failure("no choice in the answer")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    if message.get("refusal"):
        raise failure(f"the model refused: {str(message['refusal'])[:200]}", "refusal")
    finish = choice.get("finish_reason")
    if finish == "content_filter":
        raise failure("finish_reason content_filter", "refusal")
    if finish == "length":
        raise failure("finish_reason length")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise failure("empty content")
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise failure(f"content is not JSON: {content[:80]!r}") from None
    if not isinstance(data, dict):
        raise failure("content is not a JSON object")
    return data


class ChatClient:
    """Asks for one JSON object (see the module doc).

    Args:
        base_url: the API root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8080/v1``.
        api_key: sent as ``Authorization: Bearer`` (none when empty); registered as a secret,
            so it never reaches a log line.
        timeout_s: per request; attempts: tries in all for 429/5xx/timeouts/connection errors.
        transport: an httpx transport (tests).
    """

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 30.0, attempts: int = 3,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        register_secret(api_key)
        self._attempts = attempts
        #: False once the server refused ``json_schema``; then ``json_object`` is sent.
        self.json_schema_supported = True
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def body(self, model: str, messages: list[dict[str, str]], schema_name: str, schema: Mapping[str, Any],
             *, temperature: float = 0, max_tokens: int | None = None) -> dict[str, Any]:
        """The request body (``response_format`` per :attr:`json_schema_supported`)."""
        if self.json_schema_supported:
            response_format: dict[str, Any] = {
                "type": "json_schema", "json_schema": {"name": schema_name, "strict": True, "schema": schema},
            }
        else:
            response_format = {"type": "json_object"}
        body: dict[str, Any] = {"model": model, "messages": messages, "response_format": response_format,
                                "temperature": temperature}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        return body

    async def complete_json(self, model: str, messages: list[dict[str, str]], *, schema_name: str,
                            schema: Mapping[str, Any], temperature: float = 0,
                            max_tokens: int | None = None) -> ChatAnswer:
        """Send ``messages`` and return the answer's JSON object.

        Raises:
            ChatFailure: see the module doc (never any other exception for what the server does).
        """
        started = time.perf_counter()
        try:
            payload = await self._complete(self.body(model, messages, schema_name, schema,
                                                     temperature=temperature, max_tokens=max_tokens))
        except _SchemaUnsupported:
            self.json_schema_supported = False
            payload = await self._complete(self.body(model, messages, schema_name, schema,
                                                     temperature=temperature, max_tokens=max_tokens))
        answered_by = str(payload.get("model") or model)
        data = parse_answer(payload, answered_by)
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        return ChatAnswer(data, answered_by, dict(usage), round((time.perf_counter() - started) * 1000, 1))

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post("/chat/completions", content=orjson.dumps(body),
                                             headers={"Content-Type": "application/json"})
        except httpx.TimeoutException:
            raise ChatFailure("timed out", kind="transport", retryable=True) from None
        except httpx.TransportError as exc:
            raise ChatFailure(f"connection failed: {type(exc).__name__}", kind="transport", retryable=True) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise ChatFailure(f"HTTP {response.status_code}", kind="transport", retryable=True,
                              retry_after_s=_retry_after(response))
        if response.status_code >= 400:
            text = response.text[:300]
            if response.status_code == 400 and self.json_schema_supported and (
                "response_format" in text or "json_schema" in text
            ):
                raise _SchemaUnsupported(text)
            raise ChatFailure(f"HTTP {response.status_code}: {text}", kind="transport")
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ChatFailure("the server's answer is not JSON", kind="transport") from None
        if not isinstance(payload, dict):
            raise ChatFailure("the server's answer is not a JSON object", kind="transport")
        return payload

    async def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=_RetryAfterOrBackoff(),
            retry=retry_if_exception(lambda exc: isinstance(exc, ChatFailure) and exc.retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._post(body)
        raise AssertionError("unreachable")  # pragma: no cover
