"""The text mypyc compiles for ``operonx compile --native``: ``out.py``, made exact under mypyc.

mypyc compiles typed Python to C, and a type it knows is a type it *enforces*: a value
in a variable or parameter typed ``float`` is converted (``1`` becomes ``1.0``), one typed
``int`` too (``True`` becomes ``1``), one typed ``list`` is checked (a tuple raises
``TypeError``). CPython passes each of them through unchanged, and so does ``out.py``.
The native build must compute exactly what ``out.py`` computes, so mypyc compiles
``out.py``'s own text with these changes, each keeping every line where it is (the
native module's tracebacks and mypyc's errors point at ``out.py``'s lines):

* **No precise type.** Every annotation becomes ``Any`` (``NotRequired[Any]`` for a
  ``NotRequired`` key), as does every ``cast``'s type, and the first assignment of each
  variable in a function is annotated ``Any`` (mypy would otherwise infer ``int`` from a
  loop state's ``0`` and mypyc would convert what an op later puts there). Kept, as no
  user's value can reach them: a ``None``/``NoReturn`` return, an annotation naming one
  of the module's private classes (``rt: _Run``: only the module makes them; mypyc then
  calls their methods directly), the counters and flags computed from constants alone
  (:func:`_internal_scalars`: machine integers) and the lists, dicts and sets the code
  makes itself (:func:`_containers`: ``list[Any]``, appended to directly). mypyc
  compiles the control flow — calls, branches, loops, ``try``, locals — and never checks
  or converts a value. The copied op functions are compiled so too: called from compiled
  code, an interpreted function costs more than CPython's own Python-to-Python call, and
  a build that left them interpreted was no faster than ``out.py``.
* **Pure parts.** What mypyc must not compile runs as the very code ``out.py`` holds,
  byte-compiled by CPython when the extension is imported (``exec`` of that text, under
  ``out.py``'s name and at its line numbers, in the module's own namespace); the names
  it binds are declared ``Any`` for mypyc. They are: the import lines (so mypy never
  analyses the user's modules), every copied statement but a function (classes stay
  CPython classes: a mypyc class has no instance ``__dict__`` and cannot be patched or
  subclassed; constants, registrations and other statements run once anyway), a copied
  function mypyc cannot compile (:func:`compiled_functions`; the build adds those mypyc
  refuses), and every top-level async generator (``stream``: mypyc has none).
* Nothing else: the names, statements and their order are ``out.py``'s.

What stays different is what any compiled extension changes: a compiled function has
no ``__code__`` and no frame of its own, and compiled code calls the module's compiled
functions directly (patching ``out.fetch`` after import does not change what ``run``
calls; it does for ``out.py``).
"""

from __future__ import annotations
import __future__

import ast
import collections
import symtable
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from compiler.codegen.render import RUNTIME_IMPORTS

# The first statement of the skeleton (templates/module.py.j2): everything above it, but
# the docstring and ``from __future__``, is import lines and copied code.
FIRST_SKELETON_NAME = "ErrorInfo"
_KEPT_RETURNS = frozenset({"None", "NoReturn"})  # no value flows out: nothing to convert
_WRAPPERS = frozenset({"NotRequired", "Required", "ClassVar", "Final"})  # the key's kind
_FRAME_READERS = frozenset({"locals", "vars", "_getframe", "currentframe"})
_INT_OPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.LShift, ast.RShift,
            ast.BitAnd, ast.BitOr, ast.BitXor)  # int op int is an int (not / or **)

Function = ast.FunctionDef | ast.AsyncFunctionDef


class VariantError(ValueError):
    """``out.py`` does not have the shape of a module operonx generated (edited by hand?)."""


@dataclass(frozen=True)
class _Edit:
    """Replace the text from (line, col) to (end_line, end_col) (1-based lines, byte
    columns as ``ast`` gives them) by ``text``, which holds as many line breaks."""

    line: int
    col: int
    end_line: int
    end_col: int
    text: str


@dataclass(frozen=True)
class _Parts:
    """A generated module's top-level statements, by part."""

    copied: list[ast.stmt]  # import lines and copied code
    generated: list[ast.stmt]  # the skeleton, the generated functions and the runtime
    skeleton_line: int  # where the generated part starts


def _parts(source: str) -> _Parts:
    body = _parse(source).body
    start = next((i for i, node in enumerate(body) if not _is_header(i, node)), None)
    skeleton = next((i for i, node in enumerate(body)
                     if isinstance(node, ast.ClassDef) and node.name == FIRST_SKELETON_NAME),
                    None)
    if start is None or skeleton is None or start >= skeleton or not isinstance(
            body[start], (ast.Import, ast.ImportFrom)):
        raise VariantError(f"no import lines, copied code and class {FIRST_SKELETON_NAME} "
                           "in that order: not a module operonx generated")
    return _Parts(body[start:skeleton], body[skeleton:], _first_line(body[skeleton]))


# CPython 3.11 keeps the AST constructor's recursion depth in per-interpreter state, so two
# threads turning parse trees into ast objects at once can fail with "SystemError: AST
# constructor recursion depth mismatch" (python/cpython#106905). Native builds run from
# threads (a build's time is the C compiler's, in a subprocess), so their parses take turns.
_PARSING = threading.Lock()


def _parse(source: str) -> ast.Module:
    with _PARSING:
        return ast.parse(source)


def _parse_expression(source: str) -> ast.Expression:
    with _PARSING:
        return ast.parse(source, mode="eval")


def _is_header(index: int, node: ast.stmt) -> bool:
    """The module docstring and ``from __future__`` imports."""
    if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True
    return isinstance(node, ast.ImportFrom) and node.module == "__future__"


def native_source(source: str, filename: str, pure: Iterable[str] = ()) -> str:
    """The source mypyc compiles for the generated module ``source``, whose file is
    ``filename`` (the name its tracebacks show). ``pure``: copied functions to keep as
    CPython code although they look compilable (the build names those mypyc refused)."""
    parts = _parts(source)
    lines = source.splitlines(keepends=True)
    compiled = compiled_functions(source, pure)
    edits: list[_Edit] = []
    declared: set[str] = set()
    prefix = _runtime_imports(parts.copied)
    for first, last in _pure_ranges(parts, [span for span, _node in compiled.values()]):
        edits.append(_pure(lines, first, last, filename, declared, prefix))
        prefix = ""  # the compiled imports go on the first line, above everything
    private = frozenset(n.name for n in parts.generated
                        if isinstance(n, ast.ClassDef) and n.name.startswith("_"))
    for _span, function in compiled.values():
        edits += _erased(function, private)
    for node in parts.generated:
        if _is_async_generator(node):
            edits.append(_pure(lines, _first_line(node), _end_line(node), filename, declared))
        else:
            edits += _erased(node, private)
    return _apply(lines, edits)


def compiled_functions(source: str, pure: Iterable[str] = ()
                       ) -> dict[str, tuple[tuple[int, int], Function]]:
    """The copied functions mypyc compiles, by name: (first line, last line) and the node.

    Every copied top-level function but: an async generator, one with a class or an async
    generator inside (mypyc compiles neither), one with ``except*`` (neither), one that
    reads its frame (``locals()``, ``sys._getframe()``: a compiled function has none), one
    named in ``pure``, and one whose name other copied code binds too (compiled callers
    would still call the first).
    """
    copied = _parts(source).copied
    bindings = collections.Counter(name for node in copied
                                   for name in _bound_names(ast.unparse(node)))
    return {node.name: ((_first_line(node), _end_line(node)), node) for node in copied
            if isinstance(node, Function) and node.name not in set(pure)
            and bindings[node.name] == 1 and _compilable(node)}


def _compilable(function: Function) -> bool:
    if _is_async_generator(function):
        return False
    for node in ast.walk(function):
        if node is function:
            continue
        if isinstance(node, (ast.ClassDef, ast.TryStar)) or _is_async_generator(node):
            return False
        name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
        if name in _FRAME_READERS:
            return False
    return True


def _pure_ranges(parts: _Parts, compiled: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The line ranges of the copied part that stay CPython code: all of it but the
    compiled functions (each range from a statement's first line to the line above the
    next compiled function, or the skeleton)."""
    starts = [*sorted(first for first, _last in compiled), parts.skeleton_line]
    ranges: list[tuple[int, int]] = []
    inside = {line for first, last in compiled for line in range(first, last + 1)}
    for node in parts.copied:
        first = _first_line(node)
        if first in inside:
            continue
        last = min(s for s in starts if s > first) - 1
        if ranges and ranges[-1][1] == last:
            continue  # already in the range of the statement before it
        ranges.append((first, last))
    return ranges


# ------------------------------------------------------------------------- pure parts


def _pure(lines: list[str], first: int, last: int, filename: str, declared: set[str],
          prefix: str = "") -> _Edit:
    """Lines ``first``..``last`` run as CPython code: one line executes their text (at
    their own line numbers, in the module's namespace) and declares what it binds for
    mypyc. ``prefix``: statements that line starts with (the compiled part's imports)."""
    text = "".join(lines[first - 1:last])
    padded = "\n" * (first - 1) + text  # so that its code objects carry out.py's lines
    flags = __future__.annotations.compiler_flag  # out.py's ``from __future__ import``
    code = f"exec(compile({padded!r}, {filename!r}, 'exec', {flags}, True), globals())"
    if prefix:
        declared.update(_bound_names(prefix))
    new = [name for name in _bound_names(text) if name not in declared]
    declared.update(new)
    statement = "; ".join([*filter(None, [prefix, code]), *(f"{n}: Any" for n in new)])
    end_col = len(lines[last - 1].rstrip("\r\n").encode())
    return _Edit(first, 0, last, end_col, statement + "\n" * (last - first))


def _bound_names(text: str) -> list[str]:
    """The module-level names ``text`` binds (definitions, assignments, imports)."""
    table = symtable.symtable(text, "<pure>", "exec")
    return sorted(s.get_name() for s in table.get_symbols()
                  if s.is_assigned() or s.is_imported() or s.is_namespace())


def _runtime_bindings() -> frozenset[tuple[str | None, str, str | None]]:
    """(``from`` module or None, imported name, ``as`` name) of every runtime import."""
    found: set[tuple[str | None, str, str | None]] = set()
    for line in RUNTIME_IMPORTS:
        node = _parse(line).body[0]
        assert isinstance(node, (ast.Import, ast.ImportFrom))
        module = node.module if isinstance(node, ast.ImportFrom) else None
        found |= {(module, alias.name, alias.asname) for alias in node.names}
    return frozenset(found)


def _runtime_imports(statements: list[ast.stmt]) -> str:
    """The compiled part's import statements: the runtime's (the standard library and
    uvloop, whose calls mypyc compiles), never the user's own (they run in the pure
    part), and ``Any`` for the declarations."""
    runtime = _runtime_bindings()
    kept: list[str] = []
    typing_names: list[str] = []
    for node in statements:
        if isinstance(node, ast.Import):
            kept += [f"import {ast.unparse(a)}" for a in node.names
                     if (None, a.name, a.asname) in runtime]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [ast.unparse(a) for a in node.names
                     if (node.module, a.name, a.asname) in runtime]
            if node.module == "typing":
                typing_names += names
            elif names:
                kept.append(f"from {node.module} import {', '.join(names)}")
    if "Any" not in typing_names:
        typing_names.append("Any")
    kept.append(f"from typing import {', '.join(typing_names)}")
    return "; ".join(kept)


# ------------------------------------------------------------------------- type erasure


def _erased(node: ast.stmt, private: frozenset[str]) -> list[_Edit]:
    """The edits that leave no precise type in the top-level statement ``node``."""
    eraser = _Eraser(private, _internal_scalars(node), _containers(node))
    eraser.visit(node)
    return eraser.edits


class _Eraser(ast.NodeVisitor):
    def __init__(self, private: frozenset[str], scalars: frozenset[str],
                 containers: dict[str, str]) -> None:
        self.private = private
        self.scalars = scalars
        self.containers = containers
        self.edits: list[_Edit] = []

    def replace(self, node: ast.expr, text: str) -> None:
        assert node.end_lineno is not None and node.end_col_offset is not None
        breaks = node.end_lineno - node.lineno
        if breaks:  # a bracketed annotation over several lines: keep them, bracketed
            text = f"({text}" + "\n" * breaks + ")"
        self.edits.append(_Edit(node.lineno, node.col_offset, node.end_lineno,
                                node.end_col_offset, text))

    def erase(self, annotation: ast.expr | None, is_return: bool = False) -> None:
        if annotation is None:
            return
        if is_return and ast.unparse(annotation) in _KEPT_RETURNS:
            return
        if isinstance(annotation, ast.Name) and annotation.id in self.private:
            return
        self.replace(annotation, _any_of(annotation))

    def visit_arg(self, node: ast.arg) -> None:
        self.erase(node.annotation)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        target = node.target
        if isinstance(target, ast.Name) and target.id in self.containers:
            self.replace(node.annotation, self.containers[target.id])
        else:
            self.erase(node.annotation)
        if node.value is not None:
            self.visit(node.value)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.function(node)

    def function(self, node: Function) -> None:
        self.erase(node.returns, is_return=True)
        self.edits += _declarations(node, self.scalars, self.containers)
        for child in [*node.decorator_list, node.args, *node.body]:
            self.visit(child)

    def visit_Call(self, node: ast.Call) -> None:
        callee = node.func
        name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", None)
        if name == "cast" and node.args:
            self.replace(node.args[0], "Any")
            for child in [*node.args[1:], *node.keywords]:
                self.visit(child)
            return
        if name == "TypedDict" and len(node.args) == 2 and isinstance(node.args[1], ast.Dict):
            for value in node.args[1].values:  # the functional form: values are key types
                self.replace(value, _any_of(value))
            return
        self.generic_visit(node)


def _any_of(annotation: ast.expr) -> str:
    """``Any``, keeping a ``NotRequired[...]``-like wrapper (the kind of key or attribute)."""
    if (isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name)
            and annotation.value.id in _WRAPPERS):
        return f"{annotation.value.id}[Any]"
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:  # a quoted annotation
            return _any_of(_parse_expression(annotation.value).body)
        except SyntaxError:
            return "Any"
    return "Any"


def _declarations(function: Function, scalars: frozenset[str],
                  containers: dict[str, str]) -> list[_Edit]:
    """``: Any`` on the first ``=`` assignment of each of ``function``'s variables but
    the ``scalars`` (``: list[Any]`` and the like for the ``containers``). A name bound
    otherwise (a parameter, ``for``, ``with``, ``except``) keeps the type its binder
    gives it: one that holds a user's value gets it from an ``Any`` (what it iterates,
    enters or calls is untyped now)."""
    own = _own_nodes(function)
    args = function.args
    known = set(scalars) | {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                                            *filter(None, [args.vararg, args.kwarg])]}
    for node in own:
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            known.update(node.names)
        elif isinstance(node, (ast.AnnAssign, ast.For, ast.AsyncFor, ast.NamedExpr)):
            known.update(_stored(node.target))
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            known.update(_stored(node.optional_vars))
        elif isinstance(node, ast.ExceptHandler) and node.name is not None:
            known.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            known.update((a.asname or a.name).partition(".")[0] for a in node.names)
    edits = []
    for node in sorted((n for n in own if isinstance(n, ast.Assign)),
                       key=lambda n: (n.lineno, n.col_offset)):
        target = node.targets[0]
        if len(node.targets) == 1 and isinstance(target, ast.Name):
            if target.id not in known:  # x = ... -> x: Any = ...
                known.add(target.id)
                assert target.end_col_offset is not None
                text = f": {containers.get(target.id, 'Any')}"
                edits.append(_Edit(target.lineno, target.end_col_offset, target.lineno,
                                   target.end_col_offset, text))
            continue
        new = list(dict.fromkeys(name for t in node.targets for name in _stored(t)
                                 if name not in known))
        if new:  # a, b = ... -> a: Any; b: Any; a, b = ...
            known.update(new)
            edits.append(_Edit(node.lineno, node.col_offset, node.lineno, node.col_offset,
                               "".join(f"{name}: Any; " for name in new)))
    return edits


def _internal_scalars(root: ast.AST) -> frozenset[str]:
    """The variables in ``root`` that only ever hold an ``int`` (or only a ``bool``) the
    code computes itself: each assignment to the name, anywhere in ``root``, is a
    constant or ``+ - * // % << >> & | ^`` of such variables and constants (comparisons
    of them and ``not``: bools). Counters and flags (``i_gen``, ``loop_iteration``,
    ``in_frame``): mypyc keeps them as machine integers, and no value of the user's can
    reach them to be converted."""
    values: dict[str, list[ast.expr | None]] = collections.defaultdict(list)
    for node in ast.walk(root):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                simple = isinstance(target, ast.Name)
                for name in _stored(target):
                    values[name].append(node.value if simple else None)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
            values[name].append(ast.BinOp(ast.Name(name), node.op, node.value))
        else:
            for name in _other_bindings(node):
                values[name].append(None)
    kinds = {name: kind for name, exprs in values.items()
             if None not in exprs and (kind := _constant_kind(exprs)) is not None}
    changed = True
    while changed:  # the largest consistent set: drop names until every assignment fits
        changed = False
        for name, kind in list(kinds.items()):
            if any(_kind(expr, kinds) != kind for expr in values[name]):
                del kinds[name]
                changed = True
    return frozenset(kinds)


_DISPLAYS = {ast.List: "list[Any]", ast.ListComp: "list[Any]", ast.Dict: "dict[Any, Any]",
             ast.DictComp: "dict[Any, Any]", ast.Set: "set[Any]", ast.SetComp: "set[Any]"}


def _containers(root: ast.AST) -> dict[str, str]:
    """The variables in ``root`` that only ever hold a list (dict, set) the code makes
    itself: each assignment to the name, anywhere in ``root``, is a display or a
    comprehension of that kind (``result_all = []``). Their type is ``list[Any]``: mypyc
    appends to them directly, and their items stay ``Any``."""
    values: dict[str, list[str | None]] = collections.defaultdict(list)
    for node in ast.walk(root):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                kind = _DISPLAYS.get(type(node.value)) if isinstance(target, ast.Name) else None
                for name in _stored(target):
                    values[name].append(kind)
        elif not isinstance(node, ast.AugAssign):  # x += [...] keeps x a list
            for name in _other_bindings(node):
                values[name].append(None)
    return {name: kinds[0] for name, kinds in values.items()
            if kinds and kinds[0] is not None and len(set(kinds)) == 1}


def _other_bindings(node: ast.AST) -> list[str]:
    """Names ``node`` binds other than by ``=`` or ``+=``-like assignment."""
    if isinstance(node, (ast.AnnAssign, ast.For, ast.AsyncFor, ast.NamedExpr,
                         ast.comprehension)):
        return _stored(node.target)
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return _stored(node.optional_vars)
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, (ast.ExceptHandler, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef)) and node.name:
        return [node.name]
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return list(node.names)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).partition(".")[0] for a in node.names]
    return []


def _constant_kind(exprs: list[ast.expr | None]) -> str | None:
    """The kind of the first constant assigned, the guess the fixpoint starts from."""
    return next((_kind(e, {}) for e in exprs if isinstance(e, ast.Constant)), None)


def _kind(expr: ast.expr | None, kinds: dict[str, str]) -> str | None:
    """``"int"``, ``"bool"`` or None (anything else, or not known to be either)."""
    if isinstance(expr, ast.Constant):
        value = expr.value
        return "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else None
    if isinstance(expr, ast.Name):
        return kinds.get(expr.id)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, _INT_OPS):
        both = (_kind(expr.left, kinds), _kind(expr.right, kinds))
        return "int" if both == ("int", "int") else None
    if isinstance(expr, ast.UnaryOp):
        operand = _kind(expr.operand, kinds)
        if isinstance(expr.op, ast.Not):
            return "bool" if operand is not None else None
        return "int" if operand == "int" else None
    if isinstance(expr, ast.Compare):
        operands = [_kind(e, kinds) for e in (expr.left, *expr.comparators)]
        return "bool" if all(k == "int" for k in operands) else None
    if isinstance(expr, ast.BoolOp):
        return "bool" if all(_kind(e, kinds) == "bool" for e in expr.values) else None
    return None


# ----------------------------------------------------------------------------- helpers


def _stored(target: ast.expr) -> list[str]:
    """The names an assignment target binds (``a``, ``a, *b``; not ``x.a`` or ``x[a]``)."""
    return [n.id for n in ast.walk(target)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]


def _own_nodes(function: Function) -> list[ast.AST]:
    """The nodes of ``function``'s body, not those of functions or classes nested in it."""
    found: list[ast.AST] = []
    todo: list[ast.AST] = list(function.body)
    while todo:
        node = todo.pop()
        found.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                 ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))
    return found


def _is_async_generator(node: ast.AST) -> bool:
    return isinstance(node, ast.AsyncFunctionDef) and any(
        isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _own_nodes(node))


def _first_line(node: ast.stmt) -> int:
    """Where ``node`` starts: at its first decorator, if it has any."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _end_line(node: ast.stmt) -> int:
    assert node.end_lineno is not None
    return node.end_lineno


def _apply(lines: list[str], edits: list[_Edit]) -> str:
    """``lines`` with ``edits`` (which do not overlap) applied, last first."""
    data = [line.encode() for line in lines]
    for edit in sorted(edits, key=lambda e: (e.line, e.col), reverse=True):
        head = data[edit.line - 1][:edit.col]
        tail = data[edit.end_line - 1][edit.end_col:]
        replaced = head + edit.text.encode() + tail
        # every line stays where it is: the native module's tracebacks read out.py's
        before = b"".join(data[edit.line - 1:edit.end_line])
        assert replaced.count(b"\n") == before.count(b"\n"), edit
        data[edit.line - 1:edit.end_line] = replaced.splitlines(keepends=True)
    return b"".join(data).decode()
