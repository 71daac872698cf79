"""Runtime half of the filter policy: guard functions and the filter's builtins.

RestrictedPython rewrites filter code so that every attribute read, item read,
write, iteration, unpacking, ``print`` and ``**`` goes through a name in the
filter's globals (``_getattr_``, ``_getitem_``, ``_write_``, ...). This module
provides those names and the small set of builtins a filter gets.

* ``_getattr_``: RestrictedPython's ``safer_getattr`` (refuses names starting
  with ``_``, the ``inspect`` attributes such as ``gi_frame``/``f_back``/
  ``tb_frame``, ``str.format``/``format_map`` and ``string.Formatter``), raising
  a fresh ``AttributeError`` whose ``.obj`` is unset (CVE-2024-47532).
* ``_write_``: only ``dict`` and ``list`` objects the filter created itself
  can be written to (item/attribute assignment and deletion); inputs, helper
  results, helpers, ``math`` and builtins are read-only.
* ``_getitem_``/``_getiter_``: plain item access and ``iter``. Nothing a
  filter can reach yields items that attribute access could not reach (inputs
  are read-only sequences of numbers, helpers return floats and tuples), so
  the builtins that iterate in C (``sorted``, ``zip``, ``tuple``, ...; removed
  from RestrictedPython 9's ``safe_builtins`` because they bypass
  ``_getiter_``) are equivalent to wrappers calling ``_getiter_`` here.
* ``_pow_``/``pow``: integer powers whose result would exceed
  :data:`MAX_POW_BITS` raise ``OverflowError`` instead of computing for
  minutes in C.
* ``print``: collected into a per-batch buffer capped at a few KiB; never
  written to a file descriptor.
* ``__import__``: ``math`` only, as a read-only module proxy.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
)
from RestrictedPython.Guards import raise_ as _RAISE

from ._helpers import IndicatorError

__all__ = [
    "FORBIDDEN_BUILTINS",
    "MAX_POW_BITS",
    "MATH",
    "PrintBuffer",
    "SAFE_BUILTINS",
    "base_globals",
    "guarded_getattr",
    "guarded_pow",
    "guarded_write",
]

MAX_POW_BITS: Final = 1 << 17
_WRITABLE: Final = frozenset({dict, list})


def guarded_getattr(ob: Any, name: str) -> Any:
    """``ob.name`` under RestrictedPython's ``safer_getattr`` rules; missing -> fresh AttributeError."""
    if name in ("format", "format_map") and (isinstance(ob, str) or ob is str):
        raise AttributeError(f"str.{name}() is not available in filters; use an f-string")
    try:
        return safer_getattr(ob, name, _RAISE)
    except AttributeError as exc:
        message = str(exc)
    raise AttributeError(message)


def guarded_write(ob: Any) -> Any:
    """Allow writes only to the filter's own ``dict``/``list`` objects."""
    if type(ob) in _WRITABLE:
        return ob
    raise TypeError(f"cannot modify a {type(ob).__name__}: filter inputs, helpers and their results are read-only")


def guarded_pow(base: Any, exp: Any, mod: Any = None) -> Any:
    """``pow`` refusing integer results larger than :data:`MAX_POW_BITS` bits."""
    if mod is None and isinstance(base, int) and isinstance(exp, int) and exp > 0:
        bits = abs(base).bit_length() - 1
        if bits > 0 and bits * exp > MAX_POW_BITS:
            raise OverflowError(f"integer power too large for a filter (more than {MAX_POW_BITS} bits)")
    return pow(base, exp) if mod is None else pow(base, exp, mod)


_INPLACE: Final[Mapping[str, Callable[[Any, Any], Any]]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": guarded_pow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
}


def guarded_inplacevar(op: str, target: Any, value: Any) -> Any:
    """``target op= value`` for plain names (RestrictedPython's ``_inplacevar_``)."""
    try:
        fn = _INPLACE[op]
    except KeyError:
        raise TypeError(f"operator {op} is not allowed in filters") from None
    return fn(target, value)


def guarded_apply(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` (RestrictedPython's ``_apply_``)."""
    return fn(*args, **kwargs)


class _ReadOnlyModule:
    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("the math module is read-only in filters")

    def __delattr__(self, name: str) -> None:
        raise TypeError("the math module is read-only in filters")

    def __repr__(self) -> str:
        return "<module 'math' (read-only)>"


def _make_math() -> Any:
    members = {name: getattr(math, name) for name in dir(math) if not name.startswith("_")}
    cls = type("math", (_ReadOnlyModule,), {"__slots__": (), **members})
    return cls()


MATH: Final = _make_math()


def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    """``import math`` only (the compile policy already refuses other imports)."""
    if name == "math" and level == 0:
        return MATH
    raise ImportError(f"import of {name!r} is not allowed in filters (only math)")


class PrintBuffer:
    """``print`` output of one batch, capped at ``limit`` characters; the rest is dropped."""

    __slots__ = ("_parts", "_size", "dropped", "limit")

    def __init__(self, limit: int = 4096) -> None:
        self._parts: list[str] = []
        self._size = 0
        self.limit = limit
        self.dropped = False

    def write(self, text: str) -> None:
        room = self.limit - self._size
        if room <= 0:
            self.dropped = True
            return
        if len(text) > room:
            text = text[:room]
            self.dropped = True
        self._parts.append(text)
        self._size += len(text)

    def text(self) -> str:
        return "".join(self._parts)

    def factory(self) -> Callable[..., _Printer]:
        """The ``_print_`` global: RestrictedPython calls it once per function that prints."""
        printer = _Printer(self)
        return lambda _getattr_=None: printer


class _Printer:
    __slots__ = ("_buffer",)

    def __init__(self, buffer: PrintBuffer) -> None:
        self._buffer = buffer

    def _call_print(self, *objects: Any, sep: Any = " ", end: Any = "\n", file: Any = None, flush: Any = False) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not allowed in filters")
        if sep is None:
            sep = " "
        if end is None:
            end = "\n"
        if type(sep) is not str or type(end) is not str:
            raise TypeError("print() sep and end must be str")
        buffer = self._buffer
        if buffer._size >= buffer.limit:
            buffer.dropped = True
            return
        buffer.write(sep.join([str(o) for o in objects]) + end)

    def __call__(self) -> str:  # the ``printed`` name
        return self._buffer.text()


_ALLOWED_BUILTINS: Final = (
    "abs", "all", "any", "bool", "callable", "chr", "dict", "divmod", "enumerate", "filter", "float",
    "frozenset", "int", "isinstance", "iter", "len", "list", "map", "max", "min", "next", "ord", "range",
    "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "IndexError", "KeyError",
    "LookupError", "NameError", "OverflowError", "RuntimeError", "StopIteration", "TypeError",
    "ValueError", "ZeroDivisionError",
)  # fmt: skip

SAFE_BUILTINS: Final[dict[str, Any]] = {name: getattr(builtins, name) for name in _ALLOWED_BUILTINS}
SAFE_BUILTINS.update(
    {
        "None": None,
        "True": True,
        "False": False,
        "pow": guarded_pow,
        "IndicatorError": IndicatorError,
        "__import__": guarded_import,
    }
)

FORBIDDEN_BUILTINS: Final = frozenset(
    {
        "getattr", "setattr", "delattr", "hasattr", "type", "open", "globals", "locals", "vars", "dir",
        "compile", "exec", "eval", "input", "breakpoint", "help", "memoryview", "bytearray", "bytes",
        "object", "super", "classmethod", "staticmethod", "property", "id", "exit", "quit", "format",
        "issubclass", "__import__", "__build_class__", "__builtins__",
    }
)  # fmt: skip
"""Builtins a filter does not get; a NameError for one of them says so."""


def base_globals(helpers: Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
    """Globals template for one filter module (copy it per batch; add ``_print_``).

    ``helpers`` become plain globals (a filter may shadow them in its own module only).
    """
    g: dict[str, Any] = {
        "__builtins__": SAFE_BUILTINS,
        "__name__": "filter",
        "_getattr_": guarded_getattr,
        "_getitem_": operator.getitem,
        "_getiter_": iter,
        "_write_": guarded_write,
        "_inplacevar_": guarded_inplacevar,
        "_apply_": guarded_apply,
        "_pow_": guarded_pow,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    }
    g.update(helpers)
    return g
