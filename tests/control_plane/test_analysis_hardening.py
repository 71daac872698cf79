"""``POST /analyze-signal`` under hostile input (issue 20 part 1): every number bounded in
magnitude and precision, indicators range-checked, integers strict, answers small, and
no secret in any log line of a failing run."""

from __future__ import annotations

import io
import json
from typing import Any

import orjson
import pytest
import structlog

from control_plane.analysis import AnalysisResult, AnalyzeSignalRequest, Decision
from control_plane.logs import configure_logging
from test_analysis_app import TOKEN, body, client_for, post


def _with(path: str, value: Any) -> dict[str, Any]:
    payload = body()
    node = payload
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return payload


@pytest.fixture
async def client():
    c = await client_for()
    yield c
    await c.close()


@pytest.mark.parametrize(("path", "value", "named"), [
    # Finite but huge decimals: a 502 that the machine retried as a server fault.
    ("marketData.ticker.lastPrice", "1e999", "lastPrice"),
    ("marketData.ticker.lastPrice", "1e308", "lastPrice"),
    ("marketData.klines.1h.1.4", "1e999", "klines"),
    ("marketData.klines.1h.1.5", "1e308", "klines"),
    # Tiny ones with ten million decimal places: a 30 MB answer to a 409-byte request.
    ("marketData.klines.1h.1.4", "1e-9999999", "klines"),
    ("marketData.ticker.lastPrice", "1e-9999999", "lastPrice"),
    ("marketData.klines.1h.1.1", "0.0000000000000000001", "klines"),
])
async def test_numbers_beyond_the_bounds_are_400(client, path, value, named):
    status, answer = await post(client, _with(path, value))
    assert status == 400, answer
    assert named in answer["error"]


@pytest.mark.parametrize(("key", "value", "named"), [
    ("rsi_14_1h", -50, "indicators.rsi_14_1h"),      # gave open_long with confidence 100
    ("rsi_14_1h", 150, "indicators.rsi_14_1h"),      # gave open_short
    ("rsi_14_1h", "1e999", "indicators.rsi_14_1h"),
    ("atr_14_1h", -400, "indicators.atr_14_1h"),     # silently ignored
    ("sma_50_1h", -1, "indicators.sma_50_1h"),
    ("macd_1h", {"macd": 1, "signal": "1e400", "histogram": 1}, "indicators.macd_1h.signal"),
    ("macd_1h", {"macd": True}, "indicators.macd_1h.macd"),
    ("ema_20_1h", [1, 2], "indicators.ema_20_1h"),
    ("bb_20_1h", {"upper": 1, "middle": 1, "lower": -5}, "indicators.bb_20_1h.lower"),
])
async def test_indicators_out_of_range_or_of_the_wrong_type_are_400_naming_the_field(client, key, value, named):
    payload = body()
    payload["marketData"]["indicators"][key] = value
    status, answer = await post(client, payload)
    assert status == 400, answer
    assert named in answer["error"]


@pytest.mark.parametrize(("path", "value"), [
    ("marketData.timestamp", True),                  # was taken as 1
    ("marketData.timestamp", "1704067200000"),
    ("marketData.timestamp", 1.5),
    ("marketData.klines.1h.1.0", False),
    ("marketData.klines.1h.1.8", True),
])
async def test_integers_are_strict(client, path, value):
    status, answer = await post(client, _with(path, value))
    assert status == 400, answer
    assert path.split(".")[1] in answer["error"]


async def test_bounded_values_still_work_and_the_answer_is_small(client):
    payload = body()
    payload["marketData"]["indicators"]["rsi_14_1h"] = 0
    payload["marketData"]["indicators"]["macd_1h"] = {"macd": -3, "signal": -1, "histogram": "-2"}
    status, answer = await post(client, payload)
    assert status == 200, answer
    assert len(orjson.dumps(answer)) < 4096


class HugeAnswer:
    name = "huge"

    async def analyze(self, request: AnalyzeSignalRequest) -> AnalysisResult:
        return AnalysisResult(Decision.WATCH, "x" * 200_000, 50)


async def test_an_oversized_answer_is_never_sent():
    client = await client_for(HugeAnswer())
    try:
        status, answer = await post(client, body())
    finally:
        await client.close()
    assert status == 502 and "more than" in answer["error"]


class LeakyBackend:
    """Fails with the bearer token and an API key in its local variables and in the error text."""

    name = "leaky"
    api_key = "sk-live-ABCDEF0123456789"

    async def analyze(self, request: AnalyzeSignalRequest) -> AnalysisResult:
        headers = {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": self.api_key}  # noqa: F841 - a local
        raise RuntimeError(f"upstream refused key {self.api_key} for {headers['Authorization']}")


async def test_no_secret_reaches_a_log_line_of_a_failing_run():
    from control_plane.logs import register_secret

    out = io.StringIO()
    configure_logging("info", out)
    register_secret(LeakyBackend.api_key)
    try:
        client = await client_for(LeakyBackend())
        try:
            status, answer = await post(client, body())
        finally:
            await client.close()
    finally:
        structlog.reset_defaults()
    assert status == 502
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    failure = next(line for line in lines if line["event"] == "analysis_backend_failed")
    assert "RuntimeError" in failure["traceback"] and "[redacted]" in failure["traceback"]
    text = out.getvalue() + json.dumps(answer)
    assert TOKEN not in text and LeakyBackend.api_key not in text
    assert "headers" not in failure["traceback"].split("RuntimeError")[-1]  # no local variables
