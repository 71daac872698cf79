"""Runtime guards: attribute reads, writes, powers, print, import, builtins."""

from __future__ import annotations

import math
from types import MappingProxyType

import pytest

from sandbox._guards import (
    MATH,
    MAX_POW_BITS,
    SAFE_BUILTINS,
    PrintBuffer,
    guarded_getattr,
    guarded_import,
    guarded_inplacevar,
    guarded_pow,
    guarded_write,
)


@pytest.mark.parametrize("name", ["__class__", "_private", "gi_frame", "f_back", "tb_frame", "f_globals", "co_code"])
def test_getattr_refuses_private_and_inspect_names(name):
    with pytest.raises(AttributeError):
        guarded_getattr((x for x in ()), name)


@pytest.mark.parametrize("name", ["format", "format_map"])
def test_getattr_refuses_str_format(name):
    with pytest.raises(AttributeError, match="f-string"):
        guarded_getattr("{0.__class__}", name)
    with pytest.raises(AttributeError, match="f-string"):
        guarded_getattr(str, name)


def test_getattr_missing_attribute_error_carries_no_object():
    with pytest.raises(AttributeError) as info:
        guarded_getattr(MappingProxyType({}), "nope")
    assert info.value.obj is None and info.value.__context__ is None
    assert "nope" in str(info.value)


def test_getattr_allows_public_attributes():
    assert guarded_getattr("abc", "upper")() == "ABC"
    assert guarded_getattr(MATH, "pi") == math.pi


def test_write_only_to_own_dicts_and_lists():
    d, lst = {}, []
    assert guarded_write(d) is d and guarded_write(lst) is lst
    for ob in ((1,), MappingProxyType({}), MATH, len, "s", 1.0, frozenset()):
        with pytest.raises(TypeError, match="read-only"):
            guarded_write(ob)


def test_pow_limits_integer_results_only():
    assert guarded_pow(2, 100) == 2**100
    assert guarded_pow(2.0, 0.5) == 2**0.5
    assert guarded_pow(3, 4, 5) == 1
    assert guarded_pow(1, 10**12) == 1 and guarded_pow(-1, 10**12 + 1) == -1
    with pytest.raises(OverflowError):
        guarded_pow(2, MAX_POW_BITS + 2)
    with pytest.raises(OverflowError):
        guarded_inplacevar("**=", 10, 10**9)
    assert guarded_inplacevar("+=", [1], [2]) == [1, 2]
    with pytest.raises(TypeError):
        guarded_inplacevar("@=", 1, 2)


def test_print_is_capped_and_refuses_files():
    buffer = PrintBuffer(limit=50)
    printer = buffer.factory()(None)
    for i in range(100):
        printer._call_print("line", i)
    assert len(buffer.text()) == 50 and buffer.dropped
    assert printer() == buffer.text()
    with pytest.raises(TypeError):
        printer._call_print("x", file=object())


def test_only_math_can_be_imported_and_it_is_read_only():
    assert guarded_import("math") is MATH
    assert MATH.sqrt(9.0) == 3.0
    with pytest.raises(ImportError):
        guarded_import("os")
    with pytest.raises(ImportError):
        guarded_import("math", level=1)
    with pytest.raises(TypeError):
        MATH.sqrt = abs  # type: ignore[misc]
    assert MATH.sqrt is math.sqrt


def test_builtins_hold_nothing_dangerous():
    forbidden = {"getattr", "setattr", "type", "open", "globals", "locals", "vars", "compile", "exec", "eval",
                 "input", "breakpoint", "object", "super", "memoryview", "__build_class__", "id", "dir"}  # fmt: skip
    assert not forbidden & set(SAFE_BUILTINS)
    assert SAFE_BUILTINS["pow"] is guarded_pow
    assert {"abs", "min", "max", "sum", "len", "range", "enumerate", "zip", "sorted", "reversed", "round", "any",
            "all", "float", "int", "bool", "str", "list", "tuple", "dict", "set", "isinstance", "map",
            "filter"} <= set(SAFE_BUILTINS)  # fmt: skip
