"""The analysis HTTP service over real loopback HTTP: auth, validation, answers,
backend failures and the on_analysis hook."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from control_plane.analysis import (
    AnalysisResult,
    AnalyzeSignalRequest,
    BackendUnavailable,
    Decision,
    RulesBackend,
    create_analysis_app,
    serve_analysis,
)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def body(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "traderId": "trader-1",
        "signalId": "signal-1",
        "marketData": {
            "symbol": "BTCUSDT",
            "timestamp": 1704067200000,
            "ticker": {"lastPrice": "42500.00", "volume24h": "25000.5", "priceChange24h": "2.5"},
            "klines": {
                "1h": [
                    [1704063600000, "41900", "42100", "41800", "42000", "120.1", 1704067199999, "5000000", 900, "60.0", "2500000"],
                    [1704067200000, "42000", "42600", "41900", "42500.00", "150.5", 1704070799999, "6312750", 1250, "80.2", "3360400"],
                ]
            },
            "indicators": {
                "rsi_14_1h": 28.5,
                "macd_1h": {"macd": 150.2, "signal": 120.5, "histogram": 29.7},
                "atr_14_1h": 400.123,
                "sma_50_1h": 41000.0,
            },
        },
    }
    payload.update(overrides)
    return payload


class SlowBackend:
    """Never answers until released (for the timeout path)."""

    name = "slow"

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def analyze(self, request: AnalyzeSignalRequest) -> AnalysisResult:
        await self.release.wait()
        return AnalysisResult(Decision.NO_TRADE, "late", 0)


class FailingBackend:
    name = "failing"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def analyze(self, request: AnalyzeSignalRequest) -> AnalysisResult:
        raise self.exc


async def client_for(backend: Any = None, **kwargs: Any) -> TestClient:
    client = TestClient(TestServer(create_analysis_app(backend or RulesBackend(), TOKEN, **kwargs)))
    await client.start_server()
    return client


@pytest.fixture
async def client():
    c = await client_for()
    yield c
    await c.close()


async def post(client: TestClient, payload: Any, headers: dict[str, str] | None = AUTH, path: str = "/analyze-signal"):
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    response = await client.post(path, data=data, headers=headers or {})
    return response.status, await response.json()


# -- auth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [None, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"}],
)
async def test_requests_without_the_token_get_401(client, headers):
    response = await client.post("/analyze-signal", data=orjson.dumps(body()), headers=headers or {})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await response.json() == {"success": False, "error": "missing or invalid bearer token"}


async def test_auth_is_checked_before_the_body(client):
    status, answer = await post(client, b"not json", headers={"Authorization": "Bearer nope"})
    assert status == 401


async def test_healthz_needs_no_token(client):
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["backend"] == "rules"


def test_empty_token_is_refused():
    with pytest.raises(ValueError, match="token"):
        create_analysis_app(RulesBackend(), "")


# -- validation ------------------------------------------------------------------------------


def _drop(path: tuple[str, ...]) -> dict[str, Any]:
    payload = body()
    target = payload
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (_drop(("marketData",)), "marketData: Field required"),
        (_drop(("marketData", "ticker")), "marketData.ticker: Field required"),
        (body(traderId=""), "traderId"),
        (body(mode="yolo"), "mode"),
        (body(position={"side": "sideways", "entryPrice": "1", "size": "1"}), "position.side"),
    ],
)
async def test_malformed_requests_get_400_with_the_problem_named(client, payload, message):
    status, answer = await post(client, payload)
    assert status == 400
    assert answer["success"] is False
    assert message in answer["error"]


@pytest.mark.parametrize(
    ("klines", "message"),
    [
        ({"1h": [[1, "1", "1", "1"]]}, "marketData.klines.1h.0"),
        ({"1h": [[1, "abc", "1", "1", "1", "1"]]}, "marketData.klines.1h.0.open"),
        ({"1h": [[1, "1", "1", "2", "1", "1"]]}, "low 2 is above high 1"),
        ({"7m": [[1, "1", "1", "1", "1", "1"]]}, "unknown kline interval '7m'"),
        ({"1h": [[2, "1", "1", "1", "1", "1"], [1, "1", "1", "1", "1", "1"]]}, "strictly increasing"),
        ({"1h": [{"open": "1"}]}, "Binance column order"),
    ],
)
async def test_malformed_klines_get_400(client, klines, message):
    payload = body()
    payload["marketData"]["klines"] = klines
    status, answer = await post(client, payload)
    assert status == 400
    assert message in answer["error"]


async def test_non_numeric_indicator_gets_400(client):
    payload = body()
    payload["marketData"]["indicators"]["rsi_14_1h"] = [1, 2]
    status, answer = await post(client, payload)
    assert (status, answer["success"]) == (400, False)
    assert "rsi_14_1h" in answer["error"]


async def test_insufficient_data_gets_422(client):
    payload = body()
    payload["marketData"]["indicators"] = {}
    status, answer = await post(client, payload)
    assert status == 422
    assert "no RSI" in answer["error"]


# -- answers -------------------------------------------------------------------------------------


async def test_answer_has_seed_shape_and_exact_numbers(client):
    response = await client.post("/analyze-signal", data=orjson.dumps(body()), headers=AUTH)
    assert response.status == 200
    raw = await response.read()
    answer = orjson.loads(raw)
    assert answer["success"] is True
    analysis = answer["analysis"]
    assert set(analysis) == {"decision", "reasoning", "confidence", "metadata"}
    assert analysis["decision"] == "open_long"
    assert analysis["confidence"] == 63
    assert b'"stopLoss":41899.82' in raw and b'"takeProfit":43700.37' in raw
    assert "positionSize" not in analysis["metadata"]


async def test_seed_path_is_an_alias(client):
    status, answer = await post(client, body(), path="/functions/v1/analyze-signal")
    assert status == 200 and answer["analysis"]["decision"] == "open_long"


async def test_reanalysis_with_a_position_answers_close_or_watch(client):
    status, answer = await post(
        client, body(position={"side": "long", "entryPrice": "41000", "size": "0.01", "stopLoss": "40000"})
    )
    assert status == 200
    assert answer["analysis"]["decision"] == "watch"


async def test_unknown_route_and_method_answer_json(client):
    response = await client.get("/analyze-signal")
    assert response.status == 405
    assert (await response.json())["success"] is False
    response = await client.get("/nope")
    assert response.status == 404
    assert (await response.json())["success"] is False


# -- backend failures --------------------------------------------------------------------------------


async def test_slow_backend_answers_504():
    backend = SlowBackend()
    client = await client_for(backend, backend_timeout_s=0.05)
    try:
        status, answer = await post(client, body())
        assert status == 504
        assert "timed out" in answer["error"]
    finally:
        backend.release.set()
        await client.close()


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (BackendUnavailable("upstream rate limited"), 503, "upstream rate limited"),
        (RuntimeError("boom"), 502, "analysis backend 'failing' failed: RuntimeError"),
    ],
)
async def test_backend_errors_map_to_5xx(exc, status, message):
    client = await client_for(FailingBackend(exc))
    try:
        got, answer = await post(client, body())
        assert got == status
        assert answer == {"success": False, "error": message}
    finally:
        await client.close()


# -- on_analysis hook ----------------------------------------------------------------------------------


async def test_hook_sees_request_and_result_before_the_answer():
    seen: list[tuple[AnalyzeSignalRequest, AnalysisResult]] = []

    async def record(request: AnalyzeSignalRequest, result: AnalysisResult) -> None:
        seen.append((request, result))

    client = await client_for(on_analysis=record)
    try:
        status, answer = await post(client, body())
    finally:
        await client.close()
    assert status == 200
    assert len(seen) == 1
    request, result = seen[0]
    assert request.signal_id == "signal-1"
    assert result.decision.value == answer["analysis"]["decision"]


async def test_failing_hook_turns_the_answer_into_500():
    def broken(request: AnalyzeSignalRequest, result: AnalysisResult) -> None:
        raise RuntimeError("database down")

    client = await client_for(on_analysis=broken)
    try:
        status, answer = await post(client, body())
    finally:
        await client.close()
    assert status == 500
    assert answer == {"success": False, "error": "failed to record the analysis"}


# -- serve_analysis ---------------------------------------------------------------------------------------


async def test_serve_analysis_listens_on_a_free_port():
    server = await serve_analysis("127.0.0.1", 0, RulesBackend(), TOKEN)
    try:
        assert server.analyze_url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(":0")
        async with aiohttp.ClientSession() as session:
            async with session.post(server.analyze_url, data=orjson.dumps(body()), headers=AUTH) as response:
                assert response.status == 200
                assert (await response.json())["analysis"]["decision"] == "open_long"
            async with session.get(server.url + "/healthz") as response:
                health = await response.json()
        assert health == {"status": "ok", "backend": "rules", "analyses": 1, "errors": 0}
    finally:
        await server.close()


async def test_oversized_body_gets_413():
    client = await client_for(max_body_bytes=1024)
    try:
        status, answer = await post(client, body(aiInstructions="x" * 4096))
    finally:
        await client.close()
    assert status == 413
    assert answer["success"] is False
