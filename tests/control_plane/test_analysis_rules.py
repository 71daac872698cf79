"""The rules backend: every branch of the documented rule, SL/TP maths, determinism,
indicator resolution and the TA-Lib fallback on real Binance klines."""

from __future__ import annotations

import csv
import gzip
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
import talib

from control_plane.analysis import (
    AnalyzeSignalRequest,
    Decision,
    InsufficientMarketData,
    InvalidAnalysisRequest,
    RulesBackend,
)
from control_plane.analysis._app import dumps

MINUTE = 60_000
T0 = 1_617_321_600_000


def kline(i: int, close: str, *, interval_ms: int = MINUTE) -> list[Any]:
    open_time = T0 + i * interval_ms
    return [open_time, close, close, close, close, "1.5", open_time + interval_ms - 1, "0", 1, "0", "0"]


def request(
    indicators: dict[str, Any],
    closes: tuple[str, ...] = ("100.00", "101.00"),
    *,
    position: dict[str, Any] | None = None,
    interval: str = "1m",
    ticker: dict[str, Any] | None = None,
) -> AnalyzeSignalRequest:
    body: dict[str, Any] = {
        "traderId": "trader-1",
        "signalId": "signal-1",
        "marketData": {
            "symbol": "BTCUSDT",
            "timestamp": T0,
            "ticker": ticker or {"lastPrice": closes[-1] if closes else "100"},
            "klines": {interval: [kline(i, c) for i, c in enumerate(closes)]} if closes else {},
            "indicators": indicators,
        },
    }
    if position is not None:
        body["position"] = position
    return AnalyzeSignalRequest.model_validate(body)


def decide(*args: Any, **kwargs: Any):
    return RulesBackend().decide(request(*args, **kwargs))


def ind(rsi: float, hist: float | None = None, *, lower: float | None = None, atr: float | None = 2.0):
    values: dict[str, Any] = {"rsi_14_1m": rsi}
    if hist is not None:
        values["macd_1m"] = {"macd": 1.0, "signal": 1.0 - hist, "histogram": hist}
    if lower is not None:
        values["bb_20_1m"] = {"upper": lower + 10, "middle": lower + 5, "lower": lower}
    if atr is not None:
        values["atr_14_1m"] = atr
    return values


LONG = {"side": "long", "entryPrice": "95", "size": "0.5"}
SHORT = {"side": "short", "entryPrice": "105", "size": "0.5"}


# -- no open position ---------------------------------------------------------------


def test_open_long_on_oversold_rsi_with_rising_macd():
    result = decide(ind(28.5, 0.4))
    assert result.decision is Decision.OPEN_LONG
    assert result.confidence == 63  # 50 + 2 * (35 - 28.5)
    assert result.extra_metadata["conditions"]["rsiOversold"] is True
    assert "RSI below 35 with MACD histogram above 0" in result.reasoning


def test_open_long_below_lower_band_with_rising_close_even_without_oversold_rsi():
    result = decide(ind(40, -1.0, lower=101.5))  # closes 100 -> 101, below 101.5
    assert result.decision is Decision.OPEN_LONG
    assert result.confidence == 40  # 50 + 2 * (35 - 40)
    assert "lower Bollinger band with a rising close" in result.reasoning


def test_open_short_on_overbought_rsi_with_falling_macd():
    result = decide(ind(75, -0.3))
    assert result.decision is Decision.OPEN_SHORT
    assert result.confidence == 60  # 50 + 2 * (75 - 70)


def test_overbought_without_falling_macd_is_no_trade():
    result = decide(ind(75, 0.3))
    assert result.decision is Decision.NO_TRADE
    assert result.confidence == 40  # d = min(75 - 35, 70 - 75) = -5


def test_watch_when_oversold_rsi_is_not_confirmed_by_macd():
    result = decide(ind(30, -0.2))
    assert result.decision is Decision.WATCH
    assert result.confidence == 60
    assert result.stop_loss is None and result.take_profit is None


def test_watch_when_below_lower_band_but_close_is_falling():
    result = decide(ind(45, -1.0, lower=150.0), closes=("102.00", "101.00"))
    assert result.decision is Decision.WATCH
    assert result.extra_metadata["conditions"]["belowLowerBand"] is True
    assert result.extra_metadata["conditions"]["risingClose"] is False


def test_missing_macd_makes_its_conditions_false():
    result = decide({"rsi_14_1m": 20.0})
    assert result.decision is Decision.WATCH
    assert result.extra_metadata["sources"]["macdHistogram"] == "missing"


def test_no_trade_in_the_middle():
    result = decide(ind(52.5, 0.1))
    assert result.decision is Decision.NO_TRADE
    assert result.confidence == 85  # d = min(17.5, 17.5)


# -- re-analysis of an open position ---------------------------------------------------


@pytest.mark.parametrize(
    ("position", "rsi", "decision", "confidence"),
    [
        (LONG, 72.0, Decision.CLOSE, 54),
        (LONG, 50.0, Decision.WATCH, 90),
        (LONG, 70.0, Decision.WATCH, 50),
        (SHORT, 25.0, Decision.CLOSE, 60),
        (SHORT, 50.0, Decision.WATCH, 90),
    ],
)
def test_open_position_is_closed_or_watched(position, rsi, decision, confidence):
    result = decide(ind(rsi, -1.0), position=position)
    assert result.decision is decision
    assert result.confidence == confidence
    assert result.stop_loss is None and result.take_profit is None


def test_open_position_never_gets_a_new_entry():
    assert decide(ind(20, 1.0), position=LONG).decision is Decision.WATCH
    assert decide(ind(80, -1.0), position=SHORT).decision is Decision.WATCH


# -- confidence -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rsi", "hist", "expected"),
    [
        (28.25, 1.0, 64),  # 63.5 rounds half-even to 64
        (28.75, 1.0, 62),  # 62.5 rounds half-even to 62
        (5.0, 1.0, 100),  # 110 clamped
        (99.0, -1.0, 100),  # open_short 108 clamped
        (99.0, 1.0, 0),  # no_trade, d = -29 -> -8 clamped
    ],
)
def test_confidence_rounding_and_clamping(rsi, hist, expected):
    assert decide(ind(rsi, hist)).confidence == expected


# -- stop-loss / take-profit --------------------------------------------------------------


def test_long_levels_from_atr_rounded_to_price_places():
    result = decide(ind(28.5, 1.0, atr=400.123), closes=("42000.00", "42500.00"))
    assert result.stop_loss == Decimal("41899.82")  # 42500 - 600.1845
    assert result.take_profit == Decimal("43700.37")  # 42500 + 1200.369


def test_short_levels_are_mirrored():
    result = decide(ind(80, -1.0, atr=2.5), closes=("100.00", "101.00"))
    assert result.decision is Decision.OPEN_SHORT
    assert result.stop_loss == Decimal("104.75")  # 101 + 3.75
    assert result.take_profit == Decimal("93.50")  # 101 - 7.5


def test_levels_keep_eight_places_for_small_prices():
    result = decide(ind(20, 1.0, atr=0.0000001), closes=("0.00001200", "0.00001234"))
    assert result.stop_loss == Decimal("0.00001219")
    assert result.take_profit == Decimal("0.00001264")


def test_levels_for_integer_prices_get_two_places():
    result = decide(ind(20, 1.0, atr=0.333), closes=("99", "100"))
    assert result.stop_loss == Decimal("99.50")  # 100 - 0.4995 -> 2 places
    assert result.take_profit == Decimal("101.00")


def test_non_positive_take_profit_is_omitted():
    result = decide(ind(80, -1.0, atr=50.0), closes=("100.00", "101.00"))
    assert result.decision is Decision.OPEN_SHORT
    assert result.stop_loss == Decimal("176.00")
    assert result.take_profit is None
    assert "take-profit" in result.reasoning


def test_no_atr_leaves_levels_to_the_trader():
    result = decide(ind(20, 1.0, atr=None), closes=("1", "2"))
    assert result.decision is Decision.OPEN_LONG
    assert result.stop_loss is None and result.take_profit is None
    assert "No ATR" in result.reasoning


def test_levels_are_serialised_as_exact_json_numbers():
    wire = dumps(decide(ind(28.5, 1.0, atr=400.123), closes=("1", "42500.00")).to_wire())
    assert b'"stopLoss":41899.82' in wire and b'"takeProfit":43700.37' in wire


# -- inputs ---------------------------------------------------------------------------------


def test_seed_example_uses_macd_of_another_interval():
    seed = AnalyzeSignalRequest.model_validate(
        {
            "traderId": "uuid",
            "signalId": "uuid",
            "marketData": {
                "symbol": "BTCUSDT",
                "timestamp": 1704067200000,
                "ticker": {"lastPrice": "42500.00", "volume24h": "25000.5", "priceChange24h": "2.5"},
                "klines": {
                    "1h": [[1704067200000, "42000", "42600", "41900", "42500", "150.5",
                            1704070799999, "6312750", 1250, "80.2", "3360400"]],
                },
                "indicators": {"rsi_1h": 28.5, "macd_4h": {"macd": 150.2, "signal": 120.5, "histogram": 29.7}},
            },
        }
    )
    result = RulesBackend().decide(seed)
    assert result.decision is Decision.OPEN_LONG
    assert result.extra_metadata["interval"] == "1h"
    assert result.extra_metadata["sources"]["macdHistogram"] == "request:macd_4h"


def test_rsi_key_with_default_period_is_preferred():
    result = decide({"rsi_7_1m": 90.0, "rsi_14_1m": 20.0, "rsi_1m": 80.0, "macd_1m": {"histogram": 1}})
    assert result.extra_metadata["sources"]["rsi"] == "request:rsi_14_1m"
    assert result.decision is Decision.OPEN_LONG


def test_histogram_defaults_to_macd_minus_signal():
    result = decide({"rsi_14_1m": 20.0, "macd_12_26_9_1m": {"macd": 2.0, "signal": 1.5}})
    assert result.extra_metadata["inputs"]["macdHistogram"] == pytest.approx(0.5)
    assert result.decision is Decision.OPEN_LONG


def test_shortest_interval_with_rsi_is_primary():
    closes = tuple(f"{100 + i}.00" for i in range(5))  # 5 x 1m: too few for RSI 14
    result = decide({"rsi_14_1h": 20.0, "rsi_14_4h": 80.0, "macd_1h": {"histogram": 1.0}}, closes)
    assert result.extra_metadata["interval"] == "1h"
    assert result.decision is Decision.OPEN_LONG
    assert result.extra_metadata["sources"]["price"] == "ticker:lastPrice"


def test_no_rsi_anywhere_is_insufficient_market_data():
    with pytest.raises(InsufficientMarketData, match="no RSI"):
        decide({"macd_1m": {"histogram": 1.0}})


def test_non_numeric_indicator_is_rejected_by_name():
    with pytest.raises((InvalidAnalysisRequest, ValidationError), match="rsi_14_1m"):
        decide({"rsi_14_1m": "high"})


def _real_klines(binance_data, count: int) -> list[list[Any]]:
    path = binance_data / "spot" / "1m" / "BTCUSDT" / "BTCUSDT-1m-2021-04-02.csv.gz"
    with gzip.open(path, "rt") as fh:
        rows = [row for _, row in zip(range(count), csv.reader(fh))]
    assert len(rows) == count
    return [[int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[0]) + MINUTE - 1] for r in rows]


def test_missing_indicators_are_computed_with_talib_on_real_klines(binance_data):
    rows = _real_klines(binance_data, 120)
    base = {
        "traderId": "t",
        "signalId": "s",
        "marketData": {"symbol": "BTCUSDT", "timestamp": rows[-1][0], "ticker": {}, "klines": {"1m": rows}},
    }
    computed = RulesBackend().decide(AnalyzeSignalRequest.model_validate(base))
    assert computed.extra_metadata["sources"] == {
        "price": "close:1m",
        "rsi": "talib:1m",
        "macdHistogram": "talib:1m",
        "bbLower": "talib:1m",
        "atr": "talib:1m",
    }
    close = np.array([float(r[4]) for r in rows])
    high = np.array([float(r[2]) for r in rows])
    low = np.array([float(r[3]) for r in rows])
    inputs = computed.extra_metadata["inputs"]
    assert inputs["rsi"] == pytest.approx(talib.RSI(close, 14)[-1])
    assert inputs["atr"] == pytest.approx(talib.ATR(high, low, close, 14)[-1])
    assert inputs["price"] == Decimal(rows[-1][4])
    # the same values sent as indicators give the same decision and levels
    sent = dict(base, marketData=dict(base["marketData"], indicators={
        "rsi_14_1m": inputs["rsi"],
        "macd_1m": {"histogram": inputs["macdHistogram"]},
        "bb_20_1m": {"lower": inputs["bbLower"]},
        "atr_14_1m": inputs["atr"],
    }))
    explicit = RulesBackend().decide(AnalyzeSignalRequest.model_validate(sent))
    assert (explicit.decision, explicit.confidence, explicit.stop_loss, explicit.take_profit) == (
        computed.decision, computed.confidence, computed.stop_loss, computed.take_profit
    )


def test_null_indicator_falls_back_to_computation(binance_data):
    rows = _real_klines(binance_data, 40)
    req = AnalyzeSignalRequest.model_validate(
        {
            "traderId": "t",
            "signalId": "s",
            "marketData": {"symbol": "BTCUSDT", "timestamp": 0, "ticker": {},
                           "klines": {"1m": rows}, "indicators": {"rsi_14_1m": None}},
        }
    )
    assert RulesBackend().decide(req).extra_metadata["sources"]["rsi"] == "talib:1m"


async def test_same_request_gives_byte_identical_answers(binance_data):
    rows = _real_klines(binance_data, 200)
    body = {"traderId": "t", "signalId": "s",
            "marketData": {"symbol": "BTCUSDT", "timestamp": 0, "ticker": {}, "klines": {"1m": rows}}}
    backend = RulesBackend()
    answers = {dumps((await backend.analyze(AnalyzeSignalRequest.model_validate(body))).to_wire())
               for _ in range(5)}
    assert len(answers) == 1
