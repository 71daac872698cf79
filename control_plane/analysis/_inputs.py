"""The indicator values the rules backend reads, taken from the request or computed.

Indicator keys in ``marketData.indicators`` follow ``<name>[_<period>][_<interval>]``,
e.g. ``rsi_14_1m``, ``rsi_1h`` (seed 002), ``macd_1m``, ``atr_14_1m``, ``bb_20_1m``.
Names read here: ``rsi`` (number), ``macd`` (``{"macd", "signal", "histogram"}``;
``histogram`` defaults to ``macd - signal``), ``bb``/``bbands``/``bollinger``
(``{"upper", "middle", "lower"}``) and ``atr`` (number). Other keys (``sma_50_1h``,
``ema_20_1m``, ...) are accepted and ignored by the rule. ``null`` means "not available"
(TA-Lib's warm-up NaN serialised by orjson).

For a name and interval, request keys are preferred in this order: the key with the
default period (14 / 20), the key without a period, other periods ascending, and a key
without an interval last. When the request has no usable value, it is computed from
``marketData.klines[interval]`` as sent (the last row may be the forming candle) with
the ``indicators`` package (TA-Lib): ``get_latest_rsi(k, 14)`` (TA-Lib RSI),
``get_latest_macd(k, 12, 26, 9)`` (MACD), ``get_latest_bollinger_bands(k, 20, 2.0)``
(BBANDS, SMA) and ``get_latest_atr(k, 14)`` (ATR); each needs its warm-up of candles
(15, 34, 20, 15) and is otherwise unavailable.

Interval choice: the *primary* interval is the shortest interval (by duration) for
which an RSI is available; every other indicator is read on the primary interval and,
when unavailable there, on the shortest interval where it is. ``sources`` records where
each value came from (``request:<key>``, ``talib:<interval>``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from control_plane.analysis._errors import InsufficientMarketData, InvalidAnalysisRequest
from control_plane.analysis._schemas import INTERVAL_MS, Kline, MarketData
from indicators import get_latest_atr, get_latest_bollinger_bands, get_latest_macd, get_latest_rsi

__all__ = ["RSI_PERIOD", "RuleInputs", "resolve_inputs"]

RSI_PERIOD = 14
MACD_PERIODS = (12, 26, 9)
BB_PERIOD = 20
BB_DEVIATIONS = 2.0
ATR_PERIOD = 14

_ALIASES = {"rsi": "rsi", "macd": "macd", "atr": "atr", "bb": "bb", "bbands": "bb", "bollinger": "bb"}
_DEFAULT_PERIOD = {"rsi": RSI_PERIOD, "atr": ATR_PERIOD, "bb": BB_PERIOD, "macd": None}


@dataclass(frozen=True, slots=True)
class RuleInputs:
    """Inputs of the rule on the primary ``interval``.

    ``price`` is the last close of ``klines[interval]`` (quote asset), or the ticker's
    ``lastPrice`` when that interval has no klines; ``previous_close`` is the close
    before it (``None`` with fewer than two klines). Indicator values are floats;
    ``None`` means unavailable. ``price_exponent`` is the Decimal exponent of the price
    as sent (used to round stop-loss/take-profit).
    """

    interval: str
    price: Decimal
    previous_close: Decimal | None
    rsi: float
    macd_histogram: float | None
    bb_lower: float | None
    atr: float | None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def rising_close(self) -> bool:
        """True when the last close is above the previous one."""
        return self.previous_close is not None and self.price > self.previous_close

    @property
    def price_exponent(self) -> int:
        exponent = self.price.as_tuple().exponent
        return exponent if isinstance(exponent, int) else 0


@dataclass(frozen=True, slots=True)
class _Key:
    key: str
    name: str
    period: int | None
    interval: str | None


def _parse_key(key: str) -> _Key | None:
    parts = key.split("_")
    name = _ALIASES.get(parts[0].lower())
    if name is None:
        return None
    period: int | None = None
    interval: str | None = None
    for part in parts[1:]:
        if part in INTERVAL_MS and interval is None:
            interval = part
        elif part.isdigit() and interval is None:
            period = int(part) if period is None else period  # macd_12_26_9_1m
        else:
            return None
    return _Key(key, name, period, interval)


def _number(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidAnalysisRequest(f"marketData.indicators.{key}: expected a number, got a boolean")
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            raise InvalidAnalysisRequest(
                f"marketData.indicators.{key}: expected a number, got {value!r}"
            ) from None
    else:
        raise InvalidAnalysisRequest(
            f"marketData.indicators.{key}: expected a number or null, got {type(value).__name__}"
        )
    return result if math.isfinite(result) else None


def _field(key: str, value: Any, name: str) -> float | None:
    if not isinstance(value, Mapping):
        if value is None:
            return None
        raise InvalidAnalysisRequest(
            f"marketData.indicators.{key}: expected an object, got {type(value).__name__}"
        )
    return _number(f"{key}.{name}", value.get(name))


def _value_from_request(parsed: _Key, value: Any, part: str) -> float | None:
    """The float ``part`` of an indicator value (``value`` for scalars)."""
    if parsed.name in ("rsi", "atr"):
        return _number(parsed.key, value)
    if parsed.name == "macd":
        hist = _field(parsed.key, value, "histogram")
        if hist is None and isinstance(value, Mapping):
            macd = _field(parsed.key, value, "macd")
            signal = _field(parsed.key, value, "signal")
            if macd is not None and signal is not None:
                hist = macd - signal
        return hist
    return _field(parsed.key, value, part)


def _table(klines: Sequence[Kline]) -> np.ndarray:
    """The first 6 Binance columns as a float64 ``(n, 6)`` array (``indicators`` input)."""
    return np.array(
        [[k.open_time, k.open, k.high, k.low, k.close, k.volume] for k in klines], dtype=np.float64
    ).reshape(len(klines), 6)


def _compute(name: str, part: str, table: np.ndarray) -> float | None:
    """The latest value of an indicator over ``table`` (``None`` while warming up)."""
    if table.shape[0] == 0:
        return None
    if name == "rsi":
        return get_latest_rsi(table, RSI_PERIOD)
    if name == "macd":
        macd = get_latest_macd(table, *MACD_PERIODS)
        return None if macd is None else macd[2]
    if name == "bb":
        bands = get_latest_bollinger_bands(table, BB_PERIOD, BB_DEVIATIONS)
        return None if bands is None else {"upper": bands[0], "lower": bands[2]}[part]
    if name == "atr":
        return get_latest_atr(table, ATR_PERIOD)
    raise ValueError(f"no computation for indicator {name!r}")


class _Resolver:
    def __init__(self, market: MarketData) -> None:
        self._market = market
        self._keys = [k for k in (_parse_key(key) for key in market.indicators) if k is not None]
        self._tables: dict[str, np.ndarray] = {}

    def _table(self, interval: str) -> np.ndarray:
        if interval not in self._tables:
            self._tables[interval] = _table(self._market.klines.get(interval, []))
        return self._tables[interval]

    def intervals(self) -> list[str]:
        found = set(self._market.klines) | {k.interval for k in self._keys if k.interval}
        return sorted(found, key=INTERVAL_MS.__getitem__)

    def _candidates(self, name: str, interval: str) -> list[_Key]:
        default = _DEFAULT_PERIOD[name]
        matching = [
            k for k in self._keys if k.name == name and k.interval in (interval, None)
        ]

        def rank(k: _Key) -> tuple[int, int, int, str]:
            period_rank = 0 if k.period == default else 1 if k.period is None else 2
            return (0 if k.interval == interval else 1, period_rank, k.period or 0, k.key)

        return sorted(matching, key=rank)

    def on(self, name: str, part: str, interval: str) -> tuple[float, str] | None:
        for key in self._candidates(name, interval):
            value = _value_from_request(key, self._market.indicators[key.key], part)
            if value is not None:
                return value, f"request:{key.key}"
        value = _compute(name, part, self._table(interval))
        if value is not None:
            return value, f"talib:{interval}"
        return None

    def anywhere(self, name: str, part: str, primary: str) -> tuple[float | None, str]:
        for interval in [primary, *(i for i in self.intervals() if i != primary)]:
            found = self.on(name, part, interval)
            if found is not None:
                return found
        return None, "missing"


def resolve_inputs(market: MarketData) -> RuleInputs:
    """Pick the primary interval and read or compute the rule's inputs.

    Raises:
        InsufficientMarketData: no RSI on any interval (neither in ``indicators`` nor
            computable from more than 14 klines), or no price (no kline on the primary
            interval and no ``ticker.lastPrice``).
        InvalidAnalysisRequest: an indicator the rule reads has a non-numeric value.
    """
    resolver = _Resolver(market)
    primary: str | None = None
    rsi: tuple[float, str] | None = None
    for interval in resolver.intervals():
        rsi = resolver.on("rsi", "value", interval)
        if rsi is not None:
            primary = interval
            break
    if primary is None or rsi is None:
        raise InsufficientMarketData(
            "no RSI available: send marketData.indicators.rsi_14_<interval> or more than "
            f"{RSI_PERIOD} klines of one interval"
        )
    klines = market.klines.get(primary, [])
    if klines:
        price, price_source = klines[-1].close, f"close:{primary}"
    elif market.ticker.last_price is not None:
        price, price_source = market.ticker.last_price, "ticker:lastPrice"
    else:
        raise InsufficientMarketData(
            f"no price: send klines for {primary} or marketData.ticker.lastPrice"
        )
    hist, hist_source = resolver.anywhere("macd", "histogram", primary)
    lower, lower_source = resolver.anywhere("bb", "lower", primary)
    atr, atr_source = resolver.anywhere("atr", "value", primary)
    return RuleInputs(
        interval=primary,
        price=price,
        previous_close=klines[-2].close if len(klines) >= 2 else None,
        rsi=rsi[0],
        macd_histogram=hist,
        bb_lower=lower,
        atr=atr,
        sources={
            "price": price_source,
            "rsi": rsi[1],
            "macdHistogram": hist_source,
            "bbLower": lower_source,
            "atr": atr_source,
        },
    )
