"""One description per indicator, shared by the helpers and any caching layer.

An :class:`IndicatorSpec` says which kline columns an indicator reads, how
its parameters are validated (``bind``, same signature and defaults as the
helper minus ``klines``), which array function computes it, how many
candles it needs, and how its arrays become the helper's result. The public
``get_*`` helpers are thin wrappers over :func:`latest_of` /
:func:`series_of`; a caller that shares work across traders can do the same
steps itself and compute once per (symbol, interval, indicator, params)::

    spec = INDICATORS["rsi"]
    params = spec.bind(*args, **kwargs)          # raises IndicatorError
    key = (symbol, interval, spec.name, params)
    arrays = cache.get(key) or spec.compute_arrays(
        [view.column(i) for i in spec.columns], params)   # finite columns only
    value = spec.latest(arrays)                  # or spec.series(arrays)

Presentation of results, the one rule for every helper: a value that does
not exist (warm-up, too few candles, or undefined such as a division by zero
volume) is ``None``, never NaN or infinity, and never an exception. Results
are built-in ``float``, ``tuple`` and ``None`` only (no numpy scalars or
arrays escape).

* latest, one output: ``float`` or ``None``.
* latest, several outputs: a ``tuple`` of floats, or ``None`` (not a tuple of
  ``None``) unless every component exists for the latest candle.
* series, one output: a ``tuple`` of ``float | None`` aligned with the input
  candles (same length, oldest first).
* series, several outputs: a ``tuple`` of such tuples, one per output. At each
  position either every component is a float or every one is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._input import Klines, all_finite, column, columns

__all__ = [
    "IndicatorSpec",
    "latest",
    "latest_of",
    "latest_tuple",
    "series",
    "series_of",
    "series_tuple",
]


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """How one indicator is computed and presented.

    Attributes:
        name: indicator key, e.g. ``"rsi"`` (also the ``compute`` function name).
        columns: kline column indices read, in the order ``compute`` takes them.
        compute: array function ``compute(*column_arrays, *params)`` returning
            one array, or a tuple of arrays when ``outputs`` has several names.
        bind: validates the helper's arguments (after ``klines``) and returns
            them as a tuple of plain ints/floats; raises ``IndicatorError``.
        warmup: ``warmup(*params)`` -> fewest candles for a latest value.
        outputs: output names, e.g. ``("macd", "signal", "histogram")``.
        source: the TA-Lib function or the formula's source, for docs/payloads.
        latest_helper: name of the helper returning the latest value.
        series_helper: name of the helper returning the series, if any.
    """

    name: str
    columns: tuple[int, ...]
    compute: Callable[..., Any]
    bind: Callable[..., tuple[Any, ...]]
    warmup: Callable[..., int]
    outputs: tuple[str, ...]
    source: str
    latest_helper: str
    series_helper: str | None

    def compute_arrays(
        self, column_arrays: Sequence[np.ndarray], params: tuple[Any, ...]
    ) -> tuple[np.ndarray, ...]:
        """Run ``compute`` on column arrays (ordered as ``columns``) and bound
        ``params``; always return a tuple of arrays, one per output."""
        result = self.compute(*column_arrays, *params)
        return (result,) if len(self.outputs) == 1 else tuple(result)

    def latest(self, arrays: Sequence[np.ndarray]) -> float | tuple[float, ...] | None:
        """Latest value from ``compute_arrays`` output: a float (one output), a
        tuple of floats (several), or ``None`` (see the package rule)."""
        return latest(arrays[0]) if len(arrays) == 1 else latest_tuple(arrays)

    def series(self, arrays: Sequence[np.ndarray]) -> tuple[Any, ...]:
        """Series from ``compute_arrays`` output: a tuple of ``float | None``
        (one output) or a tuple of such tuples (several)."""
        return series(arrays[0]) if len(arrays) == 1 else series_tuple(arrays)


def latest_of(spec: IndicatorSpec, klines: Klines, params: tuple[Any, ...]) -> Any:
    """Compute ``spec`` over ``klines`` with bound ``params``; return the latest
    value (``None`` if a column holds a non-finite value)."""
    indices = spec.columns
    if len(indices) == 1:
        values = column(klines, indices[0])
        if not all_finite(values):
            return None
        result = spec.compute(values, *params)
    else:
        arrays = columns(klines, indices)
        for values in arrays:
            if not all_finite(values):
                return None
        result = spec.compute(*arrays, *params)
    if len(spec.outputs) == 1:
        return latest(result)
    return latest_tuple(result)


def series_of(spec: IndicatorSpec, klines: Klines, params: tuple[Any, ...]) -> Any:
    """Compute ``spec`` over ``klines`` with bound ``params``; return the series
    (all ``None`` if a column holds a non-finite value)."""
    arrays = columns(klines, spec.columns)
    for values in arrays:
        if not all_finite(values):
            return _all_none(len(spec.outputs), values.shape[0])
    result = spec.compute(*arrays, *params)
    if len(spec.outputs) == 1:
        return series(result)
    return series_tuple(result)


def _all_none(outputs: int, size: int) -> Any:
    empty = (None,) * size
    return empty if outputs == 1 else (empty,) * outputs


# ------------------------------------------------------------ presentation

_isfinite = math.isfinite


def latest(values: np.ndarray) -> float | None:
    """Return the last value of ``values`` as a float, or ``None`` if it is
    missing (empty array) or not finite."""
    if values.shape[0] == 0:
        return None
    value = float(values[-1])
    return value if _isfinite(value) else None


def latest_tuple(outputs: Sequence[np.ndarray]) -> tuple[float, ...] | None:
    """Return the last value of every array in ``outputs`` as a tuple of
    floats, or ``None`` if any of them is missing or not finite."""
    if outputs[0].shape[0] == 0:
        return None
    result = tuple([float(values[-1]) for values in outputs])
    for value in result:
        if not _isfinite(value):
            return None
    return result


def series(values: np.ndarray) -> tuple[float | None, ...]:
    """Return ``values`` as a tuple of floats with ``None`` where a value is
    not finite."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return tuple(values.tolist())
    return _with_none(values, bad)


def series_tuple(outputs: Sequence[np.ndarray]) -> tuple[tuple[float | None, ...], ...]:
    """Return one tuple per array in ``outputs`` (see :func:`series`), with
    ``None`` at every position where any output is not finite."""
    bad = ~np.isfinite(outputs[0])
    for values in outputs[1:]:
        bad |= ~np.isfinite(values)
    if not bad.any():
        return tuple(tuple(values.tolist()) for values in outputs)
    return tuple(_with_none(values, bad) for values in outputs)


def _with_none(values: np.ndarray, bad: np.ndarray) -> tuple[float | None, ...]:
    items: list[float | None] = values.tolist()
    for position in np.flatnonzero(bad).tolist():
        items[position] = None
    return tuple(items)
