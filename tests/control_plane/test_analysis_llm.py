"""The ``llm`` analysis backend against a local OpenAI-compatible server speaking the wire
protocol (``POST /v1/chat/completions``, bearer auth, JSON bodies as OpenAI documents)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import orjson
import pytest

from control_plane.analysis import (
    DECISION_SCHEMA,
    PROMPT_VERSION,
    AnalyzeSignalRequest,
    Decision,
    LLMBackend,
    create_analysis_app,
)
from test_analysis_app import AUTH, body, post

from openai_testkit import KEY, OpenAIStub, completion, start_stub

DECISION = {"decision": "open_long", "reasoning": "RSI oversold, MACD turning up", "confidence": 72,
            "stopLoss": 41800.5, "takeProfit": 44000, "positionSize": None}


@pytest.fixture
async def backend(stub):
    llm = LLMBackend(stub.base_url, KEY, model_standard="m-std", model_fast="m-fast", timeout_s=2, attempts=3)
    yield llm
    await llm.aclose()


def request(**overrides: Any) -> AnalyzeSignalRequest:
    return AnalyzeSignalRequest.model_validate(body(aiInstructions="Buy oversold dips in an uptrend.", **overrides))


async def test_a_valid_answer_is_the_decision_with_its_costs(stub, backend):
    stub.replies.append((200, {}, completion(DECISION)))
    result = await backend.analyze(request())
    assert (result.decision, result.confidence) == (Decision.OPEN_LONG, 72)
    assert (result.stop_loss, result.take_profit, result.position_size) == (Decimal("41800.5"), Decimal("44000.0"), None)
    meta = result.extra_metadata
    assert meta["model"] == "m-std" and meta["modelTier"] == "standard" and meta["promptVersion"] == PROMPT_VERSION
    assert meta["usage"]["total_tokens"] == 853 and meta["latencyMs"] >= 0 and "llmFailure" not in meta
    sent = stub.requests[0]
    assert stub.auth == [f"Bearer {KEY}"] and sent["model"] == "m-std" and sent["temperature"] == 0
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "trade_decision", "strict": True, "schema": DECISION_SCHEMA}}
    system, user = sent["messages"]
    assert system["role"] == "system" and '"enum"' in system["content"]
    data = orjson.loads(user["content"])
    assert data["instructions"] == "Buy oversold dips in an uptrend." and data["symbol"] == "BTCUSDT"
    assert len(data["candles"]["1h"]) == 2 and data["indicators"]["rsi_14_1h"] == 28.5


async def test_the_fast_tier_uses_the_fast_model(stub, backend):
    stub.replies.append((200, {}, completion(DECISION, model="m-fast")))
    result = await backend.analyze(request(modelTier="fast"))
    assert stub.requests[0]["model"] == "m-fast" and result.extra_metadata["modelTier"] == "fast"


@pytest.mark.parametrize(("reply", "reason"), [
    (completion("{not json"), "not JSON"),
    (completion({**DECISION, "confidence": 150}), "invalid decision"),
    (completion({**DECISION, "decision": "yolo"}), "invalid decision"),
    (completion({**DECISION, "extra": 1}), "invalid decision"),
    (completion({**DECISION, "stopLoss": -5}), "stopLoss"),
    (completion({**DECISION, "takeProfit": 1e300}), "takeProfit"),
    (completion(DECISION, refusal="I can't help with trading."), "refused"),
    (completion('{"decision": "open_lo', finish="length"), "finish_reason length"),
    (completion(DECISION, finish="content_filter"), "finish_reason content_filter"),
    (completion("\ufffd\x00\x7f  \n\n"), "not JSON"),
    ({"choices": []}, "no choice"),
    (b"<html>oops</html>", "not JSON"),
])
async def test_an_unusable_answer_is_a_failed_analysis_never_a_trade(stub, backend, reply, reason):
    stub.replies.append((200, {}, reply))
    result = await backend.analyze(request())
    assert (result.decision, result.confidence) == (Decision.NO_TRADE, 0)
    assert reason in result.extra_metadata["llmFailure"] and result.extra_metadata["onFailure"] == "no_trade"
    assert result.stop_loss is None and result.take_profit is None


async def test_429_honours_retry_after_and_5xx_is_retried(stub, backend):
    stub.replies.extend([(429, {"Retry-After": "0"}, {"error": {"message": "slow down"}}),
                         (503, {}, {"error": {"message": "overloaded"}}),
                         (200, {}, completion(DECISION))])
    result = await backend.analyze(request())
    assert result.decision == Decision.OPEN_LONG and len(stub.requests) == 3


async def test_errors_beyond_the_attempts_fail_the_analysis(stub, backend):
    stub.replies.extend([(500, {}, {"error": {"message": "boom"}})] * 3)
    result = await backend.analyze(request())
    assert result.decision == Decision.NO_TRADE and result.extra_metadata["llmFailure"] == "HTTP 500"
    assert len(stub.requests) == 3


async def test_a_server_without_json_schema_gets_json_object(stub, backend):
    stub.replies.extend([(400, {}, {"error": {"message": "response_format json_schema is not supported"}}),
                         (200, {}, completion(DECISION)), (200, {}, completion(DECISION))])
    assert (await backend.analyze(request())).decision == Decision.OPEN_LONG
    assert [r["response_format"]["type"] for r in stub.requests] == ["json_schema", "json_object"]
    await backend.analyze(request())
    assert stub.requests[-1]["response_format"] == {"type": "json_object"}  # remembered


async def test_a_timeout_fails_the_analysis(stub):
    llm = LLMBackend(stub.base_url, KEY, model_standard="m-std", timeout_s=0.2, attempts=1)
    try:
        stub.replies.append("hang")
        result = await llm.analyze(request())
    finally:
        await llm.aclose()
    assert result.decision == Decision.NO_TRADE and result.extra_metadata["llmFailure"] == "timed out"


async def test_on_failure_rules_answers_the_rules_decision(stub):
    llm = LLMBackend(stub.base_url, KEY, model_standard="m-std", on_failure="rules", attempts=1)
    try:
        stub.replies.append((200, {}, completion("garbage")))
        result = await llm.analyze(request())
    finally:
        await llm.aclose()
    assert result.extra_metadata["backend"] == "llm" and result.extra_metadata["rule"]
    assert "not JSON" in result.extra_metadata["llmFailure"] and result.reasoning.startswith("LLM analysis failed")


async def test_through_the_endpoint_garbage_is_a_stored_no_trade_never_a_5xx(stub, backend):
    from aiohttp.test_utils import TestClient, TestServer

    from test_analysis_app import TOKEN

    client = TestClient(TestServer(create_analysis_app(backend, TOKEN)))
    await client.start_server()
    try:
        stub.replies.append((200, {}, completion("\x00\x01 not a decision")))
        status, answer = await post(client, body())
    finally:
        await client.close()
    assert status == 200 and answer["analysis"]["decision"] == "no_trade"
    assert "llmFailure" in answer["analysis"]["metadata"]
    assert AUTH["Authorization"] not in str(stub.requests)  # the endpoint's token never reaches the LLM


async def test_cost_is_estimated_from_the_usage(stub):
    llm = LLMBackend(stub.base_url, KEY, model_standard="m-std", price_per_mtok=(2.5, 10.0))
    try:
        stub.replies.append((200, {}, completion(DECISION)))
        result = await llm.analyze(request())
    finally:
        await llm.aclose()
    assert result.extra_metadata["costUsd"] == pytest.approx((812 * 2.5 + 41 * 10.0) / 1e6)


class GatedStub(OpenAIStub):
    """Holds every request until ``gate`` opens; ``peak`` is the most requests in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.peak = 0

    async def handle(self, request):
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.gate.wait()
            self.replies.append((200, {}, completion(DECISION)))
            return await super().handle(request)
        finally:
            self.in_flight -= 1


async def _gated(limit_per_trader: int):
    server = GatedStub()
    runner = await start_stub(server)
    llm = LLMBackend(server.base_url, KEY, model_standard="m",
                     max_concurrent_per_trader=limit_per_trader)
    return server, runner, llm


@pytest.mark.parametrize(("traders", "peak"), [(["t1", "t1", "t1"], 1), (["t1", "t2", "t3"], 3)])
async def test_analyses_of_one_trader_run_one_at_a_time(traders, peak):
    server, runner, llm = await _gated(1)
    try:
        tasks = [asyncio.create_task(llm.analyze(request(traderId=t))) for t in traders]
        from fly_testkit import eventually

        await eventually(lambda: server.in_flight == peak)  # as many as the limit lets through
        server.gate.set()
        results = await asyncio.gather(*tasks)
    finally:
        await llm.aclose()
        await runner.cleanup()
    assert server.peak == peak and [r.decision for r in results] == [Decision.OPEN_LONG] * 3


async def test_a_subscriber_beyond_its_analyses_per_minute_gets_503(stub):
    from control_plane.analysis import BackendUnavailable

    llm = LLMBackend(stub.base_url, KEY, model_standard="m-std", max_per_user_per_minute=2)
    try:
        stub.replies.extend([(200, {}, completion(DECISION))] * 3)
        for _ in range(2):
            await llm.analyze(request(userId="u-1"))
        with pytest.raises(BackendUnavailable, match="a minute"):
            await llm.analyze(request(userId="u-1"))
        assert (await llm.analyze(request(userId="u-2"))).decision == Decision.OPEN_LONG  # another subscriber
    finally:
        await llm.aclose()
    assert len(stub.requests) == 3


def test_the_demo_refuses_llm_analysis_without_an_endpoint(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from control_plane.cli import app

    for name in ("LLM_BASE_URL", "LLM_MODEL_STANDARD", "ANALYSIS_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["demo", "--analysis", "llm", "--duration", "1"])
    assert result.exit_code == 2 and "needs LLM_BASE_URL and LLM_MODEL_STANDARD" in " ".join(result.output.split())


async def test_the_local_stack_serves_the_configured_llm_backend(stub, db_url, tmp_path):
    """What ``serve`` and ``demo --analysis llm`` run: the stack's analysis endpoint asks the LLM."""
    import httpx

    from control_plane.local import LocalStack
    from control_plane.settings import ControlPlaneSettings

    settings = ControlPlaneSettings(database_url=db_url, data_dir=tmp_path / "data", analysis_backend="llm",
                                    llm_base_url=stub.base_url, llm_api_key=KEY, llm_model_standard="m-std")
    stub.replies.append((200, {}, completion(DECISION)))
    async with LocalStack(settings, analysis_port=0) as stack:
        async with httpx.AsyncClient() as http:
            response = await http.post(stack.info.analysis_url, json=body(),
                                       headers={"Authorization": f"Bearer {stack.info.analysis_token}"})
    assert response.status_code == 200
    assert response.json()["analysis"]["metadata"]["model"] == "m-std" and len(stub.requests) == 1


@pytest.mark.parametrize(("answer", "metadata"), [
    ({"decision": "partial_close", "closePercentage": 0.5}, {"closePercentage": Decimal("0.5")}),
    ({"decision": "scale_out", "scaleOutPercentage": 25}, {"scaleOutPercentage": Decimal(25)}),
    ({"decision": "scale_in", "scaleInAmount": 0.015}, {"scaleInAmount": Decimal("0.015")}),
    ({"decision": "update_stop_loss", "newStopLoss": 41900.5}, {"newStopLoss": Decimal("41900.5")}),
    ({"decision": "update_take_profit", "newTakeProfit": 45000}, {"newTakeProfit": Decimal("45000.0")}),
])
async def test_position_decisions_carry_their_metadata_to_the_machine(stub, backend, answer, metadata):
    from machine.analysis import parse_analysis_response

    from control_plane.analysis._app import dumps

    nulls = dict.fromkeys(("stopLoss", "takeProfit", "positionSize", "closePercentage", "scaleInAmount",
                           "scaleOutPercentage", "newStopLoss", "newTakeProfit"))
    stub.replies.append((200, {}, completion({"reasoning": "trim into strength", "confidence": 60, **nulls, **answer})))
    result = await backend.analyze(request())
    assert result.decision.value == answer["decision"] and "llmFailure" not in result.extra_metadata
    assert {k: result.extra_metadata[k] for k in metadata} == metadata
    parsed = parse_analysis_response(dumps({"success": True, "analysis": result.to_wire()}))
    assert parsed.valid, parsed.invalid_reason  # what the machine receives, it can execute


async def test_a_share_above_100_percent_is_a_failed_analysis(stub, backend):
    stub.replies.append((200, {}, completion({**DECISION, "decision": "partial_close", "closePercentage": 150})))
    result = await backend.analyze(request())
    assert result.decision == Decision.NO_TRADE and "closePercentage" in result.extra_metadata["llmFailure"]


async def test_another_decision_s_field_is_not_forwarded(stub, backend):
    stub.replies.append((200, {}, completion({**DECISION, "closePercentage": 1546, "newStopLoss": -3})))
    result = await backend.analyze(request())
    assert result.decision == Decision.OPEN_LONG and "llmFailure" not in result.extra_metadata
    assert "closePercentage" not in result.extra_metadata and "newStopLoss" not in result.extra_metadata
