"""What a user's source file defines at module level, and what a block of it reads.

The extractor copies *statements* of the user's modules. To know which ones,
it needs, per file: the top-level statements with the names each binds, the
imports spelled out one name at a time, and, per statement, the module-level
names it reads (from :mod:`symtable`, so Python's own scoping rules decide
what is a local and what is a global).
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import symtable
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import libcst as cst

from compiler import sourcesplit

BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass(frozen=True)
class ImportedName:
    """One name bound by an import statement, with the module resolved to absolute."""

    module: str  # "numpy", "os.path", "pkg.util" (relative imports resolved)
    attr: str | None  # "y" for ``from x import y``; None for ``import x``
    bound: str  # the name the import binds in the user's module

    @property
    def root_module(self) -> str:
        return self.module.split(".")[0]


@dataclass(frozen=True, eq=False)
class Statement:
    """A top-level statement of a user module (``a = 1; b = 2`` on one line is one).

    ``code`` is its text as libcst assigns text to statements: the comment and blank
    lines above it (after the previous statement's), its own lines, and the comment
    lines below it that are indented into its last block. ``node``, its libcst tree,
    is parsed from ``code`` the first time it is asked for: most statements of a file
    (the graph's own ``with`` block above all) are never copied, and a libcst tree is
    large and slow to build.
    """

    index: int
    line: int  # first line, decorators included, comments above excluded
    binds: tuple[str, ...]
    imports: tuple[ImportedName, ...] = ()  # set when the statement is an import
    # ``if __name__ == "__main__":`` does not run when the module is imported (as
    # ``operonx`` imports graph.py): it binds nothing the ops can see, and is never copied.
    main_guard: bool = False
    is_function: bool = False  # a ``def`` or ``async def``
    code: str = ""
    own: tuple[int, int] = (0, 0)  # where in ``code`` its own lines are (no comments around)
    leading: bool = True  # False for a file's first statement: lines above it are the file's
    parsed: cst.BaseStatement | None = None  # a statement made, not read from a file

    @property
    def is_import(self) -> bool:
        return bool(self.imports)

    @property
    def own_code(self) -> str:
        """Its own lines: from its first (decorators included) to its last."""
        return self.code[self.own[0]:self.own[1]]

    @cached_property
    def node(self) -> cst.BaseStatement:
        if self.parsed is not None:
            return self.parsed
        module = cst.parse_module(self.code)
        if len(module.body) != 1:  # pragma: no cover - the splitter's invariant
            raise ValueError(f"line {self.line}: {len(module.body)} statements in one")
        node = module.body[0]
        # parse_module gives the lines above a file's first statement to the module.
        return node.with_changes(leading_lines=module.header) if self.leading else node

    def ast_nodes(self) -> list[ast.stmt]:
        """Its ``ast`` statements, numbered as in the file (parsed afresh: not kept)."""
        tree = ast.parse(self.own_code)
        ast.increment_lineno(tree, self.line - 1)
        return tree.body

    def own_tree(self) -> ast.Module:
        """Its own lines parsed with :mod:`ast` (parsed afresh: not kept), numbered from 1
        at its first line: :meth:`ast_nodes` without renumbering every node."""
        return ast.parse(self.own_code)


@dataclass(frozen=True)
class ModuleInfo:
    file: str
    module_name: str
    statements: tuple[Statement, ...]
    bindings: dict[str, tuple[Statement, ...]]  # name -> every top-level statement binding it
    star_imports: tuple[str, ...]  # modules of ``from m import *``

    def lambdas_at(self, line: int) -> list[cst.Lambda]:
        """Every lambda that starts on ``line``, as libcst nodes."""
        found: list[cst.Lambda] = []
        for statement in self.statements:
            text = statement.own_code
            if not statement.line <= line < statement.line + text.count("\n") + 1:
                continue
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Lambda) and node.lineno + statement.line - 1 == line:
                    segment = ast.get_source_segment(text, node)
                    parsed = cst.parse_expression(f"({segment})") if segment else None
                    if isinstance(parsed, cst.Lambda):
                        found.append(parsed)
        return found


@dataclass(frozen=True)
class NameUse:
    """How one block of code uses module-level names."""

    reads: frozenset[str]  # global names read anywhere in it (annotations included)
    global_writes: frozenset[str]  # names assigned under a ``global`` declaration
    locals: frozenset[str]  # names bound locally in some nested scope


def module_info(file: str, module_name: str, package: str | None) -> ModuleInfo:
    """Read ``file``'s top-level statements; ``package`` resolves its relative imports.

    The file is parsed with :mod:`ast` a batch of statements at a time
    (:mod:`compiler.sourcesplit`), never whole: a graph file of ten thousand ops is
    mostly one ``with`` block, and neither its tree nor a libcst tree of the file needs
    to exist for the statements the extractor copies (each parsed with libcst on its
    own when it is copied).
    """
    with open(file, encoding="utf-8") as f:
        source = f.read()
    lines = sourcesplit.lines_of(source)
    spans = list(_top_level(lines))
    statements: list[Statement] = []
    bindings: dict[str, list[Statement]] = {}
    stars: list[str] = []
    start = 0  # where the next statement's text begins (0-based line)
    for index, span in enumerate(spans):
        end = span.last + _footer_lines(lines, span, spans[index + 1].first - 1
                                        if index + 1 < len(spans) else len(lines))
        before = "".join(lines[span.first - 1 if index == 0 else start:span.first - 1])
        own = "".join(lines[span.first - 1:span.last])
        code = before + own + "".join(lines[span.last:end])
        start = end
        imports: list[ImportedName] = []
        for kind, module, level, names in span.imports:
            for name, asname in names:
                if kind == "import":
                    imports.append(ImportedName(name, None, asname or name.split(".")[0]))
                elif module == "__future__":
                    continue
                elif name == "*":
                    stars.append(resolve_module(module, level, package))
                else:
                    imports.append(ImportedName(resolve_module(module, level, package), name,
                                                asname or name))
        binds = (span.name,) if span.name is not None and ":=" not in own else _bound_names(own)
        statement = Statement(index, span.first, binds, tuple(imports),
                              main_guard=span.main_guard, is_function=span.is_function,
                              code=code,
                              own=(len(before), len(before) + len(own)), leading=index > 0)
        statements.append(statement)
        if statement.main_guard:
            continue
        for name in statement.binds:
            bindings.setdefault(name, []).append(statement)
    return ModuleInfo(file, module_name, tuple(statements),
                      {k: tuple(v) for k, v in bindings.items()}, tuple(stars))


def is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either order of the comparison)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _bound_names(source: str) -> tuple[str, ...]:
    """Names a top-level statement binds in the module namespace."""
    table = symtable.symtable(source, "<statement>", "exec")
    return tuple(s.get_name() for s in table.get_symbols()
                 if s.is_assigned() or s.is_imported() or s.is_namespace())


# ----------------------------------------------------------------- splitting a file

_ImportSpec = tuple[str, str | None, int, tuple[tuple[str, str | None], ...]]


@dataclass(frozen=True)
class _Span:
    """What the splitter keeps of one top-level statement (its tree is dropped)."""

    first: int  # first line (decorators included)
    last: int
    imports: tuple[_ImportSpec, ...]  # ("import" | "from", module, level, ((name, as), ...))
    main_guard: bool
    is_function: bool
    block_indent: str | None  # indentation of its last indented block (None: no such block)
    name: str | None  # a ``def`` or ``class``: the one name it binds (no need for symtable)


def _top_level(lines: list[str]) -> Iterator[_Span]:
    """The top-level statements of ``lines``, parsed a batch at a time (see sourcesplit)."""
    for begin, tree in sourcesplit.batches(lines, ast.parse):
        group: list[ast.stmt] = []
        for node in tree.body:
            if group and node.lineno == group[-1].end_lineno:  # ``a = 1; b = 2``
                group.append(node)
                continue
            if group:
                yield _span(group, begin, lines)
            group = [node]
        if group:
            yield _span(group, begin, lines)


def _span(group: list[ast.stmt], offset: int, lines: list[str]) -> _Span:
    first = group[0]
    decorators: list[ast.expr] = getattr(first, "decorator_list", None) or []
    imports: list[_ImportSpec] = []
    for node in group:
        if isinstance(node, ast.Import):
            imports.append(("import", None, 0, tuple((a.name, a.asname) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            imports.append(("from", node.module, node.level,
                            tuple((a.name, a.asname) for a in node.names)))
    last = group[-1]
    end = last.end_lineno if last.end_lineno is not None else last.lineno
    return _Span(min([first.lineno, *(d.lineno for d in decorators)]) + offset, end + offset,
                 tuple(imports), len(group) == 1 and is_main_guard(first),
                 len(group) == 1 and isinstance(first, (ast.FunctionDef, ast.AsyncFunctionDef)),
                 _block_indent(last, offset, lines),
                 first.name if len(group) == 1 and isinstance(
                     first, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else None)


def _block_indent(node: ast.stmt, offset: int, lines: list[str]) -> str | None:
    """The indentation of the outermost block that ends ``node``, if it is an indented one
    (``def f(): pass`` has none): libcst gives that block the comment lines below it
    that are indented at least as much."""
    body = _last_body(node)
    if not body:
        return None
    line = lines[body[0].lineno + offset - 1]
    head = line.encode()[:body[0].col_offset].decode(errors="replace")
    return head if head and not head.strip() else None


def _last_body(node: ast.stmt) -> list[ast.stmt]:
    """The statements of ``node``'s last clause (``else``, ``finally``, the last case...)."""
    if isinstance(node, ast.If):
        if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If) and (
                node.orelse[0].col_offset == node.col_offset):  # ``elif``
            return _last_body(node.orelse[0])
        return node.orelse or node.body
    if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
        return node.orelse or node.body
    if isinstance(node, (ast.Try, ast.TryStar)):
        return node.finalbody or node.orelse or node.handlers[-1].body
    if isinstance(node, ast.Match):
        return node.cases[-1].body
    body = getattr(node, "body", None)
    return body if isinstance(body, list) else []


def _footer_lines(lines: list[str], span: _Span, gap_end: int) -> int:
    """How many of the comment and blank lines after ``span`` (up to line ``gap_end``)
    are its own: through the last one indented as its last block is (libcst's rule)."""
    if span.block_indent is None:
        return 0
    owned = 0
    for i in range(span.last, gap_end):
        if lines[i].startswith(span.block_indent):
            owned = i + 1 - span.last
    return owned


def resolve_module(module: str | None, level: int, package: str | None) -> str:
    """``from ..x import y`` in package ``a.b`` -> ``a.x``."""
    if level == 0:
        return module or ""
    relative = "." * level + (module or "")
    try:
        return importlib.util.resolve_name(relative, package or None)
    except (ImportError, ValueError):
        return module or ""


def name_use(source: str, tree: ast.AST | None = None) -> NameUse:
    """Which module-level names ``source`` (one top-level statement) reads and writes.

    ``tree``: ``source`` already parsed (decorators it lacks make no difference: only
    annotations are read from it).
    """
    top = symtable.symtable(source, "<block>", "exec")
    reads = {s.get_name() for s in top.get_symbols() if s.is_referenced()}
    writes: set[str] = set()
    local: set[str] = set()
    for table in _nested_tables(top):
        for symbol in table.get_symbols():
            name = symbol.get_name()
            if symbol.is_global() and symbol.is_referenced():
                reads.add(name)
            if symbol.is_declared_global() and symbol.is_assigned():
                writes.add(name)
            if symbol.is_local() and table.get_type() != "class":
                local.add(name)
    reads |= _string_annotation_names(tree if tree is not None else ast.parse(source))
    return NameUse(frozenset(reads), frozenset(writes), frozenset(local))


def _nested_tables(table: symtable.SymbolTable) -> Iterator[symtable.SymbolTable]:
    for child in table.get_children():
        yield child
        yield from _nested_tables(child)


def _string_annotation_names(tree: ast.AST) -> set[str]:
    """Names inside quoted annotations (``x: "Item"``): symtable does not see them."""
    names: set[str] = set()
    for annotation in annotations_in(tree):
        names |= _names_in_quoted(annotation)
    return names


def annotations_in(tree: ast.AST) -> Iterator[ast.expr | None]:
    """Every annotation slot of every ``def`` (parameters, return) and annotated assignment
    in ``tree``: None where one is left out. Only statements are visited (annotations live
    in nothing else), not the expressions that make up most of a tree."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            yield from (a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs))
            yield from (a.annotation for a in (args.vararg, args.kwarg) if a is not None)
            yield node.returns
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            stack += getattr(node, field, None) or ()


def _names_in_quoted(annotation: ast.expr | None) -> set[str]:
    names: set[str] = set()
    if annotation is None:
        return names
    # ``Literal["fast"]``: a string that is a value, not a forward reference.
    values = {id(c) for node in ast.walk(annotation) if isinstance(node, ast.Subscript)
              and _is_literal_form(node.value) for c in ast.walk(node.slice)}
    for node in ast.walk(annotation):
        if id(node) in values:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                parsed = ast.parse(node.value, mode="eval")
            except SyntaxError:
                continue
            names |= {n.id for n in ast.walk(parsed) if isinstance(n, ast.Name)}
    return names


def _is_literal_form(node: ast.expr) -> bool:
    """``Literal`` / ``typing.Literal`` / ``t.Literal``."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name == "Literal"
