"""Errors raised by the indicator helpers.

One root, :class:`IndicatorError`; every concrete error is also a builtin
``ValueError`` or ``TypeError`` so callers that only know the builtins still
catch it. Too few candles is never an error: helpers return ``None`` then.
"""

from __future__ import annotations

__all__ = [
    "IndicatorError",
    "InvalidKlinesError",
    "InvalidParameterError",
    "ParameterTypeError",
]


class IndicatorError(Exception):
    """Root of every error raised by the ``indicators`` package."""


class InvalidParameterError(IndicatorError, ValueError):
    """A parameter has the right type but is out of range (e.g. ``period=0``,
    ``fast_period >= slow_period``, a negative multiplier)."""


class ParameterTypeError(IndicatorError, TypeError):
    """A parameter has the wrong type (e.g. ``period=14.0``, ``period=True``,
    ``std_dev="2"``)."""


class InvalidKlinesError(IndicatorError, ValueError):
    """``klines`` is not usable: not a sequence of candle rows or a store view,
    a row shorter than 6 columns, a value that is not a finite number, or a
    view whose ``column()`` returned something other than a 1-D float64 array
    of the common length."""
