"""``GET /api/v3/exchangeInfo`` from a real recorded response.

The response is read once from ``exchangeInfo.json`` (the real Binance response in
``shared/data/binance``; found next to the replay folder or up to three folders
above it, or given explicitly). Symbols with replay data get status ``TRADING``,
every other symbol ``BREAK``; ``serverTime`` is the replay clock. A replayed symbol
missing from the file gets a minimal synthesized entry (documented in README.md).
Symbol aliases (see :mod:`._aliases`) get a copy of their source symbol's entry under
their own name (``symbol``, ``baseAsset``), status ``TRADING``, listed after the others.

Self-trade prevention: every symbol that allows ``EXPIRE_MAKER`` is served with it as its
``defaultSelfTradePreventionMode``, Binance's spot default today (the recording predates
it and says ``NONE``); the matching engine applies it (:mod:`._matching`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ._aliases import split_symbol
from ._errors import BinanceAPIError, ReplayDataError

_FILE_NAME = "exchangeInfo.json"
_DEFAULT_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def find_exchange_info(replay_dir: Path) -> Path | None:
    """``exchangeInfo.json`` in ``replay_dir`` or one of its three parent folders."""
    folder = Path(replay_dir).resolve()
    for candidate in [folder, *list(folder.parents)[:3]]:
        path = candidate / _FILE_NAME
        if path.is_file():
            return path
    return None


def _synthesized(symbol: str) -> dict[str, object]:
    base, quote = split_symbol(symbol)
    return {
        "symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
        "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": False, "ocoAllowed": True, "otoAllowed": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.00000001",
             "maxPrice": "1000000.00000000", "tickSize": "0.00000001"},
            {"filterType": "LOT_SIZE", "minQty": "0.00000001",
             "maxQty": "9000000000.00000000", "stepSize": "0.00000001"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
        "permissions": ["SPOT"], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }  # fmt: skip


class ExchangeInfo:
    """The exchangeInfo document with statuses for the replayed symbols.

    Args:
        path: a recorded ``GET /api/v3/exchangeInfo`` response, or None to synthesize
            one from the replayed symbols alone.
        replayed: symbols with replay data (status TRADING).

    Raises:
        ReplayDataError: ``path`` is not a readable exchangeInfo document.
    """

    def __init__(self, path: Path | None, replayed: Iterable[str]) -> None:
        document: dict[str, object] = {}
        if path is not None:
            try:
                document = json.loads(Path(path).read_text())
                entries = list(document["symbols"])  # type: ignore[call-overload]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ReplayDataError(f"{path}: not an exchangeInfo document ({exc})") from exc
        else:
            entries = []
        self.path = path
        replayed = set(replayed)
        self._head = {
            "timezone": document.get("timezone", "UTC"),
            "rateLimits": document.get("rateLimits", _DEFAULT_RATE_LIMITS),
            "exchangeFilters": document.get("exchangeFilters", []),
        }
        self._symbols: dict[str, dict[str, object]] = {}
        for entry in entries:
            entry = copy.deepcopy(entry)
            entry["status"] = "TRADING" if entry["symbol"] in replayed else "BREAK"
            if "EXPIRE_MAKER" in entry.get("allowedSelfTradePreventionModes", ()):
                entry["defaultSelfTradePreventionMode"] = "EXPIRE_MAKER"
            self._symbols[entry["symbol"]] = entry
        for symbol in sorted(replayed - set(self._symbols)):
            self._symbols[symbol] = _synthesized(symbol)

    @property
    def names(self) -> frozenset[str]:
        """Every symbol of the document (any status), aliases included."""
        return frozenset(self._symbols)

    def add_aliases(self, aliases: Mapping[str, str]) -> None:
        """List each alias with a copy of its source's entry: ``symbol`` and ``baseAsset``
        renamed (``BTC2USDT``: base ``BTC2``), status ``TRADING``, filters unchanged.

        Raises:
            ValueError: an alias name is already listed, or its source is not.
        """
        for alias, source in aliases.items():
            if alias in self._symbols:
                raise ValueError(f"alias {alias} is already a listed symbol")
            if source not in self._symbols:
                raise ValueError(f"alias {alias}: source symbol {source} is not listed")
            entry = copy.deepcopy(self._symbols[source])
            entry["symbol"] = alias
            quote = str(entry.get("quoteAsset") or "")
            entry["baseAsset"] = alias[: -len(quote)] if quote and alias.endswith(quote) else split_symbol(alias)[0]
            entry["status"] = "TRADING"
            self._symbols[alias] = entry

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._symbols

    def entry(self, symbol: str) -> Mapping[str, object] | None:
        """The symbol's entry as served, or None."""
        return self._symbols.get(symbol)

    def status(self, symbol: str) -> str | None:
        entry = self._symbols.get(symbol)
        return None if entry is None else str(entry["status"])

    def response(
        self,
        server_time: int,
        symbols: Sequence[str] | None = None,
        status: str | None = None,
    ) -> dict[str, object]:
        """The response body; ``symbols`` selects entries (``symbol=``/``symbols=``),
        ``status`` keeps only that status (``symbolStatus=``).

        Raises:
            BinanceAPIError: -1121 for a symbol not in the document.
        """
        if symbols is None:
            selected = list(self._symbols.values())
        else:
            missing = [s for s in symbols if s not in self._symbols]
            if missing:
                raise BinanceAPIError(-1121, "Invalid symbol.")
            selected = [self._symbols[s] for s in dict.fromkeys(symbols)]
        if status is not None:
            selected = [e for e in selected if e["status"] == status]
        return {
            "timezone": self._head["timezone"],
            "serverTime": server_time,
            "rateLimits": self._head["rateLimits"],
            "exchangeFilters": self._head["exchangeFilters"],
            "symbols": selected,
        }
