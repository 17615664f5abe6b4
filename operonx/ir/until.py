"""The ``until=`` expression language of ``GraphOp.loop``.

An ``until`` string is parsed with :mod:`ast` and checked node by node against
a small grammar: state-variable names, literals, arithmetic, comparisons,
``and``/``or``/``not``, subscripts, tuples/lists, and calls of ``len``, ``abs``,
``min``, ``max``. Nothing else is accepted, and the string is never handed to
``eval``/``exec``: the Engine evaluates the checked tree with :func:`evaluator`,
and the compiler prints it back as Python with :func:`to_python`.
"""

from __future__ import annotations

import ast
import copy
import difflib
import operator
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from operonx.ir.model import UntilExpr

ALLOWED_CALLS: dict[str, Callable[..., Any]] = {"len": len, "abs": abs, "min": min, "max": max}

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not,
}


class UntilSyntaxError(ValueError):
    """An ``until`` string outside the language; ``col`` is its 0-based column."""

    def __init__(self, message: str, col: int) -> None:
        self.col = col
        super().__init__(message)


def parse_until(source: str, state: Sequence[str]) -> UntilExpr:
    """Parse and check ``source``; raise :class:`UntilSyntaxError` naming the offending part."""
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as err:
        raise UntilSyntaxError(f"until={source!r} is not an expression: {err.msg}",
                               max((err.offset or 1) - 1, 0)) from None
    names: list[str] = []
    # The parser reads identifiers as NFKC (``ｆｕｌｌ`` is ``full``): map what it reads back
    # to the state key the user declared. Two keys that read the same are ambiguous (None).
    by_parsed: dict[str, str | None] = {}
    for key in state:
        parsed = unicodedata.normalize("NFKC", key)
        by_parsed[parsed] = None if parsed in by_parsed else key
    _check(tree, source, by_parsed, names)
    return UntilExpr(source=source, tree=tree, names=tuple(dict.fromkeys(names)))


def _check(node: ast.AST, source: str, state: Mapping[str, str | None],
           names: list[str]) -> None:
    def refuse(what: str, hint: str = "") -> UntilSyntaxError:
        part = ast.get_source_segment(source.strip(), node) or type(node).__name__
        return UntilSyntaxError(f"until={source!r}: {what} {part!r} is not allowed{hint}",
                                getattr(node, "col_offset", 0))

    match node:
        case ast.Name(id=name):
            if name not in state:
                known = sorted(k for k in state.values() if k is not None)
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else (
                    f"; the loop state is {known}" if known else "; the loop has no state")
                raise UntilSyntaxError(
                    f"until={source!r}: unknown state variable {name!r}{hint}", node.col_offset)
            key = state[name]
            if key is None:
                raise UntilSyntaxError(
                    f"until={source!r}: {name!r} could be several state variables whose names "
                    "Python reads as the same identifier; rename one", node.col_offset)
            node.id = key  # the declared key, which may differ from what the parser read
            names.append(key)
        case ast.Constant(value=value):
            if not isinstance(value, (int, float, str, bool, type(None))):
                raise refuse("the literal")
        case ast.BinOp(left=left, op=op, right=right):
            if type(op) not in _BINOPS:
                raise refuse("the operator in")
            _check(left, source, state, names)
            _check(right, source, state, names)
        case ast.UnaryOp(op=op, operand=operand):
            if type(op) not in _UNARY:
                raise refuse("the operator in")
            _check(operand, source, state, names)
        case ast.BoolOp(values=values):
            for value in values:
                _check(value, source, state, names)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            if any(type(op) not in _COMPARE for op in ops):
                raise refuse("the comparison")
            for value in (left, *comparators):
                _check(value, source, state, names)
        case ast.Subscript(value=value, slice=index):
            _check(value, source, state, names)
            _check(index, source, state, names)
        case ast.Slice(lower=lower, upper=upper, step=step):
            for part in (lower, upper, step):
                if part is not None:
                    _check(part, source, state, names)
        case ast.Tuple(elts=elts) | ast.List(elts=elts):
            for elt in elts:
                _check(elt, source, state, names)
        case ast.Call(func=ast.Name(id=fname), args=args, keywords=[]) if fname in ALLOWED_CALLS:
            for arg in args:
                if isinstance(arg, ast.Starred):
                    raise refuse("the starred argument")
                _check(arg, source, state, names)
        case ast.Call():
            raise refuse("the call", "; only len, abs, min and max may be called")
        case ast.Attribute():
            raise refuse("the attribute access")
        case _:
            raise refuse("the expression")


Evaluator = Callable[[Mapping[str, Any]], Any]


def evaluator(expr: UntilExpr) -> Evaluator:
    """Turn a checked expression into a closure over the loop state (no eval)."""
    return _compile(expr.tree)


def _compile(node: ast.AST) -> Evaluator:
    match node:
        case ast.Name(id=name):
            return lambda state: state[name]
        case ast.Constant(value=value):
            return lambda state: value
        case ast.BinOp(left=left, op=op, right=right):
            fn, lhs, rhs = _BINOPS[type(op)], _compile(left), _compile(right)
            return lambda state: fn(lhs(state), rhs(state))
        case ast.UnaryOp(op=op, operand=operand):
            ufn, arg = _UNARY[type(op)], _compile(operand)
            return lambda state: ufn(arg(state))
        case ast.BoolOp(op=ast.And(), values=values):
            parts = [_compile(v) for v in values]
            return lambda state: _all_of(parts, state)
        case ast.BoolOp(values=values):
            parts = [_compile(v) for v in values]
            return lambda state: _any_of(parts, state)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            first = _compile(left)
            chain = [(_COMPARE[type(op)], _compile(c))
                     for op, c in zip(ops, comparators, strict=True)]
            return lambda state: _compare_chain(first(state), chain, state)
        case ast.Subscript(value=value, slice=index):
            container, key = _compile(value), _compile(index)
            return lambda state: container(state)[key(state)]
        case ast.Slice(lower=lower, upper=upper, step=step):
            bounds = [None if p is None else _compile(p) for p in (lower, upper, step)]
            return lambda state: slice(*(None if b is None else b(state) for b in bounds))
        case ast.Tuple(elts=elts):
            items = [_compile(e) for e in elts]
            return lambda state: tuple(i(state) for i in items)
        case ast.List(elts=elts):  # a list literal is a list: ``xs == [1]`` must hold
            items = [_compile(e) for e in elts]
            return lambda state: [i(state) for i in items]
        case ast.Call(func=ast.Name(id=fname), args=args):
            cfn, cargs = ALLOWED_CALLS[fname], [_compile(a) for a in args]
            return lambda state: cfn(*(a(state) for a in cargs))
    raise AssertionError(f"unchecked until expression node {ast.dump(node)}")


def _all_of(parts: list[Evaluator], state: Mapping[str, Any]) -> Any:
    result: Any = True
    for part in parts:
        result = part(state)
        if not result:
            return result
    return result


def _any_of(parts: list[Evaluator], state: Mapping[str, Any]) -> Any:
    result: Any = False
    for part in parts:
        result = part(state)
        if result:
            return result
    return result


def _compare_chain(left: Any, chain: list[tuple[Callable[[Any, Any], Any], Evaluator]],
                   state: Mapping[str, Any]) -> Any:
    for fn, right_of in chain:
        right = right_of(state)
        if not fn(left, right):
            return False
        left = right
    return True


def to_ast(expr: UntilExpr, load: Callable[[str], ast.expr]) -> ast.expr:
    """The checked expression as a new tree, each state variable replaced by ``load(name)``.

    Only state variables are replaced: the callee of ``len(xs)`` is the builtin.
    """
    tree = copy.deepcopy(expr.tree)
    calls = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}

    class _Load(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.expr:
            return node if id(node) in calls else load(node.id)

    return _Load().visit(tree)  # type: ignore[no-any-return]


def to_python(expr: UntilExpr, rename: Callable[[str], str] = str) -> str:
    """The checked expression as Python source with state names renamed (for display)."""
    return ast.unparse(to_ast(expr, lambda name: ast.Name(id=rename(name), ctx=ast.Load())))
