"""The filter contract as text, written from the objects that enforce it.

:func:`filter_contract` is what an LLM that writes filters is told (trader generation):
the entry point the policy requires, the shape of ``klines`` and ``ticker`` (from
:data:`~sandbox._views.Candle`'s fields and the ticker keys of ``_market``), the builtins
a filter gets (``_guards.SAFE_BUILTINS``) and refused ones, the refusals of the compile
policy, and every helper of :data:`indicators.HELPERS` with its signature and the first
sentence of its docstring. Because it reads those objects, it cannot drift from what the
sandbox runs.
"""

from __future__ import annotations

import inspect
import re
from functools import cache

from indicators import HELPERS

from ._guards import FORBIDDEN_BUILTINS, SAFE_BUILTINS
from ._market import _TICKER_NAMES
from ._policy import ENTRY_POINT, MAX_SOURCE_BYTES
from ._views import Candle

__all__ = ["filter_contract", "helper_lines"]

_ANNOTATION = re.compile(r"'([^']*)'")


def _summary(doc: str | None) -> str:
    """The docstring's first paragraph on one line, cut at its first sentence end."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    match = re.search(r"\.(\s|$)", paragraph)
    return paragraph[: match.start() + 1] if match else paragraph


def helper_lines() -> list[str]:
    """One line per helper: ``name(params) -> returns: summary`` (``indicators.HELPERS`` order)."""
    lines = []
    for name, function in HELPERS.items():
        signature = _ANNOTATION.sub(r"\1", str(inspect.signature(function)))
        lines.append(f"- {name}{signature}: {_summary(function.__doc__)}")
    return lines


@cache
def filter_contract() -> str:
    """The contract a filter must meet, as Markdown (see the module doc)."""
    builtins = sorted(name for name in SAFE_BUILTINS if not name.startswith("_") and name[0].islower())
    exceptions = sorted(name for name in SAFE_BUILTINS if name[0].isupper() and name not in ("None", "True", "False"))
    fields = ", ".join(Candle._fields)
    ticker = ", ".join((*_TICKER_NAMES, "event_time"))
    return "\n".join([
        "## Filter contract",
        f"A filter is Python source (at most {MAX_SOURCE_BYTES} bytes) defining, at top level:",
        "",
        f"    def {ENTRY_POINT}(symbol, ticker, klines):",
        "        ...  # return True to signal this symbol, False otherwise",
        "",
        "- It is called once per symbol per check with `symbol` (str, e.g. \"BTCUSDT\").",
        "- `klines[interval]` is a read-only sequence of candles, oldest first, for each of the trader's",
        "  timeframes only (another interval raises KeyError). len(), indexing (-1 is the newest),",
        "  slicing and iteration work. The newest candle may still be forming.",
        f"- A candle is a named tuple in Binance column order: {fields}. Times are int ms since the",
        "  Unix epoch (UTC); prices (quote asset) and volumes (base asset) are floats; trades is an int.",
        f"- `ticker` is a read-only mapping with {ticker} (floats, None before the first",
        "  ticker; event_time an int).",
        "- The result must be exactly True or False (not 1, not None). An exception is an error for that symbol.",
        "- Helpers return None when there are not enough candles: check for None before comparing.",
        "",
        "## What the sandbox allows",
        f"- Builtins: {' '.join(builtins)}; True False None.",
        f"- Exceptions: {' '.join(exceptions)}.",
        f"- Not available: {' '.join(sorted(n for n in FORBIDDEN_BUILTINS if not n.startswith('_')))}.",
        "- The only import is `import math` / `from math import ...`.",
        "- Refused at compile time: classes, names or attributes starting with `_`, other imports,",
        "  exec/eval, async code, global state between calls (each check runs in fresh globals).",
        "- `x is y` only against None, True or False. A check has a few seconds in all.",
        "",
        "## Helpers (globals; `klines` is one interval's sequence, e.g. `klines[\"1h\"]`)",
        "Series are tuples of float or None, oldest first; Bands are (upper, middle, lower).",
        "They raise IndicatorError (a global) for bad arguments.",
        *helper_lines(),
    ])
