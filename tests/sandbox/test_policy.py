"""Compile-time policy: what compiles, what is refused, and how the code is rewritten."""

from __future__ import annotations

import pytest

from sandbox import FilterRejected
from sandbox._guards import PrintBuffer, base_globals
from sandbox._policy import MAX_SOURCE_BYTES, compile_filter, filter_version


def run(source: str, *args):
    """Compile under the policy and call check_signal in-process with the real guards."""
    g = base_globals({})
    g["_print_"] = PrintBuffer().factory()
    exec(compile_filter(source).code, g)
    return g["check_signal"](*args)


ACCEPTED = {
    "comprehensions": """
def check_signal(s, t, k):
    xs = [i * i for i in range(5) if i]
    d = {i: i for i in xs}
    st = {i % 2 for i in xs}
    return sum(x for x in xs) == 30 and len(d) == 4 and st == {0, 1}
""",
    "nested_functions_lambda": """
def check_signal(s, t, k):
    def avg(v):
        return sum(v) / len(v)
    key = lambda p: -p[1]
    return avg([1, 2, 3]) == 2 and sorted([(1, 2), (2, 5)], key=key)[0] == (2, 5)
""",
    "math": """
import math
from math import sqrt as root
def check_signal(s, t, k):
    return math.isclose(root(16.0), 4.0) and math.floor(math.log(100, 10) + 0.5) == 2
""",
    "fstring_try_except": """
def check_signal(s, t, k):
    try:
        x = 1 / 0
    except ZeroDivisionError as exc:
        x = f"{s}:{0.5:.2f}:{exc!r}"
    finally:
        pass
    return x == "ab:0.50:ZeroDivisionError('division by zero')"
""",
    "unpacking_and_loops": """
def check_signal(s, t, k):
    a, (b, c) = 1, (2, 3)
    first, *rest = [4, 5, 6]
    total = 0
    for i, (x, y) in enumerate(zip([1, 2], [3, 4])):
        total += i * x + y
    pairs = [p + q for p, q in [(1, 2), (3, 4)]]
    return (a, b, c, first, rest, total, pairs) == (1, 2, 3, 4, [5, 6], 9, [3, 7])
""",
    "augmented_and_power": """
def check_signal(s, t, k):
    n = 2
    n **= 3
    n += 1
    n *= 2
    return n == 18 and 2 ** 10 == 1024 and pow(2, 3) == 8
""",
    "walrus_and_ternary": """
def check_signal(s, t, k):
    if (n := len(s)) > 1:
        return n == 2 if s else False
    return False
""",
    "own_containers_writable": """
def check_signal(s, t, k):
    d = {}
    d["x"] = 1
    lst = [0]
    lst[0] = 2
    del d["x"]
    return d == {} and lst == [2]
""",
    "print_and_printed": """
def check_signal(s, t, k):
    print("hello", s, sep="-")
    return printed == "hello-ab\\n"
""",
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_llm_style_code_compiles_and_runs(name):
    assert run(ACCEPTED[name], "ab", {}, {}) is True


REFUSED = {
    "class": ("class A:\n    pass\ndef check_signal(s, t, k):\n    return True\n", "class definitions"),
    "import_os": ("import os\ndef check_signal(s, t, k):\n    return True\n", 'import of "os"'),
    "import_alias_dunder": ("import math as _m\ndef check_signal(s, t, k):\n    return True\n", 'starts with "_"'),
    "from_math_dunder": (
        "from math import __loader__\ndef check_signal(s, t, k):\n    return True\n",
        'starts with "_"',
    ),
    "dunder_attr": ("def check_signal(s, t, k):\n    return s.__class__\n", "invalid attribute name"),
    "inspect_attr": ("def check_signal(s, t, k):\n    return k.gi_frame\n", "restricted name"),
    "underscore_name": ("def check_signal(s, t, k):\n    _x = 1\n    return True\n", 'starts with "_"'),
    "item_augassign": (
        "def check_signal(s, t, k):\n    d = {'a': 0}\n    d['a'] += 1\n    return True\n",
        "Augmented assignment",
    ),
    "attr_augassign": ("def check_signal(s, t, k):\n    k.x += 1\n    return True\n", "Augmented assignment"),
    "nonlocal": (
        "def check_signal(s, t, k):\n    x = 1\n    def f():\n        nonlocal x\n    return True\n",
        "Nonlocal",
    ),
    "async": ("async def check_signal(s, t, k):\n    return True\n", "no top-level function"),
    "syntax": ("def check_signal(s, t, k)\n    return True\n", "SyntaxError"),
    "no_entry_point": ("x = 1\n", "no top-level function check_signal"),
    "wrong_arity": ("def check_signal(s, t):\n    return True\n", "three positional arguments"),
    "required_kwonly": ("def check_signal(s, t, k, *, extra):\n    return True\n", "three positional arguments"),
    "nul": ("def check_signal(s, t, k):\n    return '\0'\n", "NUL"),
    "deep_nesting": ("def check_signal(s, t, k):\n    return " + "-" * 50_000 + "1\n", "too deeply nested"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(name):
    source, message = REFUSED[name]
    with pytest.raises(FilterRejected) as info:
        compile_filter(source)
    assert message in str(info.value)


def test_oversized_source_is_refused():
    source = "def check_signal(s, t, k):\n    return True\n" + "#" * MAX_SOURCE_BYTES
    with pytest.raises(FilterRejected, match="larger than"):
        compile_filter(source)


def test_error_lists_line_numbers_and_is_bounded():
    source = "def check_signal(s, t, k):\n" + "".join(f"    _v{i} = {i}\n" for i in range(20)) + "    return True\n"
    with pytest.raises(FilterRejected) as info:
        compile_filter(source)
    message = str(info.value)
    assert message.startswith("Line 2:")
    assert message.endswith("and 15 more")


def test_version_tracks_source():
    a = "def check_signal(s, t, k):\n    return True\n"
    assert compile_filter(a).version == filter_version(a)
    assert filter_version(a) != filter_version(a + "\n")


def test_huge_power_fails_fast_instead_of_computing():
    with pytest.raises(OverflowError, match="integer power too large"):
        run("def check_signal(s, t, k):\n    return 10 ** 10 ** 10 > 0\n", "a", {}, {})


def test_inputs_cannot_be_written_even_with_item_or_attribute_syntax():
    with pytest.raises(TypeError, match="read-only"):
        run("def check_signal(s, t, k):\n    t['x'] = 1\n", "a", (1, 2), {})
    with pytest.raises(TypeError, match="read-only"):
        run("def check_signal(s, t, k):\n    s.upper = 1\n", "a", {}, {})
