"""The ``llm`` analysis backend against a real OpenAI-compatible server: llama.cpp's
``llama-server`` (built by ``make llama-server``, see ``llama_testkit``) on a tiny model
the test writes.

A purely random model answers garbage, and ``llama-server`` itself then answers 500 ("does
not match the expected format"): every such answer must become a stored, failed analysis
(``no_trade`` with ``metadata.llmFailure``), never an executed decision and never a 5xx
of ours. A model biased towards printable ASCII answers schema-valid JSON under
``json_schema``, so the happy path runs end to end through the endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from control_plane.analysis import AnalyzeSignalRequest, Decision, LLMBackend, create_analysis_app
from llama_testkit import llama_server, write_tiny_model
from test_analysis_app import TOKEN, body, post

KEY = "sk-llama-local-0123456789"


def _server(tmp_path_factory: pytest.TempPathFactory, *, printable_bias: bool) -> Iterator[str]:
    root = tmp_path_factory.mktemp("llama")
    model = write_tiny_model(root / "tiny.gguf", printable_bias=printable_bias)
    with llama_server(model, log_path=root / "server.log", api_key=KEY) as url:
        yield url


@pytest.fixture(scope="module")
def biased_url(tmp_path_factory) -> Iterator[str]:
    yield from _server(tmp_path_factory, printable_bias=True)


@pytest.fixture(scope="module")
def random_url(tmp_path_factory) -> Iterator[str]:
    yield from _server(tmp_path_factory, printable_bias=False)


async def _ask(backend: LLMBackend, n: int) -> list[tuple[int, dict]]:
    client = TestClient(TestServer(create_analysis_app(backend, TOKEN, backend_timeout_s=120)))
    await client.start_server()
    try:
        return [await post(client, body(aiInstructions=f"Trade the trend, attempt {i}.")) for i in range(n)]
    finally:
        await client.close()
        await backend.aclose()


async def test_a_random_model_s_garbage_is_a_failed_analysis_never_a_trade_or_a_5xx(random_url):
    backend = LLMBackend(random_url, KEY, model_standard="tiny", temperature=1.0, max_tokens=256,
                         attempts=2, timeout_s=60)
    answers = await _ask(backend, 4)
    assert [status for status, _ in answers] == [200] * 4
    for _, answer in answers:
        analysis = answer["analysis"]
        assert analysis["decision"] == "no_trade" and analysis["confidence"] == 0
        assert analysis["metadata"]["llmFailure"]  # the reason is stored with the decision
        assert analysis["metadata"].get("stopLoss") is None and analysis["metadata"].get("takeProfit") is None


async def test_a_greedy_runaway_answer_ends_at_the_token_budget_as_a_failed_analysis(biased_url):
    # At temperature 0 the tiny model repeats itself inside the reasoning string for ever.
    backend = LLMBackend(biased_url, KEY, model_standard="tiny", temperature=0.0, max_tokens=128, timeout_s=60)
    result = await backend.analyze(AnalyzeSignalRequest.model_validate(body()))
    await backend.aclose()
    assert result.decision == Decision.NO_TRADE
    assert result.extra_metadata["llmFailure"] == "finish_reason length"
    assert result.extra_metadata["usage"]["completion_tokens"] == 128  # paid for, and recorded


async def test_schema_constrained_answers_run_end_to_end(biased_url):
    """Asks until the model has made 2 decisions of its own (at most 40 times): only a share of
    its sampled answers are well-formed decisions (14 of 20 in one run; 8 tries in a row once
    had none, which failed a fixed count of 8). The server's sampling seed is fixed."""
    backend = LLMBackend(biased_url, KEY, model_standard="tiny", temperature=1.0, max_tokens=1024, timeout_s=60)
    client = TestClient(TestServer(create_analysis_app(backend, TOKEN, backend_timeout_s=120)))
    await client.start_server()
    answers = []
    try:
        for i in range(40):
            answers.append(await post(client, body(aiInstructions=f"Trade the trend, attempt {i}.")))
            if sum("llmFailure" not in a["analysis"]["metadata"] for _, a in answers) >= 2:
                break
    finally:
        await client.close()
        await backend.aclose()
    assert [status for status, _ in answers] == [200] * len(answers)
    assert backend.json_schema_supported  # llama-server took the strict json_schema
    decided = [a["analysis"] for _, a in answers if "llmFailure" not in a["analysis"]["metadata"]]
    failed = [a["analysis"] for _, a in answers if "llmFailure" in a["analysis"]["metadata"]]
    assert decided, [a["metadata"]["llmFailure"] for a in failed]  # the model's own decisions
    for analysis in decided:
        assert analysis["decision"] in {d.value for d in Decision} and 0 <= analysis["confidence"] <= 100
        meta = analysis["metadata"]
        assert meta["model"] and meta["usage"]["completion_tokens"] > 0 and meta["latencyMs"] > 0
        assert all(meta.get(k) is None or 0 < meta[k] <= 1e15 for k in ("stopLoss", "takeProfit", "positionSize"))
    for analysis in failed:
        assert analysis["decision"] == "no_trade" and analysis["confidence"] == 0


async def test_generation_by_a_model_that_cannot_write_a_filter_fails_cleanly_and_saves_nothing(biased_url, db_url):
    import asyncpg

    from control_plane.generation import GenerationFailed, TraderGenerator, generate_and_save
    from control_plane.llm import ChatClient

    generator = TraderGenerator(ChatClient(biased_url, KEY, timeout_s=120), "tiny", max_repairs=1, temperature=1.0,
                                max_tokens=512)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    try:
        user = await pool.fetchval("INSERT INTO users (email, tier, subscription_status) "
                                   "VALUES ('gen@x', 'pro', 'active') RETURNING id")
        with pytest.raises(GenerationFailed) as failed:
            await generate_and_save(pool, generator, user, "Buy oversold 1h RSI dips in an uptrend.")
        generation = await pool.fetchrow("SELECT * FROM trader_generations WHERE user_id = $1", user)
        traders = await pool.fetchval("SELECT count(*) FROM traders WHERE user_id = $1", user)
    finally:
        await pool.close()
        await generator.aclose()
    assert failed.value.kind == "invalid" and failed.value.meta.rounds == 2  # 1 + max_repairs, then it stops
    assert generation["status"] == "failed" and generation["reason"] == failed.value.reason and traders == 0
    assert generation["usage"] and '"prompt_tokens"' in generation["usage"]  # what the rounds cost, recorded
