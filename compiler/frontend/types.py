"""Type *text* for the generated module: parameter, output and return annotations.

Everything here returns source text valid in the generated module, where the
user's annotation names were copied along with the op (see ``extract``) and
``Any``, ``Iterator`` and ``AsyncIterator`` are importable under those names.
Where the user left a type out the answer is ``Any``: never a guess that
``mypy --strict`` could later contradict.
"""

from __future__ import annotations

import ast
import inspect
import typing
from collections.abc import Mapping

from operonx.ir import introspect
from operonx.ir.model import OpDef, OpKind

ANY = "Any"

# Bare generics that ``mypy --strict`` rejects (disallow_any_generics), with the
# arguments that make them explicit without changing what they accept.
GENERIC_ARGS: Mapping[str, str] = {
    "list": "Any", "set": "Any", "frozenset": "Any", "type": "Any",
    "dict": "Any, Any", "tuple": "Any, ...",
    "List": "Any", "Set": "Any", "FrozenSet": "Any", "Type": "Any", "Sequence": "Any",
    "Iterable": "Any", "Iterator": "Any", "AsyncIterable": "Any", "AsyncIterator": "Any",
    "Collection": "Any", "MutableSequence": "Any", "Awaitable": "Any", "Deque": "Any",
    "Dict": "Any, Any", "Mapping": "Any, Any", "MutableMapping": "Any, Any",
    "Tuple": "Any, ...", "Callable": "..., Any", "Generator": "Any, Any, Any",
    "AsyncGenerator": "Any, Any",
}
_MAPPINGS = {"dict", "Dict", "Mapping", "MutableMapping"}
_STREAMS = {"Iterator", "Iterable", "Generator", "AsyncIterator", "AsyncIterable",
            "AsyncGenerator"}
# Where each name a synthesized annotation may use comes from.
TYPING_SOURCES: Mapping[str, str] = {
    "Any": "typing", "Iterator": "collections.abc", "AsyncIterator": "collections.abc",
}


def explicit_generics(annotation: str) -> str:
    """``list`` -> ``list[Any]``, ``dict[str, list]`` -> ``dict[str, list[Any]]``."""
    try:
        tree = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return annotation
    return ast.unparse(_parametrize(tree))


def has_bare_generics(node: ast.expr) -> bool:
    """Whether :func:`explicit_generics` would change the annotation ``node``: the same
    walk as its ``_parametrize``, without building or printing anything."""
    if isinstance(node, ast.Name):
        return node.id in GENERIC_ARGS
    if isinstance(node, ast.Subscript):
        inner = node.slice
        return any(has_bare_generics(e) for e in inner.elts) if isinstance(
            inner, ast.Tuple) else has_bare_generics(inner)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return has_bare_generics(node.left) or has_bare_generics(node.right)
    return False


def _parametrize(node: ast.expr) -> ast.expr:
    if isinstance(node, ast.Name) and node.id in GENERIC_ARGS:
        args = ast.parse(f"x[{GENERIC_ARGS[node.id]}]", mode="eval").body
        assert isinstance(args, ast.Subscript)
        return ast.Subscript(value=node, slice=args.slice, ctx=ast.Load())
    if isinstance(node, ast.Subscript):
        inner = node.slice
        if isinstance(inner, ast.Tuple):
            inner = ast.Tuple(elts=[_parametrize(e) for e in inner.elts], ctx=ast.Load())
        else:
            inner = _parametrize(inner)
        return ast.Subscript(value=node.value, slice=inner, ctx=ast.Load())
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return ast.BinOp(left=_parametrize(node.left), op=node.op, right=_parametrize(node.right))
    return node


def param_type(op: OpDef, param: str, renames: Mapping[str, str] | None = None) -> str:
    """The annotation of ``param`` as the generated module spells it, or ``Any``."""
    for p in op.params:
        if p.name == param and p.annotation is not None:
            return _rename(explicit_generics(p.annotation), renames)
    return ANY


def _rename(text: str, renames: Mapping[str, str] | None) -> str:
    if not renames:
        return text
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in renames:
            node.id = renames[node.id]
    return ast.unparse(tree)


def return_annotation(op: OpDef, renames: Mapping[str, str] | None = None) -> str:
    """The copied function's return annotation: the user's, or one synthesized for its kind.

    A synthesized annotation states only what the function's source proves (see
    :func:`_plain_return` and :func:`_stream_return`); where it proves nothing the
    answer is ``Any``, which ``mypy --strict`` accepts for any body.
    """
    if op.return_annotation is not None:
        return _rename(explicit_generics(op.return_annotation), renames)
    tree = introspect.function_ast(op.fn)
    if op.kind.is_generator:
        return _stream_return(tree, is_async=op.kind is OpKind.ASYNCGEN)
    return _plain_return(tree)


def _plain_return(tree: ast.FunctionDef | ast.AsyncFunctionDef | None) -> str:
    """``None`` for a function that returns nothing; a dict type when every returned
    value is a dict literal with constant string keys and control cannot fall off
    the end (``| None`` when some ``return`` gives None); else ``Any``."""
    if tree is None:
        return ANY
    values = [r.value for r in own_nodes(tree, ast.Return) if isinstance(r, ast.Return)]
    returns_value = [v for v in values if v is not None and not _is_none(v)]
    if not returns_value:
        return "None"
    if not all(_is_str_keyed_dict(v) for v in returns_value):
        return ANY  # a list, a call, a spread, a computed key: nothing to state
    if not introspect.always_exits(tree.body):
        # It may fall off its end, which mypy reports for any return type but None and
        # Any ("Missing return statement"): there is no dict type to state.
        return ANY
    return "dict[str, Any] | None" if len(returns_value) < len(values) else "dict[str, Any]"


def _stream_return(tree: ast.FunctionDef | ast.AsyncFunctionDef | None, is_async: bool) -> str:
    """``Iterator[dict[str, Any]]`` (or ``AsyncIterator``) when every ``yield`` is a
    statement yielding a dict literal with constant string keys and no ``return``
    carries a value; else ``Any``.

    ``x = yield ...`` (send) or ``return value`` need ``Generator``'s other
    parameters, and a yielded non-dict contradicts ``dict``: ``Any`` states neither.
    """
    if tree is None:
        return ANY
    own = own_nodes(tree, ast.AST)
    yields = [n for n in own if isinstance(n, (ast.Yield, ast.YieldFrom))]
    statements = {id(n.value) for n in own if isinstance(n, ast.Expr)}
    plain = all(isinstance(y, ast.Yield) and id(y) in statements
                and y.value is not None and _is_str_keyed_dict(y.value) for y in yields)
    returns_value = any(isinstance(n, ast.Return) and not _is_none(n.value) for n in own)
    if not plain or returns_value:
        return ANY
    return "AsyncIterator[dict[str, Any]]" if is_async else "Iterator[dict[str, Any]]"


def _is_str_keyed_dict(value: ast.expr | None) -> bool:
    return isinstance(value, ast.Dict) and all(
        isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys)


def _is_none(value: ast.expr | None) -> bool:
    return value is None or (isinstance(value, ast.Constant) and value.value is None)


def own_nodes(tree: ast.AST, kind: type[ast.AST]) -> list[ast.AST]:
    """Nodes of ``kind`` in a function's own body, not in nested functions or classes."""
    found: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, kind):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def needed_imports(annotation: str) -> tuple[str, ...]:
    """The import lines a synthesized annotation text needs, e.g. ``from typing import Any``."""
    try:
        tree = ast.parse(annotation, mode="eval")
    except SyntaxError:
        return ()
    used = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} & set(TYPING_SOURCES))
    return tuple(f"from {TYPING_SOURCES[name]} import {name}" for name in used)


# ----------------------------------------------------------------------------- outputs


def output_types(op: OpDef, renames: Mapping[str, str] | None = None) -> dict[str, str]:
    """The type of each output key: from the return annotation, else the dict literals."""
    keys = op.outputs or ()
    declared = _declared_output_types(op)
    inferred = _inferred_output_types(op)
    types: dict[str, str] = {}
    for key in keys:
        text = declared.get(key) if key in declared else inferred.get(key, ANY)
        types[key] = _rename(explicit_generics(text or ANY), renames)
    return types


def _declared_output_types(op: OpDef) -> dict[str, str]:
    """Per-key types the return annotation states (``dict[str, T]``, a TypedDict, ...)."""
    if op.return_annotation is None:
        return {}
    try:
        tree = ast.parse(op.return_annotation, mode="eval").body
    except SyntaxError:
        return {}
    item = _stream_item(tree) if op.kind.is_generator else tree
    if item is None:
        return {}
    tree = item
    value_type = _mapping_value_type(tree)
    if value_type is not None:
        return {k: value_type for k in op.outputs or ()}
    if isinstance(tree, ast.Name):
        return _typeddict_fields(op, tree.id)
    return {}


def _stream_item(tree: ast.expr) -> ast.expr | None:
    """``Iterator[X]`` / ``Generator[X, ...]`` / ``AsyncIterator[X]`` -> ``X``."""
    if not isinstance(tree, ast.Subscript) or _base_name(tree.value) not in _STREAMS:
        return None
    inner = tree.slice
    return inner.elts[0] if isinstance(inner, ast.Tuple) and inner.elts else inner


def _mapping_value_type(tree: ast.expr) -> str | None:
    if not isinstance(tree, ast.Subscript) or _base_name(tree.value) not in _MAPPINGS:
        return None
    inner = tree.slice
    if isinstance(inner, ast.Tuple) and len(inner.elts) == 2:
        return ast.unparse(inner.elts[1])
    return None


def _base_name(node: ast.expr) -> str:
    """``typing.Mapping`` -> ``Mapping``; ``dict`` -> ``dict``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _typeddict_fields(op: OpDef, name: str) -> dict[str, str]:
    """Field annotations of a TypedDict the op's module defines, as written in its source."""
    cls = getattr(op.fn, "__globals__", {}).get(name)
    if not (isinstance(cls, type) and typing.is_typeddict(cls)):
        return {}
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError, SyntaxError):
        return {}
    fields: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            fields[node.target.id] = ast.unparse(node.annotation)
    return fields


def _inferred_output_types(op: OpDef) -> dict[str, str]:
    """Types of the values in the returned (or yielded) dict literals, where obvious."""
    tree = introspect.function_ast(op.fn)
    if tree is None:
        return {}
    params = {p.name: explicit_generics(p.annotation) for p in op.params if p.annotation}
    kind: type[ast.AST] = ast.Yield if op.kind.is_generator else ast.Return
    if own_nodes(tree, ast.YieldFrom):
        return {}  # the sub-generator's dicts are not in this source
    found: dict[str, set[str]] = {}
    for node in own_nodes(tree, kind):
        value = getattr(node, "value", None)
        if _is_none(value):
            continue
        if not _is_str_keyed_dict(value):
            return {}  # a spread, a call, a variable: any key may come with any type
        assert isinstance(value, ast.Dict)
        for key, item in zip(value.keys, value.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                found.setdefault(key.value, set()).add(_infer(item, params) or ANY)
    return {k: next(iter(v)) if len(v) == 1 else ANY for k, v in found.items()}


_LITERAL_TYPES = (bool, int, float, str)  # bool first: it is an int too
_NUMERIC_OPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)


def _infer(node: ast.expr, params: Mapping[str, str]) -> str | None:
    if isinstance(node, ast.Constant):
        for literal in _LITERAL_TYPES:
            if isinstance(node.value, literal):
                return literal.__name__
        return "None" if node.value is None else None
    if isinstance(node, ast.Name):
        return params.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, _NUMERIC_OPS):
        left, right = _infer(node.left, params), _infer(node.right, params)
        if left == right and left in ("int", "float"):
            return left
        if {left, right} == {"int", "float"}:
            return "float"
        if isinstance(node.op, ast.Add) and left == right == "str":
            return "str"
    return None
