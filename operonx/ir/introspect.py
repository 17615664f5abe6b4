"""Read what an ``@op`` function is from its signature and source: kind, params, outputs."""

from __future__ import annotations

import ast
import inspect
import textwrap
import tokenize
from collections.abc import Callable
from typing import Any

from operonx.ir.model import OpKind, Param, SourceLoc


def op_kind(fn: Callable[..., Any]) -> OpKind:
    if inspect.isasyncgenfunction(fn):
        return OpKind.ASYNCGEN
    if inspect.isgeneratorfunction(fn):
        return OpKind.GEN
    if inspect.iscoroutinefunction(fn):
        return OpKind.ASYNC
    return OpKind.SYNC


def definition_loc(fn: Callable[..., Any]) -> SourceLoc:
    code = getattr(fn, "__code__", None)
    if code is None:
        return SourceLoc("<unknown>", 0)
    return SourceLoc(code.co_filename, code.co_firstlineno)


def function_ast(fn: Callable[..., Any]) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The function's own ``def`` node, or None when its source is not available."""
    try:
        source = textwrap.dedent(function_source(fn))
    except (OSError, TypeError):
        return None
    try:
        module = ast.parse(source)
    except SyntaxError:
        return None
    for node in module.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node
    return None


def function_source(fn: Callable[..., Any]) -> str:
    """``inspect.getsource(fn)``, in time proportional to the function, not to its file.

    ``inspect.getsourcelines`` copies every line from the ``def`` to the end of the file
    before tokenizing the block, so a graph file of N ops cost O(N) per op, O(N²) in all.
    This reads the same lines (``inspect.findsource``, cached per file by ``linecache``)
    and tokenizes from the ``def`` onwards only as far as the block goes.
    """
    fn = inspect.unwrap(fn)
    lines, start = inspect.findsource(fn)
    position = start

    def readline() -> str:
        nonlocal position
        if position >= len(lines):
            return ""
        position += 1
        return lines[position - 1]

    finder = inspect.BlockFinder()
    try:
        for token in tokenize.generate_tokens(readline):
            finder.tokeneater(*token)
    except (inspect.EndOfBlock, IndentationError):
        pass
    return "".join(lines[start:start + finder.last])


def params_of(fn: Callable[..., Any],
              tree: ast.FunctionDef | ast.AsyncFunctionDef | None) -> tuple[Param, ...]:
    """Parameters with annotation *source text* (as written, for the code generator)."""
    written: dict[str, str | None] = {}
    if tree is not None:
        args = tree.args
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs):
            written[a.arg] = ast.unparse(a.annotation) if a.annotation is not None else None
        if args.kwarg is not None:
            ann = args.kwarg.annotation
            written[args.kwarg.arg] = ast.unparse(ann) if ann is not None else None
    params = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        params.append(Param(
            name=p.name,
            annotation=written.get(p.name),
            has_default=p.default is not inspect.Parameter.empty,
            is_var_keyword=p.kind is inspect.Parameter.VAR_KEYWORD,
        ))
    return tuple(params)


def return_annotation(tree: ast.FunctionDef | ast.AsyncFunctionDef | None) -> str | None:
    if tree is None or tree.returns is None:
        return None
    return ast.unparse(tree.returns)


def static_outputs(tree: ast.FunctionDef | ast.AsyncFunctionDef | None,
                   kind: OpKind) -> tuple[str, ...] | None:
    """Output keys read from the dict literals the function returns (or yields).

    None when any returned/yielded value is not a dict literal with constant
    string keys: the op builds its dict dynamically and must declare
    ``outputs=[...]``. Returning ``None`` (or a bare ``return``) adds no key.
    """
    if tree is None:
        return None
    keys: list[str] = []
    for value in _result_expressions(tree, kind):
        if value is None or (isinstance(value, ast.Constant) and value.value is None):
            continue
        if not isinstance(value, ast.Dict):
            return None
        for key in value.keys:
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                return None  # **spread or computed key
            keys.append(key.value)
    return tuple(dict.fromkeys(keys))


def _result_expressions(tree: ast.FunctionDef | ast.AsyncFunctionDef,
                        kind: OpKind) -> list[ast.expr | None]:
    """The expressions the function returns (plain ops) or yields (generators).

    Nested functions, lambdas and classes are skipped: their returns are not ours.
    """
    wanted: tuple[type[ast.AST], ...] = (ast.Yield,) if kind.is_generator else (ast.Return,)
    found: list[ast.expr | None] = []
    stack: list[ast.AST] = list(reversed(tree.body))
    while stack:  # depth-first, in source order, so outputs keep the order they were written
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, wanted):
            found.append(node.value)  # type: ignore[attr-defined]
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return found


def proven_outputs(tree: ast.FunctionDef | ast.AsyncFunctionDef | None,
                   kind: OpKind, fn: Callable[..., Any] | None = None) -> tuple[str, ...] | None:
    """Keys the function's result dict is *guaranteed* to have, read from its source.

    A proof, not a guess: every ``return`` (or ``yield``) is a dict literal with
    constant string keys, and a plain function cannot fall off its end (which
    would return ``None``). The result is the keys every literal shares. The
    compiler drops the run-time outputs check for an op whose needed keys are
    proven; anything else (``yield from``, a bare ``return``, a ``**spread``)
    gives None and keeps the check.
    """
    if tree is None or not all(_is_op_decorator(d) for d in tree.decorator_list):
        return None  # another decorator may change what the call returns
    if fn is not None and (getattr(fn, "__wrapped__", None) is not None
                           or getattr(fn, "__name__", None) != tree.name):
        return None  # a wrapper (whatever it is called) runs, not the source read here
    if any(isinstance(node, ast.YieldFrom) for node in _own_nodes(tree)):
        return None
    values = _result_expressions(tree, kind)
    if not values:
        return None
    if not kind.is_generator and not always_exits(tree.body):
        return None
    shared: set[str] | None = None
    for value in values:
        if not isinstance(value, ast.Dict) or any(
                not (isinstance(k, ast.Constant) and isinstance(k.value, str))
                for k in value.keys):
            return None
        keys = {k.value for k in value.keys
                if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        shared = keys if shared is None else shared & keys
    return tuple(sorted(shared or ()))


def _is_op_decorator(decorator: ast.expr) -> bool:
    """``@op``, ``@op(...)``, ``@x.op`` or ``@x.op(...)``: the decorator that adds nothing."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return ((isinstance(target, ast.Name) and target.id == "op")
            or (isinstance(target, ast.Attribute) and target.attr == "op"))


def _own_nodes(tree: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """Every node of the function's body, not descending into nested scopes."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def always_exits(body: list[ast.stmt]) -> bool:
    """Conservatively: control cannot reach the end of ``body`` (it returns or raises).

    A proof, so anything unsure answers False. A ``with`` never proves it: its
    context manager may swallow the exception that ended the block
    (``contextlib.suppress``), and then control falls through. ``match``,
    ``try``/``except*`` and loops other than ``while True`` without ``break`` are
    not analysed.
    """
    if not body:
        return False
    last = body[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return always_exits(last.body) and always_exits(last.orelse)
    if isinstance(last, ast.Try):
        if always_exits(last.finalbody):
            return True
        return ((always_exits(last.body) or always_exits(last.orelse))
                and all(always_exits(h.body) for h in last.handlers))
    if isinstance(last, ast.While):
        # ``while True:`` with no ``break`` anywhere inside (nested loops' too: conservative)
        # only leaves by returning or raising.
        return (isinstance(last.test, ast.Constant) and last.test.value is True
                and not any(isinstance(n, ast.Break) for n in ast.walk(last)))
    return False
