"""The registries: every indicator spec and every helper a filter may call.

``HELPERS`` maps each public helper's name to the function (what the sandbox
puts in a filter's globals); ``INDICATORS`` maps each indicator key (e.g.
``"rsi"``) to its :class:`IndicatorSpec` (what a caching layer and the
analysis payload use to compute once and present as latest or series).
Both are read-only mappings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from . import _momentum, _price_action, _trend, _volatility, _volume
from ._spec import IndicatorSpec

__all__ = ["HELPERS", "INDICATORS"]

_SPECS: tuple[IndicatorSpec, ...] = (
    _trend.SMA,
    _trend.EMA,
    _trend.WMA,
    _trend.VWAP,
    _momentum.RSI,
    _momentum.MACD,
    _momentum.STOCHASTIC,
    _momentum.CCI,
    _momentum.WILLIAMS_R,
    _momentum.ROC,
    _volatility.BOLLINGER_BANDS,
    _volatility.ATR,
    _volatility.KELTNER_CHANNELS,
    _volatility.DONCHIAN_CHANNELS,
    _volume.VOLUME_SUM,
    _volume.VOLUME_CHANGE,
    _volume.OBV,
    _volume.VOLUME_MA,
    _trend.ADX,
    _trend.AROON,
    _price_action.PRICE_CHANGE,
    _price_action.PRICE_CHANGE_PERCENT,
    _price_action.HIGHEST_HIGH,
    _price_action.LOWEST_LOW,
)

_GETTERS: tuple[Callable[..., Any], ...] = (
    _price_action.get_closes,
    _price_action.get_opens,
    _price_action.get_highs,
    _price_action.get_lows,
    _price_action.get_volumes,
)

_MODULES = (_trend, _momentum, _volatility, _volume, _price_action)


def _helper(name: str) -> Callable[..., Any]:
    for module in _MODULES:
        function = getattr(module, name, None)
        if function is not None:
            return function
    raise LookupError(f"no helper function named {name}")  # pragma: no cover


def _build_helpers() -> dict[str, Callable[..., Any]]:
    helpers: dict[str, Callable[..., Any]] = {}
    for spec in _SPECS:
        helpers[spec.latest_helper] = _helper(spec.latest_helper)
        if spec.series_helper is not None:
            helpers[spec.series_helper] = _helper(spec.series_helper)
    for getter in _GETTERS:
        helpers[getter.__name__] = getter
    return helpers


INDICATORS: Mapping[str, IndicatorSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
"""Indicator key -> :class:`IndicatorSpec`, in seed 002's helper order."""

HELPERS: Mapping[str, Callable[..., Any]] = MappingProxyType(_build_helpers())
"""Helper name -> function: every public helper a filter may call."""
