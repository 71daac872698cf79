"""The machine's analysis client against real HTTP peers on loopback: the real
analysis service (control_plane.analysis) and small scripted aiohttp apps that fail,
hang or answer odd decisions."""

from __future__ import annotations

import asyncio
import csv
import gzip
import socket
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from control_plane.analysis import RulesBackend, serve_analysis
from machine.analysis import (
    EXECUTABLE_DECISIONS,
    KNOWN_DECISIONS,
    AnalysisClient,
    AnalysisInvalidResponse,
    AnalysisRejected,
    AnalysisRequest,
    AnalysisUnavailable,
    OpenPosition,
    parse_analysis_response,
)

TOKEN = "machine-analysis-token"
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "backoff_jitter_s": 0.01}
MINUTE = 60_000


def real_rows(binance_data, count: int = 120) -> np.ndarray:
    """Real BTCUSDT 1m klines as the machine's numpy store holds them (floats)."""
    path = binance_data / "spot" / "1m" / "BTCUSDT" / "BTCUSDT-1m-2021-04-02.csv.gz"
    with gzip.open(path, "rt") as fh:
        rows = [[float(x) for x in row] for _, row in zip(range(count), csv.reader(fh))]
    table = np.zeros((count, 11))
    table[:, :6] = rows
    table[:, 6] = table[:, 0] + MINUTE - 1
    return table


def simple_request(**overrides: Any) -> AnalysisRequest:
    fields: dict[str, Any] = {
        "trader_id": "trader-1",
        "signal_id": "signal-1",
        "symbol": "BTCUSDT",
        "timestamp_ms": 1_704_067_200_000,
        "ticker": {"symbol": "BTCUSDT", "last_price": 42500.0},
        "klines": {"1h": [[1_704_067_200_000, "42000", "42600", "41900", "42500.00", "150.5"]]},
        "indicators": {"rsi_14_1h": 28.5, "macd_1h": {"histogram": 29.7}, "atr_14_1h": 400.123},
    }
    fields.update(overrides)
    return AnalysisRequest(**fields)


def analysis_body(decision: str = "open_long", **analysis: Any) -> dict[str, Any]:
    return {
        "success": True,
        "analysis": {
            "decision": decision,
            "reasoning": "scripted",
            "confidence": 70,
            "metadata": {"stopLoss": 41800, "takeProfit": 44500},
            **analysis,
        },
    }


class ScriptedPeer:
    """A real aiohttp app answering POSTs from a script; the last step repeats.

    A step is ``(status, body, headers)`` or ``"hang"`` (waits until ``release``).
    """

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.hits = 0
        self.bodies: list[bytes] = []
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/analyze-signal", self._handle)
        self.server = TestServer(app)

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.bodies.append(await request.read())
        step = self.steps[min(self.hits, len(self.steps)) - 1]
        if step == "hang":
            await self.release.wait()
            return web.Response(status=204)
        status, payload, headers = step
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return web.Response(status=status, body=data, headers=headers, content_type="application/json")

    @property
    def url(self) -> str:
        return str(self.server.make_url("/analyze-signal"))


@pytest.fixture
async def peer_factory():
    peers: list[ScriptedPeer] = []

    async def start(*steps: Any) -> ScriptedPeer:
        peer = ScriptedPeer(*steps)
        await peer.server.start_server()
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.release.set()
        await peer.server.close()


@pytest.fixture
async def rules_server():
    server = await serve_analysis("127.0.0.1", 0, RulesBackend(), TOKEN)
    yield server
    await server.close()


# -- against the real analysis service -------------------------------------------------------


async def test_happy_path_against_the_real_service(rules_server, binance_data):
    rows = real_rows(binance_data)
    request = simple_request(klines={"1m": rows}, indicators={"sma_50_1m": float(rows[-50:, 4].mean())})
    async with AnalysisClient(rules_server.analyze_url, TOKEN, **FAST) as client:
        decision = await client.analyze(request)
    assert decision.valid and decision.invalid_reason is None
    assert decision.decision in EXECUTABLE_DECISIONS
    assert 0 <= decision.confidence <= 100
    assert decision.metadata["sources"]["rsi"] == "talib:1m"
    assert decision.raw["analysis"]["decision"] == decision.decision
    assert client.stats.as_dict() | {"last_duration_s": None} == {
        "requests": 1, "attempts": 1, "retries": 0, "successes": 1, "invalid_decisions": 0,
        "unavailable": 0, "rejected": 0, "invalid_responses": 0, "last_duration_s": None, "failures": 0,
    }


async def test_open_long_levels_arrive_as_exact_decimals(rules_server):
    async with AnalysisClient(rules_server.analyze_url, TOKEN, **FAST) as client:
        decision = await client.analyze(simple_request())
    assert decision.decision == "open_long" and decision.valid
    assert decision.stop_loss == Decimal("41899.82")
    assert decision.take_profit == Decimal("43700.37")
    assert decision.position_size is None
    assert decision.confidence == 63


async def test_reanalysis_with_position_gets_close(rules_server):
    request = simple_request(
        indicators={"rsi_14_1h": 75.0},
        position=OpenPosition("long", Decimal("41000"), Decimal("0.01"), stop_loss=Decimal("40000")),
        mode="paper",
        ai_instructions="close when overbought",
    )
    async with AnalysisClient(rules_server.analyze_url, TOKEN, **FAST) as client:
        decision = await client.analyze(request)
    assert (decision.decision, decision.valid) == ("close", True)


async def test_wrong_token_is_rejected_without_retry(rules_server):
    async with AnalysisClient(rules_server.analyze_url, "wrong", max_attempts=3, **FAST) as client:
        with pytest.raises(AnalysisRejected) as caught:
            await client.analyze(simple_request())
    assert caught.value.status == 401
    assert caught.value.error == "missing or invalid bearer token"
    assert (client.stats.attempts, client.stats.rejected, client.stats.retries) == (1, 1, 0)


async def test_insufficient_data_422_is_rejected_without_retry(rules_server):
    async with AnalysisClient(rules_server.analyze_url, TOKEN, **FAST) as client:
        with pytest.raises(AnalysisRejected, match="no RSI") as caught:
            await client.analyze(simple_request(indicators={}))
    assert caught.value.status == 422
    assert client.stats.attempts == 1


# -- retries ----------------------------------------------------------------------------------------


async def test_retries_503_then_succeeds(peer_factory):
    unavailable = (503, {"success": False, "error": "try later"}, None)
    peer = await peer_factory(unavailable, unavailable, (200, analysis_body(), None))
    async with AnalysisClient(peer.url, TOKEN, max_attempts=3, **FAST) as client:
        decision = await client.analyze(simple_request())
    assert decision.valid and decision.decision == "open_long"
    assert peer.hits == 3
    assert len(set(peer.bodies)) == 1  # the same body every attempt
    assert (client.stats.attempts, client.stats.retries, client.stats.successes) == (3, 2, 1)


async def test_429_is_retried_and_retry_after_is_read(peer_factory):
    peer = await peer_factory((429, {"success": False, "error": "slow down"}, {"Retry-After": "0"}),
                              (200, analysis_body("watch"), None))
    async with AnalysisClient(peer.url, TOKEN, **FAST) as client:
        decision = await client.analyze(simple_request())
    assert decision.decision == "watch" and peer.hits == 2


async def test_persistent_5xx_exhausts_attempts(peer_factory):
    peer = await peer_factory((502, b"bad gateway", None))
    async with AnalysisClient(peer.url, TOKEN, max_attempts=4, **FAST) as client:
        with pytest.raises(AnalysisUnavailable) as caught:
            await client.analyze(simple_request())
    assert (caught.value.attempts, caught.value.status) == (4, 502)
    assert peer.hits == 4
    assert client.stats.unavailable == 1 and client.stats.failures == 1


async def test_timeout_raises_unavailable_after_max_attempts(peer_factory):
    peer = await peer_factory("hang")
    async with AnalysisClient(peer.url, TOKEN, timeout_s=0.2, max_attempts=2, **FAST) as client:
        with pytest.raises(AnalysisUnavailable, match="timed out") as caught:
            await client.analyze(simple_request())
    assert caught.value.attempts == 2 and caught.value.status is None
    assert peer.hits == 2


async def test_connection_refused_raises_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AnalysisClient(f"http://127.0.0.1:{port}/analyze-signal", TOKEN, max_attempts=2, **FAST) as client:
        with pytest.raises(AnalysisUnavailable, match="connection failed"):
            await client.analyze(simple_request())
    assert client.stats.attempts == 2


# -- decisions the machine must not execute ----------------------------------------------------------


@pytest.mark.parametrize(
    ("analysis", "reason"),
    [
        (analysis_body("hedge"), "hedge is refused: Binance Spot has no hedge mode"),
        (analysis_body("partial_close", metadata={"closePercentage": 0}), "metadata.closePercentage must be a fraction"),
        (analysis_body("partial_close", metadata={"closePercentage": 150}), "metadata.closePercentage must be a fraction"),
        (analysis_body("scale_out", metadata={"scaleOutPercentage": "half"}), "metadata.scaleOutPercentage"),
        (analysis_body("scale_in", metadata={"scaleInAmount": -1}), "metadata.scaleInAmount must be a number > 0"),
        (analysis_body("update_stop_loss", metadata={}), "update_stop_loss needs metadata.newStopLoss"),
        (analysis_body("update_take_profit", metadata={"newTakeProfit": 0}), "metadata.newTakeProfit must be a number > 0"),
        (analysis_body("to_the_moon"), "unknown decision 'to_the_moon'"),
        (analysis_body("open_long", metadata={"stopLoss": 45000, "takeProfit": 44000}), "stopLoss 45000 >= takeProfit 44000"),
        (analysis_body("open_short", metadata={"stopLoss": 41000, "takeProfit": 44000}), "stopLoss 41000 <= takeProfit 44000"),
        (analysis_body("open_long", metadata={"stopLoss": "abc"}), "metadata.stopLoss must be a number > 0"),
        (analysis_body("open_long", metadata={"positionSize": -1}), "metadata.positionSize"),
        (analysis_body("open_long", confidence=150), "confidence must be a number within 0..100"),
        (analysis_body("watch", metadata=[1]), "metadata must be an object"),
        (analysis_body("watch", reasoning=None), "reasoning must be a string"),
    ],
)
async def test_invalid_decisions_are_returned_not_executed(peer_factory, analysis, reason):
    peer = await peer_factory((200, analysis, None))
    async with AnalysisClient(peer.url, TOKEN, **FAST) as client:
        decision = await client.analyze(simple_request())
    assert decision.valid is False
    assert reason in decision.invalid_reason
    assert decision.decision == analysis["analysis"]["decision"]
    assert decision.raw == analysis
    assert client.stats.invalid_decisions == 1 and client.stats.attempts == 1


@pytest.mark.parametrize(
    "payload",
    [b"<html>oops</html>", {"success": False, "error": "x"}, {"success": True}, analysis_body(decision=None)],
)
async def test_unusable_2xx_bodies_raise_invalid_response(peer_factory, payload):
    peer = await peer_factory((200, payload, None))
    async with AnalysisClient(peer.url, TOKEN, **FAST) as client:
        with pytest.raises(AnalysisInvalidResponse):
            await client.analyze(simple_request())
    assert client.stats.invalid_responses == 1 and peer.hits == 1


def test_decision_sets():
    assert len(EXECUTABLE_DECISIONS) == 11 and KNOWN_DECISIONS == EXECUTABLE_DECISIONS | {"hedge"}
    assert {"partial_close", "scale_in", "scale_out", "update_stop_loss", "update_take_profit",
            "flip_position"} < EXECUTABLE_DECISIONS


@pytest.mark.parametrize(("decision", "metadata", "field", "value"), [
    ("partial_close", {}, "fraction", Decimal("0.5")),  # seed 002's default
    ("partial_close", {"closePercentage": 0.25}, "fraction", Decimal("0.25")),
    ("partial_close", {"closePercentage": 75}, "fraction", Decimal("0.75")),  # a percent above 1
    ("partial_close", {"closePercentage": 1}, "fraction", Decimal(1)),
    ("scale_out", {}, "fraction", Decimal("0.25")),
    ("scale_in", {"scaleInAmount": "0.015"}, "quantity", Decimal("0.015")),
    ("scale_in", {}, "quantity", None),  # sized by the trader's risk settings
    ("update_stop_loss", {"newStopLoss": 41000.5}, "new_stop_loss", Decimal("41000.5")),
    ("update_stop_loss", {"stopLoss": 41000}, "new_stop_loss", Decimal(41000)),
    ("update_take_profit", {"newTakeProfit": "45000"}, "new_take_profit", Decimal(45000)),
])
def test_the_seed_decisions_carry_their_metadata(decision, metadata, field, value):
    parsed = parse_analysis_response(orjson.dumps(analysis_body(decision, metadata=metadata)))
    assert parsed.valid, parsed.invalid_reason
    assert getattr(parsed, field) == value


def test_numbers_become_exact_decimals():
    body = b'{"success":true,"analysis":{"decision":"open_long","reasoning":"r","confidence":62.5,' \
           b'"metadata":{"stopLoss":12345678.123456789,"takeProfit":"12345679.5","positionSize":0.1}}}'
    decision = parse_analysis_response(body)
    assert decision.valid
    assert decision.stop_loss == Decimal("12345678.123456789")
    assert decision.take_profit == Decimal("12345679.5")
    assert decision.position_size == Decimal("0.1")
    assert decision.confidence == 62  # half-even


def test_missing_confidence_and_metadata_are_allowed():
    decision = parse_analysis_response(b'{"success":true,"analysis":{"decision":"no_trade","reasoning":"r"}}')
    assert decision.valid and decision.confidence is None and decision.metadata == {}


# -- request building ------------------------------------------------------------------------------------


def test_request_json_matches_the_seed_shape(binance_data):
    rows = real_rows(binance_data, 3)
    request = simple_request(
        klines={"1m": rows},
        ticker={"symbol": "BTCUSDT", "last_price": 58672.92, "volume": 120.5, "price_change": Decimal("-1.5")},
        indicators={"rsi_14_1m": np.float64(41.2), "macd_1m": {"histogram": float("nan")}},
        position=OpenPosition("short", Decimal("58000.10"), Decimal("0.002")),
    )
    wire = orjson.loads(request.to_json())
    assert set(wire) == {"traderId", "signalId", "marketData", "position"}
    market = wire["marketData"]
    assert market["timestamp"] == 1_704_067_200_000
    assert market["ticker"] == {"symbol": "BTCUSDT", "lastPrice": "58672.92000000",
                                "volume24h": "120.50000000", "priceChange24h": "-1.5"}
    assert market["klines"]["1m"][0] == [1617321600000, "58720.45000000", "58840.43000000", "58720.44000000",
                                         "58760.34000000", "61.68567500", 1617321659999, "0.00000000", 0,
                                         "0.00000000", "0.00000000"]
    assert market["indicators"] == {"rsi_14_1m": 41.2, "macd_1m": {"histogram": None}}
    assert wire["position"] == {"side": "short", "entryPrice": "58000.10", "size": "0.002"}


def test_six_column_rows_and_strings_pass_through():
    request = simple_request(klines={"1m": [(1, "0.00001234", "0.00001300", "0.00001200", "0.00001250", "10")]})
    assert orjson.loads(request.to_json())["marketData"]["klines"]["1m"] == [
        [1, "0.00001234", "0.00001300", "0.00001200", "0.00001250", "10"]
    ]


@pytest.mark.parametrize(
    ("klines", "message"),
    [
        ({"1m": [[1, 2, 3]]}, "needs at least 6 columns"),
        ({"1m": [[1, "x", 1, 1, 1, 1]]}, "not a number"),
        ({"1m": [[1.5, 1, 1, 1, 1, 1]]}, "expected an integer"),
        ({"1m": [[1, float("inf"), 1, 1, 1, 1]]}, "not a finite number"),
    ],
)
def test_malformed_rows_fail_at_construction(klines, message):
    with pytest.raises(ValueError, match=message):
        simple_request(klines=klines)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"url": "ftp://x/analyze"}, "http"), ({"token": ""}, "token"), ({"max_attempts": 0}, "positive")],
)
def test_client_settings_are_checked(kwargs, message):
    args = {"url": "http://127.0.0.1:1/analyze-signal", "token": TOKEN} | kwargs
    with pytest.raises(ValueError, match=message):
        AnalysisClient(args.pop("url"), args.pop("token"), **args)
