"""REST ``/api/v3/exchangeInfo`` -> the tradable symbols and the request-weight limit.

Source: Binance Spot API docs, "Exchange information" and ``filters.md`` ->
"Symbol filters": ``PRICE_FILTER`` (minPrice, maxPrice, tickSize), ``LOT_SIZE``
(minQty, maxQty, stepSize), ``MARKET_LOT_SIZE`` (the same for MARKET orders),
``NOTIONAL`` (minNotional, maxNotional, applyMinToMarket, applyMaxToMarket,
avgPriceMins; it replaced ``MIN_NOTIONAL`` in 2023, whose ``minNotional`` has
the same meaning: both are handled), ``PERCENT_PRICE_BY_SIDE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog

from ._errors import MalformedMessage
from ._events import SymbolInfo

__all__ = ["parse_exchange_symbols", "request_weight_limit"]

_log = structlog.get_logger("machine.market")


def _filters(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    filters = entry.get("filters")
    if not isinstance(filters, list):
        raise MalformedMessage(f"{entry.get('symbol')}: 'filters' is not a list")
    return {f["filterType"]: f for f in filters if isinstance(f, Mapping) and "filterType" in f}


def _dec(filters: Mapping[str, Mapping[str, Any]], kind: str, field: str) -> Decimal:
    value = filters[kind][field]
    if not isinstance(value, str):
        raise MalformedMessage(f"{kind}.{field}: expected a decimal string, got {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise MalformedMessage(f"{kind}.{field}: not a decimal: {value!r}") from None


def _symbol_info(entry: Mapping[str, Any]) -> SymbolInfo:
    filters = _filters(entry)
    if "NOTIONAL" in filters:
        min_notional = _dec(filters, "NOTIONAL", "minNotional")
    elif "MIN_NOTIONAL" in filters:
        min_notional = _dec(filters, "MIN_NOTIONAL", "minNotional")
    else:
        min_notional = Decimal(0)
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    percent = None
    if "PERCENT_PRICE_BY_SIDE" in filters:
        percent = tuple(_dec(filters, "PERCENT_PRICE_BY_SIDE", f) for f in
                        ("bidMultiplierUp", "bidMultiplierDown", "askMultiplierUp", "askMultiplierDown"))  # fmt: skip
    return SymbolInfo(
        symbol=str(entry["symbol"]),
        base_asset=str(entry["baseAsset"]),
        quote_asset=str(entry["quoteAsset"]),
        tick_size=_dec(filters, "PRICE_FILTER", "tickSize"),
        step_size=_dec(filters, "LOT_SIZE", "stepSize"),
        min_qty=_dec(filters, "LOT_SIZE", "minQty"),
        min_notional=min_notional,
        min_price=_opt(filters, "PRICE_FILTER", "minPrice"),
        max_price=_opt(filters, "PRICE_FILTER", "maxPrice"),
        max_qty=_opt(filters, "LOT_SIZE", "maxQty"),
        market_min_qty=_opt(filters, "MARKET_LOT_SIZE", "minQty"),
        market_max_qty=_opt(filters, "MARKET_LOT_SIZE", "maxQty"),
        market_step_size=_opt(filters, "MARKET_LOT_SIZE", "stepSize"),
        max_notional=_opt(filters, "NOTIONAL", "maxNotional"),
        apply_min_to_market=bool(notional.get("applyMinToMarket", notional.get("applyToMarket", True))),
        apply_max_to_market=bool(notional.get("applyMaxToMarket", False)),
        avg_price_mins=int(notional.get("avgPriceMins", 5) or 5),
        percent_price_by_side=percent,  # type: ignore[arg-type]
    )


def _opt(filters: Mapping[str, Mapping[str, Any]], kind: str, field: str) -> Decimal:
    """A filter value, or 0 (no limit) when the filter or field is absent."""
    if kind not in filters or field not in filters[kind]:
        return Decimal(0)
    return _dec(filters, kind, field)


def parse_exchange_symbols(info: Mapping[str, Any], quote_asset: str = "USDT") -> list[SymbolInfo]:
    """Spot symbols with status ``TRADING`` quoted in ``quote_asset``, in the answer's order.

    A symbol is spot when ``isSpotTradingAllowed`` is true (assumed when the field
    is absent). A listed symbol whose filters cannot be read is skipped with a
    warning (the others are still usable).

    Raises:
        MalformedMessage: the answer has no ``symbols`` list.
    """
    symbols = info.get("symbols") if isinstance(info, Mapping) else None
    if not isinstance(symbols, list):
        raise MalformedMessage("exchangeInfo without a 'symbols' list")
    out: list[SymbolInfo] = []
    for entry in symbols:
        if not isinstance(entry, Mapping):
            raise MalformedMessage(f"exchangeInfo symbol is not an object: {entry!r}")
        if entry.get("status") != "TRADING" or entry.get("quoteAsset") != quote_asset:
            continue
        if not entry.get("isSpotTradingAllowed", True):
            continue
        try:
            out.append(_symbol_info(entry))
        except (KeyError, MalformedMessage) as exc:
            _log.warning("exchange_symbol_skipped", symbol=entry.get("symbol"), reason=str(exc))
    return out


def request_weight_limit(info: Mapping[str, Any]) -> int | None:
    """The ``REQUEST_WEIGHT`` limit per 1 minute from ``rateLimits``, or None when absent."""
    limits = info.get("rateLimits") if isinstance(info, Mapping) else None
    if not isinstance(limits, list):
        return None
    for item in limits:
        if (
            isinstance(item, Mapping)
            and item.get("rateLimitType") == "REQUEST_WEIGHT"
            and item.get("interval") == "MINUTE"
            and item.get("intervalNum") == 1
            and isinstance(item.get("limit"), int)
        ):
            return int(item["limit"])
    return None
