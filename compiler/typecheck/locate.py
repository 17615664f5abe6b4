"""Where in graph.py each wiring site is: the argument, input key or write-back to point at.

The IR records the line of each node (the line Python reports for the call); columns
come from the file's syntax tree, parsed once per file. When a site cannot be found
(the file changed, the call is built dynamically) the location is the node's line and
its first non-blank column, so a message is always ``file:LINE:COL``.
"""

from __future__ import annotations

import ast
import json
import linecache
from dataclasses import dataclass
from functools import lru_cache

from operonx.ir.model import SourceLoc


@dataclass(frozen=True)
class Site:
    file: str
    line: int
    col: int  # 1-based
    callee: str | None = None  # the call's function as written (``double``, ``ops.double``)


def quoted(key: str) -> str:
    """A key the way graph.py writes it: ``"word"``."""
    return json.dumps(key, ensure_ascii=False)


@lru_cache(maxsize=32)
def _tree(file: str, text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _source_tree(file: str) -> tuple[ast.Module | None, str]:
    lines = linecache.getlines(file)
    text = "".join(lines)
    return (_tree(file, text) if text else None), text


def _fallback(loc: SourceLoc) -> Site:
    text = linecache.getline(loc.file, loc.line)
    stripped = text.lstrip()
    return Site(loc.file, loc.line, len(text) - len(stripped) + 1 if stripped else 1)


def _col(text: str, node: ast.AST) -> int:
    """1-based character column of an ast node (ast columns count UTF-8 bytes)."""
    line = text.splitlines()[node.lineno - 1] if text else ""  # type: ignore[attr-defined]
    return len(line.encode()[:node.col_offset].decode(errors="ignore")) + 1  # type: ignore[attr-defined]


def _calls_at(tree: ast.Module, line: int) -> list[ast.Call]:
    """Calls whose extent covers ``line``, innermost (shortest) first."""
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and n.lineno <= line <= (n.end_lineno or n.lineno)]
    return sorted(calls, key=lambda c: ((c.end_lineno or c.lineno) - c.lineno, -c.lineno))


def _callee(call: ast.Call) -> str:
    return ast.unparse(call.func)


def _last_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def argument(loc: SourceLoc, function: str, param: str) -> Site:
    """The keyword ``param=`` of the call at ``loc`` (``function`` breaks ties)."""
    tree, text = _source_tree(loc.file)
    if tree is None:
        return _fallback(loc)
    candidates = []
    for call in _calls_at(tree, loc.line):
        for kw in call.keywords:
            if kw.arg == param:
                candidates.append((call, kw))
    if not candidates:
        named = [c for c in _calls_at(tree, loc.line) if _last_name(c) == function]
        if named:
            return Site(loc.file, named[0].lineno, _col(text, named[0]), _callee(named[0]))
        return _fallback(loc)
    call, kw = next(((c, k) for c, k in candidates if _last_name(c) == function), candidates[0])
    return Site(loc.file, kw.lineno, _col(text, kw), _callee(call))


def graph_keyword(loc: SourceLoc, name: str) -> Site:
    """``GraphOp.loop(..., name=value)``: the keyword ``name=`` of the block's call."""
    tree, text = _source_tree(loc.file)
    if tree is None:
        return _fallback(loc)
    for call in _calls_at(tree, loc.line):
        for kw in call.keywords:
            if kw.arg == name:
                return Site(loc.file, kw.lineno, _col(text, kw), _callee(call))
    return _fallback(loc)


def input_key(loc: SourceLoc, key: str) -> Site:
    """``GraphOp(..., inputs={"key": ...})``: the key in the block's ``inputs`` dict."""
    tree, text = _source_tree(loc.file)
    if tree is None:
        return _fallback(loc)
    for call in _calls_at(tree, loc.line):
        for kw in call.keywords:
            if kw.arg == "inputs" and isinstance(kw.value, ast.Dict):
                for k in kw.value.keys:
                    if isinstance(k, ast.Constant) and k.value == key:
                        return Site(loc.file, k.lineno, _col(text, k), _callee(call))
    return graph_keyword(loc, "inputs")


def writeback(block: SourceLoc, target: str) -> Site:
    """``node["k"] >> PARENT["target"]`` inside the ``with`` block starting at ``block``."""
    tree, text = _source_tree(block.file)
    if tree is None:
        return _fallback(block)
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.With, ast.AsyncWith))
              and any(item.context_expr.lineno <= block.line
                      <= (item.context_expr.end_lineno or block.line) for item in n.items)]
    for scope in scopes:
        for node in ast.walk(scope):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift) \
                    and _is_parent_key(node.right, target):
                return Site(block.file, node.lineno, _col(text, node))
    return _fallback(block)


def _is_parent_key(node: ast.expr, key: str) -> bool:
    return (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
            and node.value.id == "PARENT" and isinstance(node.slice, ast.Constant)
            and node.slice.value == key)
