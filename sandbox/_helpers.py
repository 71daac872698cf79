"""Indicator helpers as filter globals, with the per-tick shared cache.

The helper set is ``indicators.HELPERS`` (name -> function). Each helper is
wrapped so that:

* a ``klines[interval]`` argument (:class:`~sandbox._views.Candles`) is
  unwrapped into its private column handle (numpy fast path: each column the
  helper reads is copied from shared memory then) — filter code itself never
  holds an array; the helper function itself computes the result, exactly as
  a direct call of ``indicators.<helper>`` on the same candles would;
* results are memoised on the candles' :class:`~sandbox._views.Snapshot`,
  i.e. per (tick, symbol, interval, closed_only) window, keyed by (helper,
  arguments and their types, window bounds). Every trader and filter evaluated
  in the same tick in this worker shares them ("Shared work across traders",
  issue 4). Helpers with an ``indicators.INDICATORS`` spec are also keyed by
  their bound parameters, so argument spellings share one computation
  (``get_rsi(k)``, ``get_rsi(k, 14)``, ``get_rsi(k, period=14)``), and a
  ``get_latest_*`` call is answered from its series twin's cached result;
  what is kept is decided by the tick's :class:`~sandbox._cache.TickCache`
  (small results always, series only when several traders ask for them);
* results are plain and immutable (float, int, str, bool, ``None``, tuples of
  these); lists and numpy values are converted, NaN becomes ``None``, so a
  cached value can be shared and no filter can change what another sees;
* errors reach the filter as a fresh ``IndicatorError`` (or the same
  ``IndicatorError`` subclass) carrying only a message: no foreign exception
  object, traceback or ``.obj`` attribute leaks into filter code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

import indicators

from ._cache import MEMO_MAX_ENTRIES, Big
from ._views import Candles, ColumnView, Snapshot, column_view

__all__ = ["IndicatorError", "MEMO_MAX_ENTRIES", "wrap_helpers", "sanitize"]

IndicatorError = indicators.IndicatorError
_MAX_DEPTH = 4
_PLAIN = frozenset({float, int, bool, str, type(None)})
_MISSING: Any = object()


class _Unsupported(Exception):
    pass


def sanitize(value: Any, depth: int = 0) -> Any:
    """Turn a helper result into an immutable plain value (see module doc).

    Raises:
        IndicatorError: a value of another type (the helper broke its contract).
    """
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind in _PLAIN:
        return value
    if depth >= _MAX_DEPTH:
        raise _Unsupported("nested too deeply")
    if kind is tuple or kind is list:
        # Fast path, one C-level pass: summing the non-None items onto 0.0 stays a
        # plain finite float only if they are all plain finite numbers (a str, tuple,
        # Decimal raises; a numpy scalar turns the sum into a numpy scalar; NaN/inf
        # or an overflow make it non-finite); anything else takes the slow path.
        try:
            total = sum(filter(None, value), 0.0)
        except TypeError:
            total = None
        if type(total) is float and math.isfinite(total):
            return value if kind is tuple else tuple(value)
        return tuple([sanitize(x, depth + 1) for x in value])
    if isinstance(value, np.ndarray):
        return sanitize(value.tolist(), depth)
    if isinstance(value, np.generic):
        return sanitize(value.item(), depth)
    if isinstance(value, float):
        return sanitize(float(value), depth)
    if isinstance(value, int):
        return int(value)
    raise _Unsupported(f"unsupported result type {kind.__name__}")


def _fresh_error(name: str, exc: BaseException) -> Exception:
    if isinstance(exc, IndicatorError):
        try:
            return type(exc)(str(exc))
        except Exception:  # pragma: no cover - exotic constructor
            return IndicatorError(str(exc))
    if isinstance(exc, _Unsupported):
        return IndicatorError(f"{name}: {exc}")
    return IndicatorError(f"{name}: {type(exc).__name__}: {exc}{_where(exc)}")


def _where(exc: BaseException) -> str:
    """`` [at module.py:line]`` of the innermost frame, to diagnose a helper bug."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f" [at {code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name}]"


def _keyable(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """True when every argument is a plain scalar (``_PLAIN``), so a cache key can hold it.

    Anything else (a generator, a function, a tuple or list the filter built)
    is computed without the cache: the cache outlives the batch, and a filter
    object kept in it would be freed, and its ``finally`` run, in another
    trader's batch.
    """
    for value in args:
        if type(value) not in _PLAIN:
            return False
    for value in kwargs.values():
        if type(value) not in _PLAIN:
            return False
    return True


def _specs_by_helper() -> dict[str, tuple[Any, bool]]:
    """helper name -> (IndicatorSpec, is_series) for helpers that have a spec."""
    out: dict[str, tuple[Any, bool]] = {}
    for spec in getattr(indicators, "INDICATORS", {}).values():
        out[spec.latest_helper] = (spec, False)
        if spec.series_helper:
            out[spec.series_helper] = (spec, True)
    return out


def _latest_from_series(series: tuple[Any, ...], outputs: int) -> Any:
    """The latest helper's value from its series twin's (same rule: ``indicators._spec``)."""
    if outputs == 1:
        return series[-1] if series else None
    if not series[0] or series[0][-1] is None:
        return None
    return tuple([values[-1] for values in series])


def _wrap(name: str, fn: Callable[..., Any], spec: Any, is_series: bool) -> Callable[..., Any]:
    outputs = len(spec.outputs) if spec is not None else 1

    def compute(snap: Snapshot, start: int, stop: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return sanitize(fn(ColumnView(snap, start, stop), *args, **kwargs))

    def shared(snap: Snapshot, start: int, stop: int, args: tuple[Any, ...], kwargs: dict[str, Any], key: Any) -> Any:
        """Find or compute by bound parameters (canonical key); ``key`` (as called) becomes an alias."""
        params = spec.bind(*args, **kwargs)
        memo = snap.memo
        ckey = (spec.name, is_series, params, start, stop)
        entry = memo.get(ckey, _MISSING)
        if entry is not _MISSING:
            snap.cache.keep(memo, key, entry, 0)
            if type(entry) is Big:
                snap.cache.hit(entry.rec)
                return entry.value
            return entry
        if not is_series:
            twin = memo.get((spec.name, True, params, start, stop), _MISSING)
            if twin is not _MISSING:
                value = _latest_from_series(twin.value if type(twin) is Big else twin, outputs)
                snap.cache.offer(memo, snap.kind, ckey, value, key)
                return value
        else:
            value = snap.cache.recall(snap, ckey)
            if value is not None:
                return value
        value = compute(snap, start, stop, args, kwargs)
        snap.cache.offer(memo, snap.kind, ckey, value, key, snap)
        return value

    def helper(*args: Any, **kwargs: Any) -> Any:
        try:
            if args and type(args[0]) is Candles:
                candles = args[0]
                snap, start, stop = candles._snap, candles._start, candles._stop
                rest = args[1:]
                if not _keyable(rest, kwargs):  # never keep a filter's object in the shared cache
                    return compute(snap, start, stop, rest, kwargs)
                key: Any = (name, start, stop, rest, tuple(map(type, rest)))
                if kwargs:
                    items = tuple(sorted(kwargs.items()))
                    key = (*key, items, tuple(type(v) for _, v in items))
                value = snap.memo.get(key, _MISSING)
                if value is not _MISSING:
                    if type(value) is Big:
                        rec = value.rec
                        if rec[0] != snap.cache.batch:
                            snap.cache.hit(rec)
                        return value.value
                    return value
                if spec is not None:
                    return shared(snap, start, stop, rest, kwargs, key)
                value = snap.cache.recall(snap, key)
                if value is None:
                    value = compute(snap, start, stop, rest, kwargs)
                    snap.cache.offer(snap.memo, snap.kind, key, value, None, snap)
                return value
            args = tuple(column_view(a) if type(a) is Candles else a for a in args)
            return sanitize(fn(*args, **kwargs))
        except MemoryError:
            raise
        except BaseException as exc:
            error = _fresh_error(name, exc)
        raise error

    helper.__name__ = helper.__qualname__ = name
    helper.__doc__ = fn.__doc__
    return helper


def wrap_helpers(helpers: Mapping[str, Callable[..., Any]] | None = None) -> dict[str, Callable[..., Any]]:
    """Filter globals for ``helpers`` (default ``indicators.HELPERS``), name -> wrapped helper.

    Names that are not identifiers or start with ``_`` are skipped.
    """
    source = indicators.HELPERS if helpers is None else helpers
    specs = _specs_by_helper()
    wrapped = {}
    for name, fn in source.items():
        if not name.isidentifier() or name.startswith("_") or not callable(fn):
            continue
        spec, is_series = specs.get(name, (None, False))
        if spec is not None and fn is not getattr(indicators, name, None):
            spec = None  # a custom mapping: call the function given, not the spec
        wrapped[name] = _wrap(name, fn, spec, is_series)
    return wrapped
