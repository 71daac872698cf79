"""Building the body of ``POST /analyze-signal`` (seed 002, "2. Analyze Signal").

:meth:`AnalysisRequest.to_json` gives (camelCase keys, orjson)::

    {"traderId": "...", "signalId": "...",
     "marketData": {"symbol": "BTCUSDT", "timestamp": 1704067200000,
                    "ticker": {"symbol": "BTCUSDT", "lastPrice": "42500.00000000", ...},
                    "klines": {"1m": [[1704067200000, "42000.00000000", "42600.00000000",
                                       "41900.00000000", "42500.00000000", "150.50000000",
                                       1704067259999, "6312750.00000000", 1250,
                                       "80.20000000", "3360400.00000000"], ...]},
                    "indicators": {"rsi_14_1m": 28.5, ...}},
     "aiInstructions": "...", "position": {...}, "mode": "paper"}

Kline rows are serialised like Binance's ``GET /api/v3/klines`` rows (Binance Spot API
docs, "Kline/Candlestick data"): times as integers (ms since the Unix epoch, UTC),
prices and volumes as strings; the first 6 columns are required, columns 7-11 are
sent when the row has them, a 12th ("ignore") is dropped. Number formatting: Decimal
as its exact digits, str checked and passed through, int as is, float (the store's
numpy floats) with 8 decimals as Binance prints them. ``timestamp`` is in ms (seed
002's example shows seconds; the issue fixes ms). Ticker keys in snake_case (the
filter contract's ticker) become camelCase with the seed's ``24h`` names
(``volume`` -> ``volume24h``, ``price_change`` -> ``priceChange24h``, ...).
Indicator values are sent as given (numpy scalars/arrays allowed; NaN becomes null).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import orjson

__all__ = ["AnalysisRequest", "OpenPosition", "kline_to_wire", "ticker_to_wire"]

_TICKER_KEYS = {
    "symbol": "symbol",
    "last_price": "lastPrice",
    "open_price": "openPrice",
    "high_price": "highPrice",
    "low_price": "lowPrice",
    "volume": "volume24h",
    "quote_volume": "quoteVolume24h",
    "price_change": "priceChange24h",
    "price_change_percent": "priceChangePercent24h",
}
_TIME_COLUMNS = frozenset({0, 6, 8})  # open_time, close_time, trades (integers)


def _number_text(value: Any, what: str) -> str:
    """The JSON string for a price/volume (rules: module docstring)."""
    if type(value) is float:  # the store's candles: most values, so checked first (no ABC checks)
        if not math.isfinite(value):
            raise ValueError(f"{what}: not a finite number: {value}")
        return f"{value:.8f}"
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a number, got a boolean")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{what}: not a finite number: {value}")
        return format(value, "f")
    if isinstance(value, str):
        try:
            if not Decimal(value).is_finite():
                raise ValueError(f"{what}: not a finite number: {value!r}")
        except InvalidOperation:
            raise ValueError(f"{what}: not a number: {value!r}") from None
        return value
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{what}: not a finite number: {number}")
        return f"{number:.8f}"
    raise ValueError(f"{what}: expected a number, got {type(value).__name__}")


def _integer(value: Any, what: str) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():  # the store's times: whole floats
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise ValueError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what}: expected an integer, got {value!r}") from None
    if not number.is_integer():
        raise ValueError(f"{what}: expected an integer, got {value!r}")
    return int(number)


def kline_to_wire(row: Sequence[Any], what: str = "kline") -> list[Any]:
    """One kline (index access in Binance column order) as a Binance-style JSON row.

    Raises:
        ValueError: fewer than 6 columns or a non-numeric value.
    """
    width = min(len(row), 11)
    if width < 6:
        raise ValueError(f"{what}: needs at least 6 columns (Binance order), got {len(row)}")
    return [
        _integer(row[i], f"{what}[{i}]") if i in _TIME_COLUMNS else _number_text(row[i], f"{what}[{i}]")
        for i in range(width)
    ]


def ticker_to_wire(ticker: Mapping[str, Any]) -> dict[str, Any]:
    """The ticker with seed 002's camelCase names; numbers as strings.

    Unknown keys are kept under their own name (so camelCase input passes through).
    """
    wire: dict[str, Any] = {}
    for key, value in ticker.items():
        name = _TICKER_KEYS.get(key, key)
        if value is None or name == "symbol" or isinstance(value, str):
            wire[name] = value
        else:
            wire[name] = _number_text(value, f"ticker.{key}")
    return wire


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f")) if value.is_finite() else None
    raise TypeError(f"cannot serialise {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """The open position of a re-analysis (prices in quote asset, size in base asset)."""

    side: Literal["long", "short"]
    entry_price: Decimal
    size: Decimal
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None

    def __post_init__(self) -> None:
        if self.side not in ("long", "short"):
            raise ValueError(f"position side must be 'long' or 'short', got {self.side!r}")

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "side": self.side,
            "entryPrice": _number_text(self.entry_price, "position.entryPrice"),
            "size": _number_text(self.size, "position.size"),
        }
        if self.stop_loss is not None:
            wire["stopLoss"] = _number_text(self.stop_loss, "position.stopLoss")
        if self.take_profit is not None:
            wire["takeProfit"] = _number_text(self.take_profit, "position.takeProfit")
        return wire


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    """One analysis request; rows and ticker are converted (and checked) at construction.

    Args:
        trader_id, signal_id: ids (UUIDs are turned into strings).
        symbol: e.g. ``"BTCUSDT"``.
        timestamp_ms: ms since the Unix epoch, UTC.
        ticker: snake_case or camelCase mapping (see :func:`ticker_to_wire`).
        klines: interval -> rows oldest first (sequences, numpy rows or candles with
            index access in Binance column order).
        indicators: ``{"rsi_14_1m": 28.5, "macd_1m": {"macd", "signal", "histogram"}, ...}``.
        ai_instructions, position, mode: optional (re-analysis sends ``position``).
        user_id: the subscriber (optional; the LLM backend's per-subscriber rate limit).
        model_tier: ``standard`` or ``fast`` (optional; the LLM backend's model).

    Raises:
        ValueError: a malformed kline, ticker value, id or timestamp.
    """

    trader_id: str
    signal_id: str
    symbol: str
    timestamp_ms: int
    ticker: Mapping[str, Any]
    klines: Mapping[str, Iterable[Sequence[Any]]]
    indicators: Mapping[str, Any] = field(default_factory=dict)
    ai_instructions: str | None = None
    position: OpenPosition | None = None
    mode: Literal["paper", "live"] | None = None
    user_id: str | None = None
    model_tier: Literal["standard", "fast"] | None = None

    def __post_init__(self) -> None:
        for name in ("trader_id", "signal_id", "symbol"):
            value = str(getattr(self, name))
            if not value:
                raise ValueError(f"{name} must not be empty")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "timestamp_ms", _integer(self.timestamp_ms, "timestamp_ms"))
        if self.timestamp_ms < 0:
            raise ValueError(f"timestamp_ms must be >= 0, got {self.timestamp_ms}")
        object.__setattr__(self, "ticker", ticker_to_wire(self.ticker))
        object.__setattr__(
            self,
            "klines",
            {
                interval: [kline_to_wire(row, f"klines[{interval!r}][{i}]") for i, row in enumerate(rows)]
                for interval, rows in self.klines.items()
            },
        )
        object.__setattr__(self, "indicators", dict(self.indicators))

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict (camelCase); optional keys only when set."""
        wire: dict[str, Any] = {
            "traderId": self.trader_id,
            "signalId": self.signal_id,
            "marketData": {
                "symbol": self.symbol,
                "timestamp": self.timestamp_ms,
                "ticker": self.ticker,
                "klines": self.klines,
                "indicators": self.indicators,
            },
        }
        if self.ai_instructions is not None:
            wire["aiInstructions"] = self.ai_instructions
        if self.position is not None:
            wire["position"] = self.position.to_wire()
        if self.mode is not None:
            wire["mode"] = self.mode
        if self.user_id is not None:
            wire["userId"] = str(self.user_id)
        if self.model_tier is not None:
            wire["modelTier"] = self.model_tier
        return wire

    def to_json(self) -> bytes:
        """The request body (orjson; numpy values and Decimals allowed in indicators)."""
        return orjson.dumps(
            self.to_wire(),
            default=_json_default,
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
        )
