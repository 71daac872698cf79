"""Compile-time policy for filter code (RestrictedPython >= 9).

:func:`compile_filter` turns filter source into a code object or raises
:class:`~sandbox.FilterRejected` with a message for the user. It only parses and
compiles; it never executes anything, so the parent process may call it
(``SandboxPool.load``) and workers call it again once per filter version.

On top of RestrictedPython's ``RestrictingNodeTransformer`` (which refuses names
and attributes starting with ``_``, the ``inspect`` attributes such as
``gi_frame``/``f_back``/``tb_frame``, ``exec``/``eval`` calls, ``nonlocal``,
async code, ``try/except*``, star imports, and rewrites attribute, item, write,
iteration, unpacking and print operations into guard calls), this policy:

* refuses ``class`` definitions (no metaclass games, no dunder methods);
* refuses every import except ``import math`` / ``from math import ...``;
* rewrites ``a ** b`` into ``_pow_(a, b)`` so huge integer powers fail fast with
  an error instead of freezing the worker in C code;
* allows ``is`` / ``is not`` only against ``None``, ``True``, ``False`` (shared
  results' identity would tell a filter what other traders asked for);
* requires a top-level ``def check_signal(symbol, ticker, klines)``;
* caps the source at :data:`MAX_SOURCE_BYTES` and turns parser recursion or
  memory errors on pathological input into a rejection.

The runtime half of the policy (the guard functions) is in ``_guards``.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from types import CodeType
from typing import Final

from RestrictedPython import compile_restricted_exec
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

from ._errors import FilterRejected

__all__ = [
    "ALLOWED_IMPORTS",
    "ENTRY_POINT",
    "FILTER_FILENAME",
    "MAX_SOURCE_BYTES",
    "POLICY_VERSION",
    "CompiledFilter",
    "FilterPolicy",
    "compile_filter",
    "filter_version",
]

POLICY_VERSION: Final = "2"
MAX_SOURCE_BYTES: Final = 64 * 1024
FILTER_FILENAME: Final = "<filter>"
ENTRY_POINT: Final = "check_signal"
ALLOWED_IMPORTS: Final = frozenset({"math"})
_MAX_REPORTED_ERRORS: Final = 5


class FilterPolicy(RestrictingNodeTransformer):
    """RestrictedPython's transformer plus the filter-specific refusals above."""

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed in filters (use functions, dicts and tuples).")
        return node

    def visit_Import(self, node: ast.Import) -> ast.AST:
        for alias in node.names:
            if alias.name not in ALLOWED_IMPORTS:
                self.error(node, f'import of "{alias.name}" is not allowed (only "import math").')
        return super().visit_Import(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        if node.level or node.module not in ALLOWED_IMPORTS:
            self.error(node, f'import from "{node.module or "."}" is not allowed (only "from math import ...").')
        return super().visit_ImportFrom(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        """``name op= value`` stays native (``name **= value`` becomes ``name = _pow_(name, value)``).

        RestrictedPython routes it through ``_inplacevar_`` for applications that
        police in-place changes; here the only mutable objects a filter can reach
        are its own lists/dicts/sets, which it may change anyway, so the native
        operation is equivalent (and several times cheaper in loops). Augmented
        assignment of attributes and items stays refused by RestrictedPython.
        """
        if not isinstance(node.target, ast.Name):
            return super().visit_AugAssign(node)
        node = self.node_contents_visit(node)
        if isinstance(node.op, ast.Pow):
            call = ast.Call(
                func=ast.Name("_pow_", ast.Load()),
                args=[ast.Name(node.target.id, ast.Load()), node.value],
                keywords=[],
            )
            assign = ast.Assign(targets=[node.target], value=call)
            for new in (call, call.func, call.args[0], assign):
                copy_locations(new, node)
            return assign
        return node

    def guard_iter(self, node: ast.For | ast.comprehension) -> ast.AST:
        """``for target in _getiter_(iterable)``, with native unpacking of ``target``.

        RestrictedPython routes tuple targets through ``_iter_unpack_sequence_``
        (a generator calling ``_getiter_`` on every item). This policy's
        ``_getiter_`` is plain ``iter``, so native unpacking is the same operation
        without a Python-level generator per loop item.
        """
        node = self.node_contents_visit(node)
        new_iter = ast.Call(func=ast.Name("_getiter_", ast.Load()), args=[node.iter], keywords=[])
        copy_locations(new_iter, node.iter)
        copy_locations(new_iter.func, node.iter)
        node.iter = new_iter
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        """Native tuple unpacking (``a, b = x``), for the reason given in :meth:`guard_iter`.

        Targets are still checked: names starting with ``_`` are refused, item and
        attribute targets go through ``_write_``.
        """
        return self.node_contents_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        """Item reads stay native; writes and deletes go through ``_write_``.

        This policy's ``_getitem_`` is plain ``operator.getitem`` (no object a filter
        can reach hides items), so a native subscript is the same operation
        without a Python-level call per access.
        """
        if isinstance(node.ctx, ast.Load):
            return self.node_contents_visit(node)
        return super().visit_Subscript(node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        """``is`` / ``is not`` only against the constants ``None``, ``True``, ``False``, ``...``.

        Helper results are shared between the filters of a tick (the per-tick
        cache), so whether two results are the same *object* depends on what
        other traders asked for: comparing them with ``is`` would let a filter
        observe another trader's indicator requests. Identity against a
        singleton constant is a value test and stays allowed; ``id`` and
        ``hash`` are not builtins here, and ``==`` compares values.
        """
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            if isinstance(op, (ast.Is, ast.IsNot)) and not (
                _singleton(operands[i]) or _singleton(operands[i + 1])
            ):
                word = "is not" if isinstance(op, ast.IsNot) else "is"
                self.error(
                    node,
                    f'"{word}" may only compare with None, True or False in filters '
                    "(object identity of shared results is not observable; use ==).",
                )
        return self.node_contents_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.node_contents_visit(node)
        if isinstance(node.op, ast.Pow):
            call = ast.Call(func=ast.Name("_pow_", ast.Load()), args=[node.left, node.right], keywords=[])
            copy_locations(call, node)
            copy_locations(call.func, node)
            return call
        return node


def _singleton(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and (node.value is None or node.value is True or node.value is False
                                               or node.value is Ellipsis)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A filter that passed the policy.

    Attributes:
        code: module code object; executing it defines ``check_signal``.
        version: content hash of the source and the policy version.
    """

    code: CodeType
    version: str


def filter_version(source: str) -> str:
    """Stable id of one filter version: sha256 of policy version and source, 16 hex digits."""
    return hashlib.sha256(f"{POLICY_VERSION}\0{source}".encode()).hexdigest()[:16]


def _check_entry_point(tree: ast.Module) -> None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == ENTRY_POINT:
            args = node.args
            positional = len(args.posonlyargs) + len(args.args)
            required = positional - len(args.defaults)
            required_kwonly = any(default is None for default in args.kw_defaults)
            if (positional < 3 and args.vararg is None) or required > 3 or required_kwonly:
                raise FilterRejected(
                    f"line {node.lineno}: {ENTRY_POINT} must accept three positional arguments (symbol, ticker, klines)"
                )
            return
    raise FilterRejected(f"no top-level function {ENTRY_POINT}(symbol, ticker, klines) is defined")


def compile_filter(source: str) -> CompiledFilter:
    """Compile filter source under the policy.

    Args:
        source: Python source defining ``check_signal(symbol, ticker, klines) -> bool``.

    Returns:
        The compiled module and its version id.

    Raises:
        FilterRejected: syntax error, policy violation, missing ``check_signal``,
            or source larger than :data:`MAX_SOURCE_BYTES`; the message names the line.
    """
    if not isinstance(source, str):
        raise FilterRejected("filter code must be text")
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise FilterRejected(f"filter code is larger than {MAX_SOURCE_BYTES // 1024} KiB")
    if "\0" in source:
        raise FilterRejected("filter code contains a NUL character")
    try:
        tree = ast.parse(source, FILTER_FILENAME, "exec")
        _check_entry_point(tree)
        result = compile_restricted_exec(tree, FILTER_FILENAME, policy=FilterPolicy)
    except SyntaxError as exc:
        raise FilterRejected(f"line {exc.lineno}: SyntaxError: {exc.msg}") from None
    except (RecursionError, MemoryError, OverflowError, ValueError) as exc:
        raise FilterRejected(
            f"filter code is too deeply nested or too large to compile ({type(exc).__name__})"
        ) from None
    if result.errors or result.code is None:
        errors = list(result.errors) or ["does not compile"]
        more = len(errors) - _MAX_REPORTED_ERRORS
        text = "; ".join(errors[:_MAX_REPORTED_ERRORS])
        raise FilterRejected(text + (f"; and {more} more" if more > 0 else ""))
    return CompiledFilter(code=result.code, version=filter_version(source))
