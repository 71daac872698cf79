"""Check what a helper receives: ``klines`` into float64 columns, and parameters.

Klines become float64 column arrays, oldest candle first.

Three input forms are accepted:

* **Store views** (the fast path): any object with a method
  ``column(index: int) -> numpy.ndarray`` returning a 1-D float64 array of
  that kline column (see :class:`KlineView`). The arrays are used as they are,
  never copied or written to. Views should hold finite numbers; a NaN or
  infinity in a column an indicator reads makes that indicator's result
  ``None`` (the whole series ``None``), because TA-Lib would otherwise turn
  it into a plausible number (the RSI of closes ending in NaN is 0.0). The
  getters give ``None`` at that position.
* **Rows**: any sequence (list, tuple, ...) of candle rows in Binance column
  order ``open_time, open, high, low, close, volume, close_time,
  quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume[,
  ignore]`` (Binance Spot API, "Kline/Candlestick data"). Each row is a list
  or tuple of at least 6 values; numbers may be ``int``, ``float``,
  ``Decimal`` or ``str`` as the Binance REST API returns them. Rows are
  checked: a short row, a non-numeric or non-finite value raises
  :class:`InvalidKlinesError` naming the row.
* **2-D numpy arrays** of shape ``(n, >= 6)`` in the same column order.

Only the columns an indicator needs are converted, one C-level pass per
column (``numpy.fromiter``), so a helper over closes does not parse volumes.

Parameters: periods are plain ``int`` (``bool`` and ``float`` are refused,
numpy integers are accepted) within TA-Lib's documented range for the
function used (``TA_<FUNC>`` ``optInTimePeriod``: minimum 1 or 2, maximum
100000); multipliers are finite ``int``/``float`` values >= 0. Failures raise
:class:`ParameterTypeError` or :class:`InvalidParameterError` naming the
indicator, the parameter, the allowed range and the value given.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from ._errors import InvalidKlinesError, InvalidParameterError, ParameterTypeError

__all__ = [
    "CLOSE",
    "COLUMN_NAMES",
    "HIGH",
    "LOW",
    "MAX_PERIOD",
    "MIN_ROW_LENGTH",
    "OPEN",
    "OPEN_TIME",
    "VOLUME",
    "KlineView",
    "Klines",
    "all_finite",
    "check_multiplier",
    "check_period",
    "column",
    "columns",
]

OPEN_TIME = 0
OPEN = 1
HIGH = 2
LOW = 3
CLOSE = 4
VOLUME = 5
MIN_ROW_LENGTH = 6
COLUMN_NAMES = ("open_time", "open", "high", "low", "close", "volume")

_F64 = np.dtype(np.float64)
_ROW_TYPES = frozenset((list, tuple))
_NOT_ROWS = (str, bytes, bytearray, memoryview)
_GETTERS = tuple(operator.itemgetter(i) for i in range(MIN_ROW_LENGTH))


@runtime_checkable
class KlineView(Protocol):
    """What the fast path needs from a store view.

    ``column(index)`` returns the kline column ``index`` (Binance order, see
    :data:`OPEN` ... :data:`VOLUME`) as a 1-D C-contiguous float64 array,
    oldest candle first, every column of one view having the same length.
    The helpers never write into the returned arrays.
    """

    def column(self, index: int) -> np.ndarray: ...


Klines = Sequence[Sequence[Any]] | KlineView | np.ndarray
"""Anything a helper accepts as ``klines``."""


def column(klines: Klines, index: int) -> np.ndarray:
    """Return one kline column of ``klines`` as a 1-D float64 array.

    ``index`` is a Binance kline column index (``CLOSE`` = 4, ...). Raises
    :class:`InvalidKlinesError` if ``klines`` is unusable (see module doc).
    """
    kind = type(klines)
    if kind is list or kind is tuple:
        rows = cast(Sequence[Any], klines)
        return _row_column(rows, index, _checked_length(rows))
    getter = getattr(klines, "column", None)
    if getter is not None and kind is not np.ndarray and callable(getter):
        values = getter(index)
        if type(values) is np.ndarray and values.dtype is _F64 and values.ndim == 1:
            return values
        return _view_column(getter, index, None)
    return columns(klines, (index,))[0]


def columns(klines: Klines, indices: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Return the kline columns ``indices`` of ``klines``, one float64 array each.

    All arrays have the same length (the number of candles). Raises
    :class:`InvalidKlinesError` if ``klines`` is unusable (see module doc).
    """
    kind = type(klines)
    if kind is list or kind is tuple:
        rows = cast(Sequence[Any], klines)
        count = _checked_length(rows)
        return tuple(_row_column(rows, i, count) for i in indices)
    if isinstance(klines, np.ndarray):
        return _array_columns(klines, indices)
    getter = getattr(klines, "column", None)
    if getter is not None:
        if not callable(getter):
            raise InvalidKlinesError("klines.column is not callable")
        result = tuple(map(getter, indices))
        size = result[0].shape[0] if type(result[0]) is np.ndarray else None
        for values in result:
            if not (
                type(values) is np.ndarray
                and values.dtype is _F64
                and values.ndim == 1
                and values.shape[0] == size
            ):
                return _checked_view_columns(getter, indices)
        return result
    if isinstance(klines, Sequence) and not isinstance(klines, _NOT_ROWS):
        rows = list(klines)
        count = _checked_length(rows)
        return tuple(_row_column(rows, i, count) for i in indices)
    raise InvalidKlinesError(
        "klines must be a sequence of candle rows (lists/tuples in Binance column order) "
        f"or a store view with a column(index) method, got {type(klines).__name__}"
    )


_ONES = np.ones(4096)
_ONES.flags.writeable = False
_ONES_BY_SIZE: dict[int, np.ndarray] = {}  # read-only views of _ONES, at most 4097
_isfinite = math.isfinite


def all_finite(values: np.ndarray) -> bool:
    """True if every value of the 1-D float64 array ``values`` is finite.

    TA-Lib does not propagate NaN reliably (RSI of closes ending in NaN is
    0.0), so callers check before computing. A dot product with ones is a
    fast NaN/inf detector: any NaN or infinity makes the sum non-finite, and
    finite prices and volumes cannot overflow float64 when summed.
    """
    ones = _ONES_BY_SIZE.get(values.shape[0])
    if ones is None:
        size = values.shape[0]
        if size > _ONES.shape[0]:
            return bool(np.isfinite(values).all())
        ones = _ONES_BY_SIZE[size] = _ONES[:size]
    return _isfinite(values.dot(ones))


def _checked_view_columns(getter: Any, indices: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    result = [_view_column(getter, indices[0], None)]
    size = result[0].shape[0]
    for index in indices[1:]:
        result.append(_view_column(getter, index, size))
    return tuple(result)


def _view_column(getter: Any, index: int, size: int | None) -> np.ndarray:
    values = getter(index)
    if type(values) is not np.ndarray or values.ndim != 1 or values.dtype != _F64:
        raise InvalidKlinesError(
            f"klines.column({index}) must return a 1-D float64 numpy array, got {_describe(values)}"
        )
    if size is not None and values.shape[0] != size:
        raise InvalidKlinesError(
            f"klines.column({index}) has {values.shape[0]} values, other columns have {size}"
        )
    return values


def _checked_length(rows: Sequence[Any]) -> int:
    """Check every row is a list/tuple of >= 6 values; return the row count."""
    count = len(rows)
    if count == 0:
        return 0
    types = set(map(type, rows))
    if not types <= _ROW_TYPES:
        for position, row in enumerate(rows):
            if not _is_row(row):
                raise InvalidKlinesError(
                    f"kline row {position} must be a list or tuple of values in Binance "
                    f"column order, got {_describe(row)}"
                )
    if min(map(len, rows)) < MIN_ROW_LENGTH:
        for position, row in enumerate(rows):
            if len(row) < MIN_ROW_LENGTH:
                raise InvalidKlinesError(
                    f"kline row {position} has {len(row)} columns; need at least "
                    f"{MIN_ROW_LENGTH} ({', '.join(COLUMN_NAMES)})"
                )
    return count


def _is_row(row: Any) -> bool:
    if isinstance(row, np.ndarray):
        return row.ndim == 1
    return isinstance(row, Sequence) and not isinstance(row, _NOT_ROWS)


def _row_column(rows: Sequence[Any], index: int, count: int) -> np.ndarray:
    getter = _GETTERS[index] if index < MIN_ROW_LENGTH else operator.itemgetter(index)
    try:
        values = np.fromiter(map(getter, rows), dtype=_F64, count=count)
    except (TypeError, ValueError, IndexError, OverflowError):
        _raise_bad_value(rows, index)
        raise  # pragma: no cover - _raise_bad_value always raises
    if count and not np.isfinite(values).all():
        _raise_bad_value(rows, index)
    return values


def _raise_bad_value(rows: Sequence[Any], index: int) -> None:
    name = COLUMN_NAMES[index] if index < MIN_ROW_LENGTH else f"column {index}"
    for position, row in enumerate(rows):
        try:
            value = row[index]
        except (IndexError, KeyError, TypeError):
            raise InvalidKlinesError(
                f"kline row {position} has no {name} (index {index})"
            ) from None
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            number = math.nan
        if not math.isfinite(number):
            raise InvalidKlinesError(
                f"kline row {position} {name} must be a finite number, got {value!r}"
            ) from None
    raise InvalidKlinesError(f"kline {name} values are not all finite numbers")


def _array_columns(array: np.ndarray, indices: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    if array.size == 0 and array.ndim <= 2:
        return tuple(np.empty(0, dtype=_F64) for _ in indices)
    if array.ndim != 2 or array.shape[1] < MIN_ROW_LENGTH:
        raise InvalidKlinesError(
            f"a klines array must have shape (n, >= {MIN_ROW_LENGTH}), got {array.shape}"
        )
    result = []
    for index in indices:
        try:
            values = np.ascontiguousarray(array[:, index], dtype=_F64)
        except (TypeError, ValueError) as exc:
            raise InvalidKlinesError(
                f"klines array column {COLUMN_NAMES[index]} is not numeric: {exc}"
            ) from None
        if not np.isfinite(values).all():
            position = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InvalidKlinesError(
                f"kline row {position} {COLUMN_NAMES[index]} must be a finite number, "
                f"got {values[position]!r}"
            )
        result.append(values)
    return tuple(result)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray(dtype={value.dtype}, shape={value.shape})"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


# ------------------------------------------------------------ parameters

MAX_PERIOD = 100_000
"""TA-Lib's upper bound for every ``optInTimePeriod``."""


def check_period(value: Any, indicator: str, name: str, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``minimum..MAX_PERIOD``.

    Raises :class:`ParameterTypeError` for a non-integer (including ``bool``
    and ``float``) and :class:`InvalidParameterError` when out of range.
    """
    if type(value) is int and minimum <= value <= MAX_PERIOD:
        return value
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise ParameterTypeError(
            f"{indicator}: {name} must be an int (a number of candles), "
            f"got {type(value).__name__} {value!r}"
        )
    number = operator.index(value)
    if not minimum <= number <= MAX_PERIOD:
        raise InvalidParameterError(
            f"{indicator}: {name} must be an int in {minimum}..{MAX_PERIOD} candles, got {number}"
        )
    return number


def check_multiplier(value: Any, indicator: str, name: str) -> float:
    """Return ``value`` as a ``float`` if it is a finite number >= 0.

    Raises :class:`ParameterTypeError` for a non-number (including ``bool``
    and ``str``) and :class:`InvalidParameterError` for a negative, NaN or
    infinite value.
    """
    kind = type(value)
    if (kind is not float and kind is not int) and (
        isinstance(value, (bool, str, bytes)) or not hasattr(kind, "__float__")
    ):
        raise ParameterTypeError(
            f"{indicator}: {name} must be a number, got {kind.__name__} {value!r}"
        )
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ParameterTypeError(
            f"{indicator}: {name} must be a number, got {kind.__name__} {value!r}"
        ) from None
    if not (math.isfinite(number) and number >= 0.0):
        raise InvalidParameterError(
            f"{indicator}: {name} must be a finite number >= 0, got {value!r}"
        )
    return number
