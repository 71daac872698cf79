"""Binance market data: REST (python-binance ``AsyncClient``), combined streams (aiohttp), the feed into the store.

See :class:`BinanceRest`, :class:`KlineStream` and :class:`MarketFeed`.
"""

from ._budget import RequestBudget, rate_limits
from ._errors import (
    InvalidRequest,
    InvalidSymbol,
    IpBanned,
    MalformedMessage,
    MarketDataError,
    MarketUnavailable,
    RateLimited,
)
from ._events import KlineEvent, MarketEvent, SymbolInfo, TickerEvent
from ._exchange_info import parse_exchange_symbols, request_weight_limit
from ._feed import BackfillReport, FeedStats, MarketFeed, Pair
from ._parse import klines_to_array, parse_stream_message
from ._rest import DEFAULT_REST_URL, BinanceRest
from ._stream import DEFAULT_WS_URL, KlineStream, StreamState, kline_stream_name, ticker_stream_name

__all__ = [
    "BinanceRest",
    "RequestBudget",
    "rate_limits",
    "KlineStream",
    "StreamState",
    "MarketFeed",
    "FeedStats",
    "BackfillReport",
    "Pair",
    "KlineEvent",
    "TickerEvent",
    "MarketEvent",
    "SymbolInfo",
    "parse_exchange_symbols",
    "request_weight_limit",
    "parse_stream_message",
    "klines_to_array",
    "kline_stream_name",
    "ticker_stream_name",
    "DEFAULT_REST_URL",
    "DEFAULT_WS_URL",
    "MarketDataError",
    "MarketUnavailable",
    "RateLimited",
    "IpBanned",
    "InvalidSymbol",
    "InvalidRequest",
    "MalformedMessage",
]
