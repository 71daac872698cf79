"""Trader generation (``control_plane.generation``) against a local OpenAI-compatible server,
with the real sandbox check on real klines and a real Postgres: ask, check, repair, save
paused; ``POST /generate-trader`` and ``control-plane traders generate``."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

import indicators
from control_plane.analysis import RulesBackend, create_analysis_app
from control_plane.generation import (
    TRADER_SCHEMA,
    GenerationFailed,
    GenerationRoute,
    TraderGenerator,
    add_generation_route,
    generate_and_save,
    system_message,
)
from control_plane.llm import ChatClient
from openai_testkit import KEY, OpenAIStub, completion, start_stub
from sandbox._guards import SAFE_BUILTINS
from sandbox._views import Candle

pytestmark = pytest.mark.timeout(120)

ADMIN = "admin-token-0123456789"

GOOD_FILTER = '''def check_signal(symbol, ticker, klines):
    rsi = get_latest_rsi(klines["1h"], 14)
    ema = get_latest_ema(klines["1h"], 50)
    if rsi is None or ema is None:
        return False
    return rsi < 35 and klines["1h"][-1].close > ema
'''

TRADER: dict[str, Any] = {
    "name": "1h RSI dip in uptrend",
    "description": "Buys 1h RSI dips while the price holds above the 1h EMA 50.",
    "filter_code": GOOD_FILTER,
    "ai_instructions": "Confirm the uptrend and that volume supports the bounce before going long.",
    "timeframes": ["1h"],
    "check_interval": "1h_close",
    "reanalysis_interval": "15m",
    "symbols": None,
    "risk": {"stop_loss_pct": 2, "take_profit_pct": 5, "position_size_pct": 10, "max_positions": 3},
    "model_tier": "standard",
    "analysis_candles": 200,
}


def answer(**overrides: Any) -> tuple[int, dict, dict]:
    return 200, {}, completion({**TRADER, **overrides}, model="gen-model")


@pytest.fixture
async def generator(stub):
    chat = ChatClient(stub.base_url, KEY, timeout_s=5, attempts=2)
    gen = TraderGenerator(chat, "gen-model", max_repairs=2, price_per_mtok=(1.0, 4.0))
    yield gen
    await gen.aclose()


@pytest.fixture
async def pool(db_url):
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=3)
    yield p
    await p.close()


async def _user(pool: asyncpg.Pool) -> uuid.UUID:
    return await pool.fetchval("INSERT INTO users (email, tier, subscription_status) "
                               "VALUES ($1, 'pro', 'active') RETURNING id", f"{uuid.uuid4().hex}@x")


# -- the prompt ---------------------------------------------------------------------------


def test_the_prompt_documents_the_contract_from_the_code():
    prompt = system_message()
    missing = [name for name in indicators.HELPERS if f"- {name}(" not in prompt]
    assert not missing  # every helper the sandbox gives a filter, with its signature
    builtins = [n for n in SAFE_BUILTINS if n[0].islower() and not n.startswith("_")]
    assert all(f" {n} " in prompt or f" {n};" in prompt or f" {n}." in prompt for n in builtins), builtins
    assert ", ".join(Candle._fields) in prompt and "def check_signal(symbol, ticker, klines)" in prompt
    assert orjson.dumps(TRADER_SCHEMA).decode() in prompt


# -- the generator --------------------------------------------------------------------------


async def test_a_described_trader_is_generated_checked_and_saved_paused(stub, generator, pool):
    user = await _user(pool)
    stub.replies.append(answer())
    saved = await generate_and_save(pool, generator, user, "Buy 1h RSI dips while the trend is up.")
    sent = stub.requests[0]
    assert sent["model"] == "gen-model" and sent["response_format"]["json_schema"]["schema"] == TRADER_SCHEMA
    assert sent["messages"][1] == {"role": "user", "content": "Write a trader for this description:\n\n"
                                                              "Buy 1h RSI dips while the trend is up."}
    assert saved.generated.check.outcome in ("match", "no_match") and saved.generated.check.symbols == 20
    row = await pool.fetchrow("SELECT * FROM traders WHERE id = $1", saved.trader_id)
    assert (row["user_id"], row["status"], row["mode"], row["name"]) == (user, "paused", "paper", TRADER["name"])
    assert row["filter_code"] == GOOD_FILTER and row["timeframes"] == ["1h"] and row["analysis_candles"] == 200
    gen = await pool.fetchrow("SELECT * FROM trader_generations WHERE id = $1", saved.generation_id)
    assert (gen["status"], gen["trader_id"], gen["rounds"], gen["model"]) == ("saved", saved.trader_id, 1, "gen-model")
    assert orjson.loads(gen["usage"])["total_tokens"] == 853 and gen["finished_at"] is not None
    assert float(gen["cost_usd"]) == pytest.approx((812 * 1.0 + 41 * 4.0) / 1e6)


async def test_a_filter_that_fails_the_sandbox_is_repaired_on_the_second_round(stub, generator, pool):
    user = await _user(pool)
    broken = 'import os\ndef check_signal(symbol, ticker, klines):\n    return os.getpid() > 0\n'
    stub.replies.extend([answer(filter_code=broken), answer()])
    saved = await generate_and_save(pool, generator, user, "Something with RSI.")
    assert len(stub.requests) == 2
    repair = stub.requests[1]["messages"]
    assert repair[2]["role"] == "assistant" and orjson.loads(repair[2]["content"])["filter_code"] == broken
    assert repair[3]["role"] == "user" and "rejected" in repair[3]["content"] and 'import of "os"' in repair[3]["content"]
    meta = saved.generated.meta
    assert meta.rounds == 2 and meta.usage["total_tokens"] == 2 * 853 and len(meta.repairs) == 1
    assert await pool.fetchval("SELECT filter_code FROM traders WHERE id = $1", saved.trader_id) == GOOD_FILTER


@pytest.mark.parametrize(("first", "reason"), [
    (answer(filter_code='def check_signal(symbol, ticker, klines):\n    return get_latest_rsi(klines["4h"]) < 30\n'),
     "not one of this trader's timeframes"),  # runs, but fails on every symbol
    (answer(filter_code="def check_signal(symbol, ticker, klines):\n    return 1\n"), "ended error"),
    (answer(timeframes=["7m"]), "timeframes"),
    (answer(risk={"stop_loss_pct": 150, "take_profit_pct": 5, "position_size_pct": 10, "max_positions": 3}),
     "risk.stop_loss_pct"),
    (answer(check_interval="whenever"), "check_interval"),
    ((200, {}, completion("{not json")), "not JSON"),
    ((200, {}, completion('{"name": "cut', finish="length")), "finish_reason length"),
    ((200, {}, completion({**TRADER, "mode": "live"})), "mode"),  # no field beyond the schema
])
async def test_every_kind_of_rejection_goes_back_to_the_model(stub, generator, pool, first, reason):
    user = await _user(pool)
    stub.replies.extend([first, answer()])
    saved = await generate_and_save(pool, generator, user, "RSI dips.")
    assert reason in saved.generated.meta.repairs[0]
    assert reason in stub.requests[1]["messages"][-1]["content"]
    assert await pool.fetchval("SELECT mode FROM traders WHERE id = $1", saved.trader_id) == "paper"


async def test_no_valid_trader_within_the_rounds_is_recorded_failed_and_saves_nothing(stub, generator, pool):
    user = await _user(pool)
    stub.replies.extend([answer(filter_code="def check_signal(symbol, ticker, klines):\n    return None\n")] * 3)
    with pytest.raises(GenerationFailed) as failed:
        await generate_and_save(pool, generator, user, "Never works.")
    assert failed.value.kind == "invalid" and "after 3 round(s)" in failed.value.reason
    assert len(stub.requests) == 3  # 1 + max_repairs, no more
    assert await pool.fetchval("SELECT count(*) FROM traders WHERE user_id = $1", user) == 0
    gen = await pool.fetchrow("SELECT * FROM trader_generations WHERE user_id = $1", user)
    assert gen["status"] == "failed" and gen["trader_id"] is None and gen["rounds"] == 3
    assert orjson.loads(gen["usage"])["total_tokens"] == 3 * 853 and len(orjson.loads(gen["repairs"])) == 2


async def test_a_refusal_ends_the_generation_at_once(stub, generator, pool):
    user = await _user(pool)
    stub.replies.append((200, {}, completion(TRADER, refusal="I can't help with trading strategies.")))
    with pytest.raises(GenerationFailed) as failed:
        await generate_and_save(pool, generator, user, "Pump and dump.")
    assert failed.value.kind == "refused" and len(stub.requests) == 1


async def test_an_unknown_user_records_nothing_and_asks_nothing(stub, generator, pool):
    from control_plane.generation import UnknownUser

    with pytest.raises(UnknownUser):
        await generate_and_save(pool, generator, uuid.uuid4(), "RSI dips.")
    assert stub.requests == [] and await pool.fetchval("SELECT count(*) FROM trader_generations") == 0


# -- POST /generate-trader ---------------------------------------------------------------------


async def _client(pool: asyncpg.Pool, generator: TraderGenerator | None, admin: str | None = ADMIN) -> TestClient:
    app = create_analysis_app(RulesBackend(), "analysis-token")
    add_generation_route(app, GenerationRoute(pool, generator, admin))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def _post(client: TestClient, payload: Any, token: str | None = ADMIN) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    response = await client.post("/generate-trader", data=data, headers=headers)
    return response.status, await response.json()


async def test_the_endpoint_generates_and_answers_201_with_the_paused_trader(stub, generator, pool):
    user = await _user(pool)
    stub.replies.append(answer())
    client = await _client(pool, generator)
    try:
        status, body = await _post(client, {"userId": str(user), "description": "Buy 1h RSI dips."})
    finally:
        await client.close()
    assert status == 201 and body["success"] and body["status"] == "paused"
    assert body["trader"]["filter_code"] == GOOD_FILTER and body["trader"]["mode"] == "paper"
    assert body["generation"]["usage"]["total_tokens"] == 853 and body["generation"]["rounds"] == 1
    assert body["check"]["outcome"] in ("match", "no_match")
    assert await pool.fetchval("SELECT status FROM traders WHERE id = $1", uuid.UUID(body["traderId"])) == "paused"


@pytest.mark.parametrize(("payload", "token", "status", "error"), [
    ({"userId": "u", "description": "x"}, None, 401, "bearer"),
    ({"userId": "u", "description": "x"}, "analysis-token", 401, "bearer"),  # a machine's token is not enough
    (b"{nope", ADMIN, 400, "not valid JSON"),
    ([1, 2], ADMIN, 400, "JSON object"),
    ({"userId": "not-a-uuid", "description": "x"}, ADMIN, 400, "userId"),
    ({"userId": str(uuid.uuid4()), "description": ""}, ADMIN, 400, "description"),
    ({"userId": str(uuid.uuid4()), "description": "x" * 2001}, ADMIN, 400, "description"),
    ({"userId": str(uuid.uuid4()), "description": "x", "mode": "live"}, ADMIN, 400, "mode"),
    ({"userId": str(uuid.uuid4()), "description": "x"}, ADMIN, 404, "no user"),
])
async def test_bad_requests_get_4xx_and_never_reach_the_llm(stub, generator, pool, payload, token, status, error):
    client = await _client(pool, generator)
    try:
        got, body = await _post(client, payload, token)
    finally:
        await client.close()
    assert got == status and body["success"] is False and error in body["error"]
    assert stub.requests == []


async def test_unconfigured_generation_answers_503(pool):
    client = await _client(pool, None)
    try:
        status, body = await _post(client, {"userId": str(uuid.uuid4()), "description": "x"})
    finally:
        await client.close()
    assert status == 503 and "LLM_BASE_URL" in body["error"]


async def test_failures_map_to_422_and_502_with_what_they_cost(stub, generator, pool):
    user = await _user(pool)
    client = await _client(pool, generator)
    try:
        stub.replies.append((200, {}, completion(TRADER, refusal="no")))
        refused, refused_body = await _post(client, {"userId": str(user), "description": "x"})
        stub.replies.extend([(500, {}, {"error": {"message": "down"}})] * 2)
        down, down_body = await _post(client, {"userId": str(user), "description": "x"})
    finally:
        await client.close()
    assert refused == 422 and "refused" in refused_body["error"] and refused_body["generation"]["rounds"] == 1
    assert down == 502 and down_body["error"] == "HTTP 500"
    assert await pool.fetchval("SELECT count(*) FROM trader_generations WHERE status = 'failed'") == 2


async def test_one_generation_per_user_at_a_time(generator, pool, stub):
    class Gated(OpenAIStub):
        def __init__(self) -> None:
            super().__init__()
            self.arrived = asyncio.Event()
            self.gate = asyncio.Event()

        async def handle(self, request: web.Request) -> web.StreamResponse:
            self.arrived.set()
            await self.gate.wait()
            return await super().handle(request)

    gated = Gated()
    runner = await start_stub(gated)
    gen = TraderGenerator(ChatClient(gated.base_url, KEY, timeout_s=10), "gen-model")
    user = await _user(pool)
    client = await _client(pool, gen)
    try:
        gated.replies.append(answer())
        first = asyncio.create_task(_post(client, {"userId": str(user), "description": "x"}))
        await gated.arrived.wait()
        second = await _post(client, {"userId": str(user), "description": "y"})
        gated.gate.set()
        done = await first
    finally:
        await client.close()
        await gen.aclose()
        await runner.cleanup()
    assert second[0] == 409 and done[0] == 201


# -- control-plane traders generate -----------------------------------------------------------


async def test_the_cli_generates_a_paused_trader(stub, pool, db_url, monkeypatch, tmp_path):
    user = await _user(pool)
    for name, value in {"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path), "LLM_BASE_URL": stub.base_url,
                        "LLM_API_KEY": KEY, "LLM_MODEL_STANDARD": "gen-model"}.items():
        monkeypatch.setenv(name, value)
    stub.replies.append(answer())
    from control_plane.cli import app

    # The CLI runs its own event loop: in a thread, while this loop serves the stub.
    result = await asyncio.to_thread(CliRunner().invoke, app, ["traders", "generate", str(user), "Buy 1h RSI dips."])
    assert result.exit_code == 0, result.output
    trader_id = uuid.UUID(result.stdout.strip().splitlines()[-1])
    assert await pool.fetchval("SELECT status FROM traders WHERE id = $1", trader_id) == "paused"
    assert "paused" in result.output and "1 round(s)" in result.output


def test_the_cli_refuses_to_generate_without_an_llm(monkeypatch, tmp_path):
    from control_plane.cli import app

    for name in ("LLM_BASE_URL", "LLM_MODEL_STANDARD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["traders", "generate", str(uuid.uuid4()), "x"])
    assert result.exit_code == 2 and "LLM_BASE_URL" in " ".join(result.output.split())
