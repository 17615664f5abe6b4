"""Generated code as syntax trees: templates with placeholders, literals, names, comments.

The code generator never pastes text into code. It instantiates small *templates*
— Python source written in this package, parsed once with :mod:`ast` — whose
placeholders (ALL-CAPS names such as ``OUT`` or ``FN``) are replaced by nodes:

* an :class:`Ident` (a checked ASCII identifier) or an expression node where the
  placeholder is an expression, a target, an ``as`` name or an attribute name;
* a list of statements where the placeholder stands alone as a statement;
* a list of expressions for ``*X`` (in a call, list or tuple) and a list of
  keywords for ``**X`` (in a call).

User text therefore reaches generated code only as a :func:`lit` constant (whose
spelling :func:`ast.unparse` chooses) or as an :class:`Ident`; indentation, line
breaks and brackets come from the tree. :func:`render` turns statements into
source and :func:`check_roundtrip` proves the text parses back to the very tree
that was built, so no layout can change what the code means.

Comments have no node in :mod:`ast`. :func:`comment` makes an expression
statement whose ``Name`` holds the comment text: :func:`ast.unparse` writes a
name verbatim, so it prints as an ordinary ``# ...`` line at the statement's
indentation. The text is made printable first (one line, no control
characters), and the round-trip comparison skips these statements.
"""

from __future__ import annotations

import ast
import functools
import keyword
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, Literal

_PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_COMMENT_PREFIX = "# "


class Ident(str):
    """A name that is safe to write into code: an identifier (not a keyword) that the
    parser reads back exactly — it normalises identifiers to NFKC, so ``ﬁx`` would be read
    as ``fix``. Generated names are ASCII; a user's function keeps its own (normalised) name.
    """

    __slots__ = ()

    def __new__(cls, text: str) -> Ident:
        if (not text.isidentifier() or keyword.iskeyword(text)
                or unicodedata.normalize("NFKC", text) != text):
            raise ValueError(f"not a safe identifier: {text!r}")
        return super().__new__(cls, text)


Sub = ast.AST | Ident | Sequence[ast.stmt] | Sequence[ast.expr] | Sequence[ast.keyword]


# ----------------------------------------------------------------------------- leaves


def name(ident: Ident, ctx: Literal["load", "store"] = "load") -> ast.Name:
    if not isinstance(ident, Ident):
        raise TypeError(f"names are Idents, not {type(ident).__name__} {ident!r}")
    return ast.Name(id=str(ident), ctx=ast.Store() if ctx == "store" else ast.Load())


def lit(value: object) -> ast.expr:
    """The expression that evaluates to ``value``, for literal-like values.

    Numbers are spelled as :func:`ast.parse` reads their ``repr`` (``-1`` is a
    unary minus applied to ``1``), non-finite floats as ``float('nan')``, and set
    elements in a fixed order (by ``repr``), so the output never depends on the
    hash seed. Anything else raises :class:`TypeError`.
    """
    exact = type(value)
    if value is None or (isinstance(value, (bool, str, bytes)) and exact in (bool, str, bytes)):
        return ast.Constant(value=value)
    if type(value) is float and not math.isfinite(value):
        return ast.Call(func=ast.Name(id="float", ctx=ast.Load()),
                        args=[ast.Constant(value=repr(value))], keywords=[])
    if type(value) in (int, float, complex):
        return ast.parse(repr(value), mode="eval").body
    if type(value) is list:
        return ast.List(elts=[lit(v) for v in value], ctx=ast.Load())
    if type(value) is tuple:
        return ast.Tuple(elts=[lit(v) for v in value], ctx=ast.Load())
    if type(value) is dict:
        return ast.Dict(keys=[lit(k) for k in value], values=[lit(v) for v in value.values()])
    if isinstance(value, (set, frozenset)) and type(value) in (set, frozenset):
        items = sorted(value, key=lambda v: (type(v).__name__, repr(v)))
        elts = [lit(v) for v in items]
        if type(value) is set and elts:
            return ast.Set(elts=elts)
        inner: list[ast.expr] = [ast.Set(elts=elts)] if elts else []
        return ast.Call(func=ast.Name(id=type(value).__name__, ctx=ast.Load()), args=inner,
                        keywords=[])
    raise TypeError(f"{type(value).__name__} {value!r:.60} has no literal spelling")


def comment(text: str) -> ast.stmt:
    """A ``# text`` line (see the module docstring)."""
    return ast.Expr(value=ast.Name(id=_COMMENT_PREFIX + printable(text), ctx=ast.Load()))


def printable(text: str) -> str:
    """``text`` on one line, every non-printable character escaped (safe in a comment)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def is_comment(stmt: ast.AST) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Name)
            and stmt.value.id.startswith(_COMMENT_PREFIX))


# ------------------------------------------------------------------------- templates


class Template:
    """Python source with ALL-CAPS placeholders, parsed once, instantiated many times."""

    def __init__(self, source: str, mode: Literal["stmts", "expr"] = "stmts") -> None:
        self.source = source
        self.mode = mode
        tree = ast.parse(_dedent(source), mode="eval" if mode == "expr" else "exec")
        self.tree: ast.AST = tree.body if isinstance(tree, ast.Expression) else tree
        self.placeholders = frozenset(_placeholders(self.tree))

    def stmts(self, **subs: Sub) -> list[ast.stmt]:
        assert self.mode == "stmts", self.source
        return self._fill(subs).body  # type: ignore[attr-defined, no-any-return]

    def expr(self, **subs: Sub) -> ast.expr:
        assert self.mode == "expr", self.source
        return self._fill(subs)  # type: ignore[return-value]

    def _fill(self, subs: dict[str, Sub]) -> ast.AST:
        given = frozenset(subs)
        if given != self.placeholders:
            raise KeyError(f"template placeholders {sorted(self.placeholders)} but given "
                           f"{sorted(given)}:\n{self.source}")
        return _Filler(subs).node(self.tree)


@functools.cache
def template(source: str) -> Template:
    return Template(source)


@functools.cache
def expr_template(source: str) -> Template:
    return Template(source, "expr")


def stmts(source: str, **subs: Sub) -> list[ast.stmt]:
    """Instantiate the statements template ``source`` (parsed once, then cached)."""
    return template(source).stmts(**subs)


def expr(source: str, **subs: Sub) -> ast.expr:
    """Instantiate the expression template ``source`` (parsed once, then cached)."""
    return expr_template(source).expr(**subs)


def _dedent(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip()]
    pad = min((len(line) - len(line.lstrip()) for line in lines), default=0)
    return "\n".join(line[pad:] for line in source.splitlines())


def _placeholders(tree: ast.AST) -> Iterable[str]:
    """Every ALL-CAPS name in ``tree``: as a name, a def's or handler's name, an attribute
    or a parameter."""
    for node in ast.walk(tree):
        for text in (getattr(node, field, None) for field in _NAMING_FIELDS.get(type(node), ())):
            if isinstance(text, str) and _PLACEHOLDER.match(text):
                yield text


_NAMING_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {
    ast.Name: ("id",), ast.FunctionDef: ("name",), ast.AsyncFunctionDef: ("name",),
    ast.ExceptHandler: ("name",), ast.Attribute: ("attr",), ast.arg: ("arg",),
}


class _Filler:
    """Copies a template tree, replacing placeholders by the given nodes."""

    def __init__(self, subs: dict[str, Sub]) -> None:
        self.subs = subs

    def node(self, node: ast.AST) -> ast.AST:
        if isinstance(node, ast.Name) and node.id in self.subs:
            return self._expr(node.id, node.ctx)
        fields: dict[str, Any] = {}
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                fields[field] = self._list(value)
            elif isinstance(value, ast.AST):
                fields[field] = self.node(value)
            elif isinstance(value, str) and value in self.subs and (
                    field in ("name", "attr", "arg") and not isinstance(node, ast.alias)):
                fields[field] = str(self._ident(value))
            else:
                fields[field] = value
        return type(node)(**fields)

    def _list(self, items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            spliced = self._splice(item)
            if spliced is not None:
                out.extend(spliced)
            elif isinstance(item, ast.AST):
                out.append(self.node(item))
            else:
                out.append(item)
        return out

    def _splice(self, item: object) -> Sequence[ast.AST] | None:
        """The nodes a list element expands to, or None when it is not a splice point."""
        key: str | None = None
        if isinstance(item, ast.Expr) and isinstance(item.value, ast.Name):
            key = item.value.id  # a statement placeholder
        elif isinstance(item, ast.Starred) and isinstance(item.value, ast.Name):
            key = item.value.id  # *ARGS
        elif isinstance(item, ast.keyword) and item.arg is None and isinstance(
                item.value, ast.Name):
            key = item.value.id  # **KWARGS
        if key is None or key not in self.subs:
            return None
        value = self.subs[key]
        if isinstance(value, ast.stmt):
            return [value]
        if isinstance(value, (list, tuple)):
            return list(value)
        return None  # a single node: substituted in place (``*X`` stays a starred X)

    def _ident(self, key: str) -> Ident:
        value = self.subs[key]
        if not isinstance(value, Ident):
            raise TypeError(f"placeholder {key} names something: give an Ident, not {value!r}")
        return value

    def _expr(self, key: str, ctx: ast.expr_context) -> ast.expr:
        value = self.subs[key]
        if isinstance(value, Ident):
            return ast.Name(id=str(value), ctx=type(ctx)())
        if isinstance(value, ast.expr):
            return _with_ctx(value, ctx) if not isinstance(ctx, ast.Load) else value
        raise TypeError(f"placeholder {key} is an expression: give an Ident or an ast.expr, "
                        f"not {type(value).__name__}")


def _with_ctx(node: ast.expr, ctx: ast.expr_context) -> ast.expr:
    """A target: the same node with a Store context (tuples: on every element)."""
    if isinstance(node, ast.Name):
        return ast.Name(id=node.id, ctx=type(ctx)())
    if isinstance(node, ast.Tuple):
        return ast.Tuple(elts=[_with_ctx(e, ctx) for e in node.elts], ctx=type(ctx)())
    if isinstance(node, ast.Subscript):
        return ast.Subscript(value=node.value, slice=node.slice, ctx=type(ctx)())
    if isinstance(node, ast.Attribute):
        return ast.Attribute(value=node.value, attr=node.attr, ctx=type(ctx)())
    raise TypeError(f"{ast.dump(node)} cannot be assigned to")


# ----------------------------------------------------------------------- functions


def function(fn_name: Ident, params: Sequence[tuple[Ident, ast.expr | None]],
             returns: ast.expr | None, body: Sequence[ast.stmt], *,
             is_async: bool = False) -> ast.stmt:
    """``[async] def fn_name(p: T, ...) -> R:`` with ``body`` (``pass`` when empty)."""
    args = ast.arguments(posonlyargs=[], args=[ast.arg(arg=str(n), annotation=a)
                                              for n, a in params],
                         vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
    kind = ast.AsyncFunctionDef if is_async else ast.FunctionDef
    return kind(name=str(Ident(fn_name)), args=args, body=block(body), decorator_list=[],
                returns=returns, type_comment=None)


def block(body: Sequence[ast.stmt]) -> list[ast.stmt]:
    """A statement list Python accepts: ``pass`` added when it holds only comments."""
    stmts_ = list(body)
    if all(is_comment(s) for s in stmts_):
        stmts_.append(ast.Pass())
    return stmts_


def fix_blocks(body: Sequence[ast.stmt]) -> None:
    """Make every block in ``body`` one Python accepts, in place: a compound statement's
    body (or a present ``else``/``finally``) that holds only comments gets a ``pass``. Every
    statement also gets a ``lineno`` (the unparser reads it, for type comments).

    Only statements are visited, never expressions: a big module has ten times more
    expression nodes than statements, and none of them holds a block.
    """
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.stmt) and getattr(node, "lineno", None) is None:
            node.lineno = 1
        for field in ("body", "orelse", "finalbody"):
            value = getattr(node, field, None)
            if not isinstance(value, list) or (field != "body" and not value):
                continue
            if all(is_comment(s) for s in value):
                value.append(ast.Pass())
            stack.extend(value)
        stack.extend(getattr(node, "handlers", None) or ())  # except clauses: their bodies
        stack.extend(getattr(node, "cases", None) or ())  # match cases: their bodies


def merge_nested_ifs(body: Sequence[ast.stmt]) -> None:
    """``if a:`` whose whole body is ``if b: ...`` (neither with an ``else``) becomes
    ``if a and b: ...``, in place: ``and`` evaluates ``b`` only when ``a`` holds, as before.
    Only statements are visited (as in ``fix_blocks``)."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        for field in ("body", "orelse", "finalbody"):
            stack.extend(getattr(node, field, None) or ())
        for handler in getattr(node, "handlers", None) or ():
            stack.extend(handler.body)
        if isinstance(node, ast.If) and not node.orelse:
            while (len(node.body) == 1 and isinstance(node.body[0], ast.If)
                   and not node.body[0].orelse):
                inner = node.body[0]
                node.test = ast.BoolOp(op=ast.And(), values=[*_conjuncts(node.test),
                                                             *_conjuncts(inner.test)])
                node.body = inner.body


def _conjuncts(test: ast.expr) -> list[ast.expr]:
    return list(test.values) if isinstance(test, ast.BoolOp) and isinstance(
        test.op, ast.And) else [test]


# ------------------------------------------------------------------------ rendering


def render(body: Sequence[ast.stmt], *, check: bool = False) -> str:
    """Source text for ``body``; blocks are made valid first (in place: see fix_blocks).

    Top-level statements are printed one by one so that module-level functions
    get PEP 8's two blank lines and a comment sits right above what it describes.
    With ``check``, each one's text is proven to parse back to it (check_roundtrip) as
    it is printed: only one statement's parsed tree exists at a time.
    """
    stmts_ = list(body)
    fix_blocks(stmts_)
    merge_nested_ifs(stmts_)
    chunks: list[str] = []
    for i, stmt in enumerate(stmts_):
        text = ast.unparse(stmt)
        if check:
            check_roundtrip([stmt], text)
        after_comment = i > 0 and is_comment(stmts_[i - 1])
        if chunks and not after_comment:
            chunks.append("\n\n\n" if _is_def(stmt) or (
                is_comment(stmt) and i + 1 < len(stmts_) and _is_def(stmts_[i + 1]))
                else "\n")
        elif after_comment:
            chunks.append("\n")
        chunks.append(text)
    return "".join(chunks)


def _is_def(stmt: ast.stmt) -> bool:
    return isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))


def check_roundtrip(body: Sequence[ast.stmt], text: str) -> None:
    """Raise AssertionError unless ``text`` parses to exactly the tree ``body`` describes.

    ``body`` as :func:`render` left it (blocks made valid); its comment statements are
    what the parser drops. Trees are compared node by node, field by field (what
    ``ast.dump`` shows, without building two copies and two dumps of a big module).
    """
    difference = first_difference(ast.parse(text).body, list(body))
    if difference is not None:
        raise AssertionError("generated code does not parse back to the tree it was built "
                             f"from ({difference}):\n{text[:2000]}")


def first_difference(parsed: list[ast.stmt], built: list[ast.stmt]) -> str | None:
    """Where ``built`` (comment statements ignored) differs from ``parsed``; None if nowhere.

    The same comparison as ``ast.dump(a) == ast.dump(b)``: node types, every field (an
    absent optional field reads as None), values by type and ``repr``; positions ignored.
    """
    stack: list[tuple[object, object]] = [(parsed, built)]
    while stack:
        a, b = stack.pop()
        if isinstance(a, ast.AST) and isinstance(b, ast.AST):
            if a.__class__ is not b.__class__:
                return f"{ast.dump(a)[:80]} parsed, {ast.dump(b)[:80]} built"
            stack.extend([(getattr(a, f, None), getattr(b, f, None)) for f in a._fields])
        elif isinstance(a, list) and isinstance(b, list):
            b = [item for item in b if not is_comment(item)]
            if len(a) != len(b):
                return f"{len(a)} items parsed, {len(b)} built: {[ast.dump(x)[:40] for x in b]}"
            stack.extend(zip(a, b, strict=True))
        elif not (a is b or (a.__class__ is b.__class__ and not isinstance(a, (ast.AST, list))
                             and (a == b if a.__class__ in _EXACT_EQUALITY
                                  else repr(a) == repr(b)))):
            return f"{a!r:.80} parsed, {b!r:.80} built"
    return None


# Types whose ``==`` (same type on both sides) is exactly "same repr"; floats are not
# (``0.0 == -0.0``), so they and anything else are compared by ``repr`` as ast.dump does.
_EXACT_EQUALITY = frozenset({str, int, bytes, bool, type(None), type(...)})


def block_depth(body: Sequence[ast.stmt]) -> int:
    """The deepest nesting of blocks (for, while, try, with) in ``body``, not entering defs.

    CPython refuses more than 20 statically nested blocks in one function
    ("too many statically nested blocks"); the code generator keeps well below.
    """
    deepest = 0
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        opens = isinstance(stmt, (ast.For, ast.AsyncFor, ast.While, ast.Try, ast.TryStar,
                                  ast.With, ast.AsyncWith))
        inner = 0
        for field in ("body", "orelse", "finalbody"):
            inner = max(inner, block_depth(getattr(stmt, field, []) or []))
        for handler in getattr(stmt, "handlers", []) or []:
            inner = max(inner, block_depth(handler.body))
        deepest = max(deepest, inner + (1 if opens else 0))
    return deepest
