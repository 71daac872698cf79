"""Wire shapes of ``POST /analyze-signal`` (seed 002, "Edge Function: analyze-signal").

Request (camelCase JSON)::

    {
      "traderId": "uuid", "signalId": "uuid", "userId": "uuid",   # userId optional
      "marketData": {
        "symbol": "BTCUSDT",
        "timestamp": 1704067200000,              # ms since the Unix epoch, UTC
        "ticker": {"lastPrice": "42500.00", ...}, # other fields passed through
        "klines": {"1m": [[openTime, "open", "high", "low", "close", "volume",
                           closeTime, "quoteVolume", trades, "takerBuyBase",
                           "takerBuyQuote"], ...]},  # Binance column order, oldest first
        "indicators": {"rsi_14_1m": 28.5, "macd_1m": {"macd": .., "signal": .., "histogram": ..}}
      },
      "aiInstructions": "...",                   # optional (used by the LLM backend)
      "position": {"side": "long", "entryPrice": "42000", "size": "0.01",
                   "stopLoss": "41000", "takeProfit": "44000"},  # optional: re-analysis
      "mode": "paper",                           # optional: "paper" | "live"
      "modelTier": "standard"                    # optional: "standard" | "fast" (LLM backend)
    }

Kline rows follow Binance's ``GET /api/v3/klines`` row layout (Binance Spot API docs,
"Kline/Candlestick data"): at least the first 6 columns; columns 7-11 are optional and
a 12th ("ignore") is dropped. Prices and volumes may be JSON strings (as Binance sends
them) or numbers; they become :class:`~decimal.Decimal`. Prices are in the quote asset,
volumes in the base asset, times in ms since the Unix epoch (UTC). Open times of one
interval must be strictly increasing.

Bounds (a 400 naming the field beyond them): prices are positive, at most
:data:`MAX_PRICE` and at most :data:`MAX_DECIMALS` decimal places (Binance's tick sizes
stop at 8); volumes at most :data:`MAX_VOLUME`; times and counts are JSON integers, never
booleans or strings. Indicator values are null, numbers or numeric strings within
``±MAX_PRICE`` (or objects of them for MACD and Bollinger bands): an RSI within 0..100,
an ATR, Bollinger band, SMA or EMA not negative, a volume average within 0..MAX_VOLUME.

The response is built from :class:`AnalysisResult`; see ``control_plane.analysis._app``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "INTERVAL_MS",
    "MAX_DECIMALS",
    "MAX_PRICE",
    "MAX_VOLUME",
    "AnalysisResult",
    "AnalyzeSignalRequest",
    "Decision",
    "Kline",
    "MarketData",
    "OpenPosition",
    "Ticker",
    "check_indicator",
    "format_validation_error",
]

#: Binance kline intervals (Spot API "ENUM definitions") -> duration in ms.
#: ``1M`` is counted as 30 days; it is only used to order intervals.
INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 2_592_000_000,
}

_KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
)

#: Largest price or indicator magnitude accepted (quote asset); BTC would need to be 10^9x.
MAX_PRICE = Decimal("1e15")
#: Largest volume accepted (base or quote asset).
MAX_VOLUME = Decimal("1e24")
#: Most decimal places accepted in a price or volume.
MAX_DECIMALS = 18

Price = Annotated[
    Decimal, Field(gt=0, le=MAX_PRICE, allow_inf_nan=False, max_digits=34, decimal_places=MAX_DECIMALS)
]
Volume = Annotated[
    Decimal, Field(ge=0, le=MAX_VOLUME, allow_inf_nan=False, max_digits=43, decimal_places=MAX_DECIMALS)
]
#: A JSON integer (ms since the Unix epoch, or a count); ``true`` and ``"1"`` are refused.
WireInt = Annotated[int, Field(strict=True, ge=0, le=2**53)]


class Decision(str, enum.Enum):
    """The decisions of seed 002 (``analysis_history.decision``); ``hedge`` ("Advanced
    Operations") is a valid answer that the machine stores and refuses (spot has no hedge mode)."""

    NO_TRADE = "no_trade"
    WATCH = "watch"
    OPEN_LONG = "open_long"
    OPEN_SHORT = "open_short"
    CLOSE = "close"
    PARTIAL_CLOSE = "partial_close"
    SCALE_IN = "scale_in"
    SCALE_OUT = "scale_out"
    UPDATE_STOP_LOSS = "update_stop_loss"
    UPDATE_TAKE_PROFIT = "update_take_profit"
    FLIP_POSITION = "flip_position"
    HEDGE = "hedge"


class _Wire(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class Kline(BaseModel):
    """One kline row (Binance column order), parsed from a JSON array."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    open_time: WireInt
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Volume
    close_time: WireInt | None = None
    quote_volume: Volume | None = None
    trades: WireInt | None = None
    taker_buy_base_volume: Volume | None = None
    taker_buy_quote_volume: Volume | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            if len(value) < 6:
                raise ValueError(
                    "kline row needs at least 6 columns (openTime, open, high, low, "
                    f"close, volume, ...), got {len(value)}"
                )
            return dict(zip(_KLINE_COLUMNS, value[: len(_KLINE_COLUMNS)]))
        if isinstance(value, Kline):
            return value
        raise ValueError("kline row must be a JSON array in Binance column order")

    @model_validator(mode="after")
    def _check_range(self) -> Kline:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self


class Ticker(_Wire):
    """24h ticker snapshot; only ``lastPrice`` is read, other fields pass through."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )

    last_price: Price | None = None


class MarketData(_Wire):
    """``marketData`` of the request."""

    symbol: str = Field(pattern=r"^[A-Z0-9]{2,30}$")
    timestamp: WireInt = Field(description="ms since the Unix epoch, UTC")
    ticker: Ticker
    klines: dict[str, list[Kline]] = Field(default_factory=dict)
    indicators: dict[str, Any] = Field(default_factory=dict)

    @field_validator("indicators")
    @classmethod
    def _check_indicators(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            check_indicator(key, item)
        return value

    @field_validator("klines")
    @classmethod
    def _check_klines(cls, value: dict[str, list[Kline]]) -> dict[str, list[Kline]]:
        for interval, rows in value.items():
            if interval not in INTERVAL_MS:
                raise ValueError(
                    f"unknown kline interval {interval!r}; expected one of "
                    f"{', '.join(INTERVAL_MS)}"
                )
            for previous, current in zip(rows, rows[1:]):
                if current.open_time <= previous.open_time:
                    raise ValueError(
                        f"klines[{interval!r}] open times must be strictly increasing "
                        f"(oldest first); {current.open_time} follows {previous.open_time}"
                    )
        return value


#: Value ranges by indicator name (the key's first ``_`` part): (lowest, highest).
_INDICATOR_RANGES: dict[str, tuple[Decimal, Decimal]] = {
    "rsi": (Decimal(0), Decimal(100)),
    "atr": (Decimal(0), MAX_PRICE),
    "bb": (Decimal(0), MAX_PRICE),
    "bbands": (Decimal(0), MAX_PRICE),
    "bollinger": (Decimal(0), MAX_PRICE),
    "sma": (Decimal(0), MAX_PRICE),
    "ema": (Decimal(0), MAX_PRICE),
    "volume": (Decimal(0), MAX_VOLUME),
}
_ANY_RANGE = (-MAX_PRICE, MAX_PRICE)


def _indicator_number(path: str, value: Any, low: Decimal, high: Decimal) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{path}: expected a number or null, got {type(value).__name__}")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        raise ValueError(f"{path}: expected a number, got {str(value)[:40]!r}") from None
    if not number.is_finite():
        raise ValueError(f"{path}: expected a finite number, got {str(value)[:40]!r}")
    if not low <= number <= high:
        raise ValueError(f"{path}: {str(value)[:40]} is outside {low}..{high}")


def check_indicator(key: str, value: Any) -> None:
    """Validate one ``marketData.indicators`` entry (see the module doc). Raises ValueError naming it."""
    path = f"indicators.{key}"
    if len(key) > 64:
        raise ValueError(f"{path[:80]}...: indicator keys are at most 64 characters")
    low, high = _INDICATOR_RANGES.get(key.split("_", 1)[0].lower(), _ANY_RANGE)
    if isinstance(value, dict):
        if len(value) > 16:
            raise ValueError(f"{path}: at most 16 fields")
        for name, item in value.items():
            part_low = -MAX_PRICE if name in ("macd", "signal", "histogram") else low
            _indicator_number(f"{path}.{name}", item, part_low, high)
        return
    _indicator_number(path, value, low, high)


class OpenPosition(_Wire):
    """The open position a re-analysis is about (prices in quote, size in base asset)."""

    side: Literal["long", "short"]
    entry_price: Price
    size: Annotated[Decimal, Field(gt=0, le=MAX_VOLUME, allow_inf_nan=False, decimal_places=MAX_DECIMALS)]
    stop_loss: Price | None = None
    take_profit: Price | None = None


class AnalyzeSignalRequest(_Wire):
    """Body of ``POST /analyze-signal``."""

    trader_id: str = Field(min_length=1, max_length=128)
    signal_id: str = Field(min_length=1, max_length=128)
    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    market_data: MarketData
    ai_instructions: str | None = Field(default=None, max_length=50_000)
    position: OpenPosition | None = None
    mode: Literal["paper", "live"] | None = None
    model_tier: Literal["standard", "fast"] | None = None


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """What a backend returns; serialised as the response's ``analysis`` object.

    ``stop_loss``/``take_profit`` are prices in the quote asset, ``position_size`` a
    quantity in the base asset; ``None`` omits the key. ``extra_metadata`` is merged
    into ``metadata`` (camelCase keys, JSON-serialisable values).

    Raises:
        ValueError: ``confidence`` outside 0..100 or empty ``reasoning``.
    """

    decision: Decision
    reasoning: str
    confidence: int
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    position_size: Decimal | None = None
    extra_metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.confidence, bool) or not isinstance(self.confidence, int):
            raise ValueError(f"confidence must be an int, got {self.confidence!r}")
        if not 0 <= self.confidence <= 100:
            raise ValueError(f"confidence must be within 0..100, got {self.confidence}")
        if not self.reasoning:
            raise ValueError("reasoning must not be empty")

    def to_wire(self) -> dict[str, Any]:
        """The ``analysis`` object of the response (Decimals kept for the encoder)."""
        metadata: dict[str, Any] = dict(self.extra_metadata)
        for key, value in (
            ("stopLoss", self.stop_loss),
            ("takeProfit", self.take_profit),
            ("positionSize", self.position_size),
        ):
            if value is not None:
                metadata[key] = value
        return {
            "decision": Decision(self.decision).value,
            "reasoning": self.reasoning,
            "confidence": self.confidence,
            "metadata": metadata,
        }


def format_validation_error(exc: ValidationError, *, limit: int = 5) -> str:
    """One line naming the first ``limit`` problems by their JSON path."""
    parts = []
    for error in exc.errors()[:limit]:
        path = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{path}: {error['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "invalid request: " + "; ".join(parts)
