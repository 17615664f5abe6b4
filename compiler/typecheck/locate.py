"""Where in graph.py each wiring site is: the argument, input key or write-back to point at.

The IR records the line of each node (the line Python reports for the call); columns
come from the file's syntax tree, parsed and indexed once per file (and only when
there is a problem to report). When a site cannot be found (the file changed, the
call is built dynamically) the location is the node's line and its first non-blank
column, so a message is always ``file:LINE:COL``.
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
    col: int  # 1-based, in characters
    callee: str | None = None  # the call's function as written (``double``, ``ops.double``)


def quoted(key: str) -> str:
    """A key the way graph.py writes it: ``"word"``."""
    return json.dumps(key, ensure_ascii=False)


@dataclass(frozen=True)
class _Index:
    tree: ast.Module
    lines: tuple[str, ...]
    calls: dict[int, list[ast.Call]]  # line -> calls covering it, innermost first

    def col(self, node: ast.expr | ast.keyword) -> int:
        """1-based character column (ast columns count UTF-8 bytes)."""
        text = self.lines[node.lineno - 1] if node.lineno <= len(self.lines) else ""
        return len(text.encode()[:node.col_offset].decode(errors="ignore")) + 1


@lru_cache(maxsize=16)
def _index_of(file: str, text: str) -> _Index | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    calls: dict[int, list[ast.Call]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                calls.setdefault(line, []).append(node)
    for found in calls.values():
        found.sort(key=lambda c: ((c.end_lineno or c.lineno) - c.lineno, -c.lineno))
    return _Index(tree, tuple(text.splitlines()), calls)


def _index(file: str) -> _Index | None:
    linecache.checkcache(file)
    text = "".join(linecache.getlines(file))
    return _index_of(file, text) if text else None


def _fallback(loc: SourceLoc) -> Site:
    text = linecache.getline(loc.file, loc.line)
    stripped = text.lstrip()
    return Site(loc.file, loc.line, len(text) - len(stripped) + 1 if stripped else 1)


def _last_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def argument(loc: SourceLoc, function: str, param: str) -> Site:
    """The keyword ``param=`` of the call at ``loc`` (calls of ``function`` preferred)."""
    index = _index(loc.file)
    if index is None:
        return _fallback(loc)
    calls = index.calls.get(loc.line, [])
    candidates = [(call, kw) for call in calls for kw in call.keywords if kw.arg == param]
    if not candidates:
        named = [call for call in calls if _last_name(call) == function]
        if not named:
            return _fallback(loc)
        return Site(loc.file, named[0].lineno, index.col(named[0]), ast.unparse(named[0].func))
    call, kw = next(((c, k) for c, k in candidates if _last_name(c) == function), candidates[0])
    return Site(loc.file, kw.lineno, index.col(kw), ast.unparse(call.func))


def input_key(loc: SourceLoc, key: str) -> Site:
    """``GraphOp(..., inputs={"key": ...})``: the key in the block's ``inputs`` dict."""
    index = _index(loc.file)
    if index is None:
        return _fallback(loc)
    for call in index.calls.get(loc.line, []):
        for kw in call.keywords:
            if kw.arg == "inputs" and isinstance(kw.value, ast.Dict):
                for k in kw.value.keys:
                    if isinstance(k, ast.Constant) and k.value == key:
                        return Site(loc.file, k.lineno, index.col(k), ast.unparse(call.func))
    return _fallback(loc)


def writeback(block: SourceLoc, target: str) -> Site:
    """``node["k"] >> PARENT["target"]`` inside the ``with`` block starting at ``block``."""
    index = _index(block.file)
    if index is None:
        return _fallback(block)
    for scope in ast.walk(index.tree):
        if not isinstance(scope, (ast.With, ast.AsyncWith)) or not any(
                item.context_expr.lineno <= block.line
                <= (item.context_expr.end_lineno or block.line) for item in scope.items):
            continue
        for node in ast.walk(scope):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift) \
                    and _is_parent_key(node.right, target):
                return Site(block.file, node.lineno, index.col(node))
    return _fallback(block)


def _is_parent_key(node: ast.expr, key: str) -> bool:
    return (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
            and node.value.id == "PARENT" and isinstance(node.slice, ast.Constant)
            and node.slice.value == key)
