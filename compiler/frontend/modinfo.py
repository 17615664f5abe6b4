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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

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


@dataclass(frozen=True)
class Statement:
    """A top-level statement of a user module."""

    index: int
    node: cst.BaseStatement
    line: int  # first line, decorators included, comments above excluded
    binds: tuple[str, ...]
    imports: tuple[ImportedName, ...] = ()  # set when the statement is an import
    # ``if __name__ == "__main__":`` does not run when the module is imported (as
    # ``operonx`` imports graph.py): it binds nothing the ops can see, and is never copied.
    main_guard: bool = False

    @property
    def is_import(self) -> bool:
        return bool(self.imports)


@dataclass(frozen=True)
class ModuleInfo:
    file: str
    module_name: str
    tree: cst.Module
    statements: tuple[Statement, ...]
    bindings: dict[str, tuple[Statement, ...]]  # name -> every top-level statement binding it
    star_imports: tuple[str, ...]  # modules of ``from m import *``
    lambdas: tuple[tuple[int, cst.Lambda], ...] = field(default=())  # (line, node)

    def code(self, node: cst.CSTNode) -> str:
        return self.tree.code_for_node(node)


@dataclass(frozen=True)
class NameUse:
    """How one block of code uses module-level names."""

    reads: frozenset[str]  # global names read anywhere in it (annotations included)
    global_writes: frozenset[str]  # names assigned under a ``global`` declaration
    locals: frozenset[str]  # names bound locally in some nested scope


def module_info(file: str, module_name: str, package: str | None) -> ModuleInfo:
    """Parse ``file``; ``package`` resolves its relative imports."""
    with open(file, encoding="utf-8") as f:
        tree = cst.parse_module(f.read())
    wrapper = MetadataWrapper(tree, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    statements: list[Statement] = []
    bindings: dict[str, list[Statement]] = {}
    stars: list[str] = []
    for index, node in enumerate(tree.body):
        line = _first_line(node, positions)
        imports, star = _imports_of(node, package)
        stars.extend(star)
        code = tree.code_for_node(node)
        statement = Statement(index, node, line, _bound_names(code), tuple(imports),
                              main_guard=isinstance(node, cst.If) and _is_main_guard_code(code))
        statements.append(statement)
        if statement.main_guard:
            continue
        for name in statement.binds:
            bindings.setdefault(name, []).append(statement)
    lambdas = tuple((positions[n].start.line, n) for n in positions if isinstance(n, cst.Lambda))
    return ModuleInfo(file, module_name, tree, tuple(statements),
                      {k: tuple(v) for k, v in bindings.items()}, tuple(stars), lambdas)


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


def _is_main_guard_code(code: str) -> bool:
    body = ast.parse(code).body
    return len(body) == 1 and is_main_guard(body[0])


def _first_line(node: cst.CSTNode, positions: Mapping[cst.CSTNode, CodeRange]) -> int:
    decorators = getattr(node, "decorators", ())
    first = decorators[0] if decorators else node
    return positions[first].start.line


def _bound_names(source: str) -> tuple[str, ...]:
    """Names a top-level statement binds in the module namespace."""
    table = symtable.symtable(source, "<statement>", "exec")
    return tuple(s.get_name() for s in table.get_symbols()
                 if s.is_assigned() or s.is_imported() or s.is_namespace())


def _imports_of(node: cst.BaseStatement,
                package: str | None) -> tuple[list[ImportedName], list[str]]:
    """The names an ``import`` / ``from ... import`` statement binds, and any star imports."""
    if not isinstance(node, cst.SimpleStatementLine):
        return [], []
    found: list[ImportedName] = []
    stars: list[str] = []
    for small in node.body:
        parsed = ast.parse(cst.Module([]).code_for_node(small)).body[0]
        if isinstance(parsed, ast.Import):
            found.extend(ImportedName(a.name, None, a.asname or a.name.split(".")[0])
                         for a in parsed.names)
        elif isinstance(parsed, ast.ImportFrom) and parsed.module != "__future__":
            module = resolve_module(parsed.module, parsed.level, package)
            for a in parsed.names:
                if a.name == "*":
                    stars.append(module)
                else:
                    found.append(ImportedName(module, a.name, a.asname or a.name))
    return found, stars


def resolve_module(module: str | None, level: int, package: str | None) -> str:
    """``from ..x import y`` in package ``a.b`` -> ``a.x``."""
    if level == 0:
        return module or ""
    relative = "." * level + (module or "")
    try:
        return importlib.util.resolve_name(relative, package or None)
    except (ImportError, ValueError):
        return module or ""


def name_use(source: str) -> NameUse:
    """Which module-level names ``source`` (one top-level statement) reads and writes."""
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
    reads |= _string_annotation_names(source)
    return NameUse(frozenset(reads), frozenset(writes), frozenset(local))


def _nested_tables(table: symtable.SymbolTable) -> Iterator[symtable.SymbolTable]:
    for child in table.get_children():
        yield child
        yield from _nested_tables(child)


def _string_annotation_names(source: str) -> set[str]:
    """Names inside quoted annotations (``x: "Item"``): symtable does not see them."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            names |= _names_in_quoted(annotation)
    return names


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
