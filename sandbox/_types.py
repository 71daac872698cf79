"""Plain value types shared by the pool (parent) and the workers.

Everything here crosses the process boundary as JSON (``to_dict``/``from_dict``);
nothing is ever pickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from ._segment import SegmentSpec

__all__ = ["BatchResult", "MarketSpec", "Outcome", "OUTCOMES", "INTERVAL_MAX_CHARS", "SYMBOL_MAX_CHARS"]

Outcome = Literal["ok", "timeout", "memory", "crashed", "rejected", "error"]
OUTCOMES: Final = frozenset({"ok", "timeout", "memory", "crashed", "rejected", "error"})
SYMBOL_MAX_CHARS: Final = 32
INTERVAL_MAX_CHARS: Final = 8


def _spec_to_dict(spec: SegmentSpec) -> dict[str, Any]:
    return {"name": spec.name, "slots": spec.slots, "limit": spec.limit}


def _spec_from_dict(raw: Any) -> SegmentSpec:
    if not isinstance(raw, Mapping):
        raise ValueError("segment spec must be an object")
    name, slots, limit = raw.get("name"), raw.get("slots"), raw.get("limit", 0)
    if not isinstance(name, str) or not name or len(name) > 255 or "/" in name.lstrip("/"):
        raise ValueError(f"bad segment name: {name!r}")
    if type(slots) is not int or slots < 1 or type(limit) is not int or limit < 0:
        raise ValueError(f"bad segment size: slots={slots!r} limit={limit!r}")
    return SegmentSpec(name=name, slots=slots, limit=limit)


@dataclass(frozen=True)
class MarketSpec:
    """Where the market data lives: one kline segment per interval and one ticker segment.

    Symbols are addressed by slot; a symbol's slot is the same in every segment.

    Attributes:
        klines: interval (Binance notation, e.g. ``"1m"``, ``"1h"``) -> its kline segment.
        tickers: the 24 h ticker segment.
    """

    klines: Mapping[str, SegmentSpec]
    tickers: SegmentSpec

    def __post_init__(self) -> None:
        object.__setattr__(self, "klines", MappingProxyType(dict(self.klines)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form sent to workers."""
        return {
            "klines": {interval: _spec_to_dict(spec) for interval, spec in self.klines.items()},
            "tickers": _spec_to_dict(self.tickers),
        }

    @classmethod
    def from_dict(cls, raw: Any) -> MarketSpec:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: malformed description.
        """
        if not isinstance(raw, Mapping) or not isinstance(raw.get("klines"), Mapping):
            raise ValueError("market spec must be an object with 'klines' and 'tickers'")
        klines = {}
        for interval, spec in raw["klines"].items():
            if not isinstance(interval, str) or not 0 < len(interval) <= INTERVAL_MAX_CHARS:
                raise ValueError(f"bad interval: {interval!r}")
            klines[interval] = _spec_from_dict(spec)
        return cls(klines=klines, tickers=_spec_from_dict(raw.get("tickers")))


@dataclass(frozen=True)
class BatchResult:
    """Outcome of one filter over one trader's symbols in one tick.

    Attributes:
        outcome: ``ok`` (the batch ran; per-symbol errors are in ``errors``),
            ``timeout`` (wall-clock or CPU limit, worker killed and replaced),
            ``memory`` (memory limit, worker replaced), ``crashed`` (worker died or
            broke the reply format, replaced), ``rejected`` (code refused by the
            policy), ``error`` (batch-level error: module code raised, an interval
            without market data, ...).
        matches: symbols whose ``check_signal`` returned ``True`` (a real bool).
        errors: symbol -> error text (at most 2 KiB each) for symbols whose filter
            raised or returned a non-bool.
        detail: reason when ``outcome != "ok"`` (empty otherwise).
        elapsed_ms: wall-clock time of the batch as seen by the parent, in ms.
        evaluated: number of symbols the filter was called for.
        printed: the filter's ``print`` output (at most 4 KiB), only when the
            batch was run with ``capture_print=True`` (the check CLI does).
    """

    outcome: Outcome
    matches: frozenset[str] = frozenset()
    errors: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    detail: str = ""
    elapsed_ms: float = 0.0
    evaluated: int = 0
    printed: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")
        object.__setattr__(self, "matches", frozenset(self.matches))
        if not isinstance(self.errors, MappingProxyType):
            object.__setattr__(self, "errors", MappingProxyType(dict(self.errors)))

    @property
    def hit_limit(self) -> bool:
        """True when the batch was stopped by a limit (timeout, memory) or crashed."""
        return self.outcome in ("timeout", "memory", "crashed")
