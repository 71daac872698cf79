"""Symbol aliases: extra symbols that replay a real symbol's candles under another name.

For load tests that need more symbols than the data holds: a power-tier machine
watches every TRADING USDT pair (about 400), the shared data has 94. An alias is
**not real market data**: it is a copy of its source symbol's klines and tickers
with another name.

Naming (deterministic): for round k = 2, 3, ... and, within a round, for every
replayed symbol in the simulator's order (sorted by default), the alias is the base
asset followed by k, then the quote asset: ``BTCUSDT`` -> ``BTC2USDT``, ``BTC3USDT``...
(the quote asset is recognised from a fixed list of quote assets, see
:func:`split_symbol`; a symbol without one gets k appended). A name already taken
(by a replayed symbol or any symbol of the exchangeInfo document) is skipped. Rounds
continue until the requested total is reached.

Memory: an alias shares its source's data. The history caches are keyed by the
source symbol, so an alias costs a name and its exchangeInfo entry, never another
copy of the candles.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

#: Quote assets recognised at the end of a symbol, tried in this order.
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "DAI")
#: Binance's symbol grammar for REST parameters (binance-spot-api-docs, rest-api.md).
_SYMBOL = re.compile(r"^[A-Z0-9\-_.]{1,20}$")


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base asset, quote asset) of ``symbol``: ``"BTCUSDT"`` -> ``("BTC", "USDT")``.

    The quote is the first of :data:`QUOTE_ASSETS` the symbol ends with (and is longer
    than); ``(symbol, "")`` when none matches.
    """
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


def alias_symbols(sources: Sequence[str], total: int, taken: Collection[str] = ()) -> dict[str, str]:
    """``{alias: source}`` so that ``len(sources) + len(result) == total``.

    Args:
        sources: the replayed (real) symbols, upper case, in the order aliases are
            handed out within a round.
        total: symbols wanted in total, real ones included (>= ``len(sources)``).
        taken: names that must not be used (the exchange's listed symbols).

    Returns:
        Aliases in creation order (round by round), each mapped to its source symbol.

    Raises:
        ValueError: ``total`` is below the number of real symbols, there is no source,
            or a name would leave Binance's symbol grammar (more than 20 characters).
    """
    if total < len(sources):
        raise ValueError(f"alias_symbols={total} is below the {len(sources)} replayed symbols")
    if total > len(sources) and not sources:
        raise ValueError("alias_symbols needs at least one replayed symbol")
    blocked = set(taken) | set(sources)
    aliases: dict[str, str] = {}
    wanted = total - len(sources)
    k = 1
    while len(aliases) < wanted:
        k += 1
        for source in sources:
            if len(aliases) == wanted:
                break
            base, quote = split_symbol(source)
            name = f"{base}{k}{quote}"
            if name in blocked:
                continue
            if not _SYMBOL.match(name):
                raise ValueError(f"alias {name!r} of {source} is not a valid Binance symbol; ask for fewer aliases")
            aliases[name] = source
            blocked.add(name)
    return aliases
