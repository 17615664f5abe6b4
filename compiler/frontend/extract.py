"""Copy the ops of a graph, and everything they use, out of the user's source files.

For every function the graph runs (ops, in sub-graph and loop bodies too, and
a callable loop ``until``), the extractor copies the ``def`` from its file with
the ``@op`` decorator removed, then, transitively, every module-level
statement those copies read: helpers, classes, constants, and imports (which
become import lines of the generated module). It works on *statements*, not
values: the generated module re-executes the user's definitions in their
original order, so what a constant means cannot drift from what the user wrote.
Statements that bind nothing the copies read but change what they use
(``REG["k"] = f``, ``@register`` on a def, a ``for`` loop filling a table) are
found by :mod:`.effects` and copied too, or refused with their location; an
``if __name__ == "__main__":`` block never is.

Names live in one namespace, the generated module's: two different things
called ``clean`` in two files become ``clean`` and ``clean_2`` (first come,
first served, in graph order), and references in the copied code are
rewritten to match. Builtins, keywords and the generated module's own names
are never taken, so copied code cannot shadow them.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import keyword
import os
import symtable
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from compiler import sourcesplit
from compiler.errors import CompileError
from compiler.frontend import effects, transform
from compiler.frontend.load import is_user_file
from compiler.frontend.modinfo import (
    BUILTIN_NAMES,
    ImportedName,
    ModuleInfo,
    Statement,
    module_info,
    name_use,
)
from compiler.frontend.types import return_annotation
from operonx.core import dsl
from operonx.errors import GraphError
from operonx.ir.model import Graph, OpDef, SourceLoc, UntilExpr


@dataclass(frozen=True)
class CodeBlock:
    """One top-level statement of the generated module, copied from ``origin``."""

    name: str  # the (generated) name it defines; "" for a statement that binds nothing
    source: str
    origin: SourceLoc


@dataclass(frozen=True)
class Extraction:
    imports: tuple[str, ...]  # import lines, deduped, stdlib first then the rest, sorted
    blocks: tuple[CodeBlock, ...]  # definitions in an order that executes
    function_names: Mapping[Callable[..., Any], str]  # op fn / until fn -> generated name
    # Per function: module-level names as written in its module -> generated name,
    # for the ones that differ (use with compiler.frontend.types' ``renames=``).
    renames: Mapping[Callable[..., Any], Mapping[str, str]] = field(default_factory=dict)
    # Every user source file read (copied from, or checked for state changes): the CLI
    # refuses to write its output over any of them.
    sources: tuple[str, ...] = ()


# Names the code generator defines in every module: copied code must not take them.
GENERATED_NAMES = frozenset({
    "run", "run_sync", "stream", "main", "Inputs", "Result", "Frame", "SpanContext",
    "OperonxError", "GraphError", "InputError", "OpError", "LoopLimitExceeded",
})
# Imports the generator and the added annotations use: they keep their plain names.
_PREASSIGNED: Mapping[tuple[str, ...], str] = {
    ("from", "typing", "Any"): "Any",
    ("from", "collections.abc", "Iterator"): "Iterator",
    ("from", "collections.abc", "AsyncIterator"): "AsyncIterator",
    ("from", "collections.abc", "Mapping"): "Mapping",
    ("from", "typing", "TypedDict"): "TypedDict",
    ("module", "asyncio"): "asyncio",
    ("module", "json"): "json",
    ("module", "sys"): "sys",
    ("module", "time"): "time",
    ("module", "uvloop"): "uvloop",
}
_TYPING_KEYS = {"Any": ("from", "typing", "Any"),
                "Iterator": ("from", "collections.abc", "Iterator"),
                "AsyncIterator": ("from", "collections.abc", "AsyncIterator")}
_OPERONX_ROOTS = ("operonx",)

EntityKey = tuple[str, ...]


def module_level_names(extraction: Extraction) -> set[str]:
    """Every name the copied code and its imports bind at module level."""
    found: set[str] = set()
    for block in extraction.blocks:
        table = symtable.symtable(block.source, "<copied>", "exec")
        found.update(sym.get_name() for sym in table.get_symbols()
                     if sym.is_assigned() or sym.is_imported() or sym.is_namespace())
    for line in extraction.imports:
        for node in ast.parse(line).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update((a.asname or a.name).split(".")[0] for a in node.names)
    return found


def extract(graph: Graph, reserved: Iterable[str] = ()) -> Extraction:
    """Everything the generated module needs to define the functions ``graph`` runs.

    ``reserved`` adds names the code generator will define, on top of
    :data:`GENERATED_NAMES`.
    """
    return _Extractor(frozenset(reserved)).run(graph)


@dataclass(frozen=True)
class _Target:
    """A function the graph calls, and why (for messages)."""

    fn: Callable[..., Any]
    op: OpDef | None  # None for a loop's ``until``
    loop: Graph | None = None


def graph_functions(graph: Graph) -> list[_Target]:
    """Every op function and callable ``until`` of ``graph`` and its bodies, in graph order."""
    found: list[_Target] = []
    seen: set[int] = set()

    def visit(scope: Graph) -> None:
        for node in scope.nodes.values():
            if node.op is not None and id(node.op.fn) not in seen:
                seen.add(id(node.op.fn))
                found.append(_Target(node.op.fn, node.op))
            if node.body is not None:
                visit(node.body)
        until = scope.until
        if callable(until) and not isinstance(until, UntilExpr) and id(until) not in seen:
            seen.add(id(until))
            found.append(_Target(until, None, scope))

    visit(graph)
    return found


class _Extractor:
    def __init__(self, reserved: frozenset[str]) -> None:
        self.taken = set(BUILTIN_NAMES) | set(keyword.kwlist) | GENERATED_NAMES | reserved
        self.names: dict[EntityKey, str] = {}
        for key, name in _PREASSIGNED.items():
            self.names[key] = name
            self.taken.add(name)
        self.infos: dict[str, ModuleInfo] = {}
        self.imports: dict[EntityKey, ImportedName | None] = {}
        self.submodules: set[str] = set()
        self.copied: dict[tuple[str, int], CodeBlock | None] = {}  # None while being copied
        self.op_returns: dict[tuple[str, int], str] = {}
        self.module_edges: dict[str, list[str]] = {}
        # Per scanned file: (line, file) of each top-level import of a user module.
        self.user_imports: dict[str, list[tuple[int, str]]] = {}
        self.state_changes: set[tuple[str, int]] = set()  # slots copied by effects
        self.function_names: dict[Callable[..., Any], str] = {}
        self.renames: dict[Callable[..., Any], dict[str, str]] = {}
        self.suffix: dict[str, int] = {}  # desired name -> next ``_N`` to try (see _name)
        # Per module, computed once: each module-level name's place in ``bindings`` and
        # (kept up to date by _name) the ones whose generated name differs.
        self.binding_position: dict[str, dict[str, int]] = {}
        self.key_bindings: dict[EntityKey, list[tuple[str, str]]] = {}  # -> (file, name)
        self.module_renamed: dict[str, dict[str, str]] = {}
        self.renames_cache: dict[str, dict[str, str] | None] = {}  # None: changed since built

    # ------------------------------------------------------------------ driver

    def run(self, graph: Graph) -> Extraction:
        targets = graph_functions(graph)
        located = [(t, *self._locate(t)) for t in targets]
        for target, info, statement in located:
            if target.op is not None and statement is not None:
                self.op_returns[(info.file, statement.index)] = return_annotation(target.op)
        for target, info, statement in located:
            if statement is None:
                self._copy_until_lambda(target, info)
            else:
                self.function_names[target.fn] = self._name(
                    ("def", info.file, target.fn.__name__), target.fn.__name__)
                self._copy(info, statement)
            self.renames[target.fn] = self._module_renames(info)
        self._copy_state_changes(graph)
        self._check_import_order()
        return Extraction(self._import_lines(), self._ordered_blocks(),
                          dict(self.function_names), self.renames, tuple(self.infos))

    def _locate(self, target: _Target) -> tuple[ModuleInfo, Statement | None]:
        """The module and top-level ``def`` of a target (None: an ``until`` lambda)."""
        fn = target.fn
        loc = _fn_loc(fn)
        what = _describe(target)
        if fn.__name__ == "<lambda>" and target.op is not None:
            raise _refuse(f"{what} is a lambda; the compiler copies op source by name",
                               loc.file, loc.line, "define it with `def` and decorate it with @op")
        file = _source_file(fn)
        if file is None:
            raise _refuse(f"{what} has no source file (defined in exec() or a REPL?)",
                               loc.file if loc.line else None, loc.line or None,
                               "define it in a .py file that graph.py imports")
        free = getattr(getattr(fn, "__code__", None), "co_freevars", ())
        if free:
            raise _refuse(
                f"{what} is a closure over local variable(s) {', '.join(free)}; the compiled "
                "module cannot copy their values", loc.file, loc.line,
                "define it at module level and pass the values as op arguments or constants")
        info = self._info(file, fn.__module__)
        if fn.__name__ == "<lambda>":
            return info, None
        for statement in info.bindings.get(fn.__name__, ()):
            if statement.line == loc.line and statement.is_function:
                return info, statement
        raise _refuse(f"{what} is not defined at module level", loc.file, loc.line,
                           "move its `def` to the top level of its file")

    def _info(self, file: str, module_name: str) -> ModuleInfo:
        if file not in self.infos:
            module = sys.modules.get(module_name)
            package = getattr(module, "__package__", None)
            self.infos[file] = module_info(file, module_name, package)
        return self.infos[file]

    # -------------------------------------------------------------- namespace

    def _name(self, key: EntityKey, desired: str) -> str:
        """The generated module's name for an entity: ``desired``, or with a ``_N`` suffix."""
        if key in self.names:
            return self.names[key]
        candidate = desired
        if candidate in self.taken:
            # Names are never released: every ``desired_K`` below the last one handed out
            # is still taken, so resume there rather than at 2.
            n = self.suffix.get(desired, 2)
            while f"{desired}_{n}" in self.taken:
                n += 1
            self.suffix[desired] = n + 1
            candidate = f"{desired}_{n}"
        self.taken.add(candidate)
        self.names[key] = candidate
        for file, name in self.key_bindings.get(key, ()):
            self._note_rename(file, name, candidate)
        return candidate

    def _module_renames(self, info: ModuleInfo) -> dict[str, str]:
        """Module-level names of ``info`` as written -> generated name, where they differ.

        Maintained as names are generated (see _name) rather than rescanned per op, so a
        module defining N ops costs O(N), not O(N²); listed in ``bindings`` order.
        """
        file = info.file
        if file not in self.binding_position:
            keys: dict[str, EntityKey] = {}
            for name, statements in info.bindings.items():
                key: EntityKey = ("def", file, name)
                if statements and statements[-1].is_import:
                    imp = next(i for i in statements[-1].imports if i.bound == name)
                    key = _import_key(imp)
                keys[name] = key
                self.key_bindings.setdefault(key, []).append((file, name))
            self.binding_position[file] = {name: i for i, name in enumerate(keys)}
            self.module_renamed[file] = {}
            self.renames_cache[file] = None
            for name, key in keys.items():
                generated = self.names.get(key)
                if generated is not None:
                    self._note_rename(file, name, generated)
        cached = self.renames_cache[file]
        if cached is None:
            renamed = self.module_renamed[file]
            position = self.binding_position[file]
            cached = dict(sorted(renamed.items(), key=lambda item: position[item[0]]))
            self.renames_cache[file] = cached
        return cached  # shared by the module's ops until a new rename: read-only

    def _note_rename(self, file: str, name: str, generated: str) -> None:
        if generated != name:
            self.module_renamed[file][name] = generated
            self.renames_cache[file] = None

    # ---------------------------------------------------------------- copying

    def _copy(self, info: ModuleInfo, statement: Statement) -> None:
        """Copy one top-level statement and, first, everything it reads."""
        slot = (info.file, statement.index)
        if slot in self.copied:
            return
        self.copied[slot] = None  # mark first: recursive helpers refer to each other
        binds = {b: self._name(("def", info.file, b), b) for b in statement.binds}
        source = self._emit(info, statement, binds, self.op_returns.get(slot))
        name = next(iter(binds.values()), "")
        self.copied[slot] = CodeBlock(name, source, SourceLoc(info.file, statement.line))

    def _emit(self, info: ModuleInfo, statement: Statement, own: Mapping[str, str],
              top_return: str | None, node: cst.BaseStatement | None = None) -> str:
        """Resolve what ``statement`` (or ``node``, made from it) reads, then render it
        renamed and fully annotated.

        An ``@op`` function that needs neither is its own text without the decorator
        (:meth:`_plain_def`): no libcst tree is built for it.
        """
        # Its own lines, parsed once for what follows (the libcst tree only where needed).
        tree = statement.own_tree() if node is None and statement.index >= 0 else None
        plain = self._plain_def(info, statement, tree) if tree is not None else None
        if plain is None:
            node = node if node is not None else self._stripped(info, statement)
            use = name_use(_code_of(node, statement), tree)
        else:
            use = name_use(plain.read_text, tree)
        if use.global_writes:
            names = ", ".join(sorted(use.global_writes))
            raise _refuse(
                f"{_statement_what(statement)} assigns the module-level name(s) {names} through "
                "`global`; the compiled module has its own copy of them, so the write would not "
                "be seen by graph.py", info.file, statement.line,
                "return the value as an output (or keep state in a loop) instead")
        renames = {k: v for k, v in own.items() if k != v}
        for name in sorted(use.reads & set(own)):
            # ``COUNT += 1`` reads the COUNT an earlier statement bound: copy that one too.
            for other in info.bindings.get(name, ()):
                if other.index != statement.index:
                    self._copy(info, other)
        for name in sorted(use.reads - set(own)):
            generated = self._resolve(info, name, statement)
            if generated is not None and generated != name:
                renames[name] = generated
        clash = sorted(set(renames) & use.locals)
        if clash:
            raise _refuse(f"{clash[0]!r} is both a module-level name that must be renamed "
                               f"(to {renames[clash[0]]!r}) and a local name in "
                               f"{_statement_what(statement)}", info.file, statement.line,
                               "rename the local variable")
        annotate: bool | None = None
        if not renames and tree is not None:
            annotate = transform.needs_annotating(tree)
            if plain is not None and not annotate:
                return plain.text
        if node is None:
            node = self._stripped(info, statement)
        if renames:
            node = node.visit(transform.RenameGlobals(renames))  # type: ignore[assignment]
        annotator = transform.Annotator(top_return=top_return)
        if annotate is None:
            annotate = transform.needs_annotating(
                statement.own_code if not renames and statement.index >= 0 else _render(node))
        if annotate:
            node = node.visit(annotator)  # type: ignore[assignment]
        for typing_name in sorted(annotator.used):
            self.imports.setdefault(_TYPING_KEYS[typing_name], None)
        return _render(node)

    def _stripped(self, info: ModuleInfo, statement: Statement) -> cst.BaseStatement:
        """The statement's libcst tree without its ``@op`` decorators."""
        return transform.strip_decorators(statement.node, lambda d: self._is_op(d, info))

    def _plain_def(self, info: ModuleInfo, statement: Statement,
                   tree: ast.Module) -> _PlainDef | None:
        """An ``@op`` function as libcst would print it without its decorator, cut from
        its own text (``tree``: parsed, numbered from its first line); None where the two
        could differ.

        libcst prints a statement as it was written, but in a module of its own, which
        indents blocks with four spaces (where the file's first block is indented
        otherwise, every block that follows it would be re-indented): so only a function
        with its one decorator, ``@op`` or ``@op(...)``, starting its first line, and its
        body indented four spaces (or on the ``def`` line). Parsing and printing a libcst
        tree per op was most of the time a graph of thousands of ops took to copy.
        """
        fn = tree.body[0] if statement.is_function and len(tree.body) == 1 else None
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or len(
                fn.decorator_list) != 1:
            return None
        decorator = fn.decorator_list[0]
        cut = decorator.end_lineno
        if (decorator.lineno != 1 or cut is None
                or not self._is_op_path(_ast_decorator_path(decorator), info)):
            return None
        lines = sourcesplit.lines_of(statement.own_code)
        # Between the decorator and the ``def``, only comments (a ``)`` of ``@(op\n)`` is not).
        if any(line.strip() and not line.lstrip().startswith("#")
               for line in lines[cut:fn.lineno - 1]):
            return None
        body_line = fn.body[0].lineno
        if body_line != fn.lineno:  # libcst's indent: the first indented line's
            first = lines[body_line - 1]
            if not (first.startswith("    ") and first[4:5] not in (" ", "\t", "\f")):
                return None
        rest = "".join(lines[cut:])
        start, stop = statement.own
        text = (statement.code[:start] + rest + statement.code[stop:]).lstrip("\n")
        return _PlainDef(text if text.endswith("\n") else text + "\n", "\n" * cut + rest)

    def _resolve(self, info: ModuleInfo, name: str, user: Statement) -> str | None:
        """Make the module-level ``name`` of ``info`` available; its generated name.

        None for a builtin. Raises for names the compiled module cannot have.
        """
        statements = info.bindings.get(name, ())
        if statements and all(s.is_import for s in statements):
            imported = next(i for i in statements[-1].imports if i.bound == name)
            return self._resolve_import(info, imported, user)
        if statements:
            for statement in statements:
                self._copy(info, statement)
            return self._name(("def", info.file, name), name)
        if name in BUILTIN_NAMES:
            return None
        line = _line_of_name(info, user, name)
        if info.star_imports:
            raise _refuse(
                f"{name!r} is not defined in {_short(info.file)}; it may come from "
                f"`from {info.star_imports[0]} import *`, which the compiler cannot follow",
                info.file, line, f"import it by name: from {info.star_imports[0]} import {name}")
        raise _refuse(f"name {name!r} used by {_statement_what(user)} is not defined at "
                           f"module level in {_short(info.file)}", info.file, line,
                           "define or import it at the top level of the file")

    def _resolve_import(self, info: ModuleInfo, imported: ImportedName,
                        user: Statement) -> str | None:
        line = _line_of_name(info, user, imported.bound)
        if imported.root_module in _OPERONX_ROOTS:
            raise _refuse(
                f"{_statement_what(user)} uses {imported.bound!r} from {imported.module} at run "
                "time; the compiled module does not import operonx", info.file, line,
                "use operonx only to build the graph, not inside op bodies")
        user_file = _user_module_file(imported.module)
        if user_file is None:
            key = _import_key(imported)
            self.imports.setdefault(key, imported)
            is_dotted = imported.attr is None and "." in imported.module
            if is_dotted and imported.bound == imported.root_module:
                self.submodules.add(imported.module)  # import a.b: binds a, needs a.b loaded
            return self._name(key, imported.bound)  # the user's alias is kept
        target = sys.modules[imported.module]
        value = getattr(target, imported.attr, None) if imported.attr else target
        if imported.attr is None or isinstance(value, types.ModuleType):
            raise _refuse(
                f"{_statement_what(user)} uses the module {imported.bound!r} of your project; "
                "the compiled module is standalone and cannot import it", info.file, line,
                f"import the names it needs: from {imported.module} import name")
        other = self._info(user_file, imported.module)
        self.module_edges.setdefault(info.file, []).append(other.file)
        return self._resolve(other, imported.attr, _first_use(other, imported.attr, user))

    # ---------------------------------------------------- state changed elsewhere

    def _copy_state_changes(self, graph: Graph) -> None:
        """Copy the top-level statements that change what the copied code uses.

        ``REG["k"] = f``, ``REG.update(...)``, ``@register def f`` bind nothing the ops
        read, so following names never reaches them (see :mod:`.effects`). Repeated
        until nothing more changes, since each copy brings state of its own.
        """
        while True:
            blocks = [block.source for block in self.copied.values() if block is not None]
            analysis = effects.Analysis(effects.State(self._state_roots()),
                                        effects.imports_at_run_time(blocks),
                                        self._copied_names())
            found = [(info, statement, change) for info in self._scanned_modules(graph)
                     for statement, change in self._changes_in(info, analysis)]
            if not found:
                return
            for info, statement, change in found:
                self._copy_change(info, statement, change)

    def _changes_in(self, info: ModuleInfo,
                    analysis: effects.Analysis) -> Iterator[tuple[Statement, effects.Change]]:
        namespace = vars(sys.modules[info.module_name])
        for statement in info.statements:
            if (info.file, statement.index) in self.copied or statement.main_guard:
                continue
            try:
                change = analysis.statement_change(info, statement, namespace)
            except effects.Undecidable as undecidable:
                raise _refuse(
                    f"cannot tell whether this statement changes names the compiled ops use: "
                    f"it {undecidable.what}", info.file, undecidable.line or statement.line,
                    "build the values the ops use with plain module-level statements") from None
            if change is not None:
                yield statement, change

    def _copy_change(self, info: ModuleInfo, statement: Statement,
                     change: effects.Change) -> None:
        self.state_changes.add((info.file, statement.index))
        try:
            self._copy(info, statement)
        except CompileError as err:
            raise _refuse(
                f"this statement {change.what}, changing state the compiled ops use, so the "
                f"compiled module must run it too, but it cannot be copied: {err.message}",
                info.file, change.line or statement.line,
                "write it so that it can be copied (at module level, outside the graph's "
                "`with` block, without operonx), or keep it away from what the ops use"
            ) from err

    def _check_import_order(self) -> None:
        """Refuse what the copy cannot order as the user's modules ran it.

        The compiled module runs each file's copies as one block, after the blocks of
        the files it imports; Python ran the importer's statements *above* an import
        before the imported module. That difference shows only when the imported side
        changes state (a registration: it may overwrite, or be seen by, what runs
        before it) and the importer has copied code above the import that runs at
        import time (anything but a plain ``def``). Then it is refused, at the import.
        """
        changes: dict[str, bool] = {}
        for file, imports in self.user_imports.items():
            info = self.infos[file]
            runs = sorted(info.statements[i].line for (f, i), block in self.copied.items()
                          if f == file and block is not None and i >= 0
                          and self._runs_at_import(info, info.statements[i]))
            for line, other in imports:
                if runs and runs[0] < line and self._changes_state(other, frozenset({file}),
                                                                   changes):
                    raise _refuse(
                        f"this import of {_short(other)} comes after line {runs[0]}, which "
                        f"the compiled module copies; {_short(other)} changes state, and the "
                        f"compiled module runs its copies before all of {_short(file)}'s, so "
                        "the two could run in another order than here", file, line,
                        f"move the import above line {runs[0]}")

    def _changes_state(self, file: str, trail: frozenset[str], known: dict[str, bool]) -> bool:
        """Whether ``file``, or a user module it imports, has a copied state change.

        (A method, not a closure: a recursive closure is a reference cycle, which would
        keep the extractor and every tree it read alive until the cyclic GC runs.)
        """
        if file not in known:
            known[file] = any(f == file for f, _ in self.state_changes) or any(
                other not in trail and self._changes_state(other, trail | {file}, known)
                for _, other in self.user_imports.get(file, []))
        return known[file]

    def _runs_at_import(self, info: ModuleInfo, statement: Statement) -> bool:
        """Anything but a plain ``def`` (``@op`` aside) runs code when the module does."""
        node = transform.strip_decorators(statement.node, lambda d: self._is_op(d, info))
        return not (isinstance(node, cst.FunctionDef) and not node.decorators)

    def _copied_names(self) -> dict[str, set[str]]:
        names: dict[str, set[str]] = {}
        for (file, index), block in self.copied.items():
            if block is not None and index >= 0:
                names.setdefault(file, set()).update(self.infos[file].statements[index].binds)
        return names

    def _state_roots(self) -> Iterator[object]:
        """The values of every name the copied code uses: copied statements' and imports'."""
        for (file, index), block in self.copied.items():
            if block is None or index < 0:
                continue
            info = self.infos[file]
            namespace = vars(sys.modules[info.module_name])
            for name in info.statements[index].binds:
                if name in namespace:
                    yield namespace[name]
        for imported in self.imports.values():
            if imported is None:
                continue
            if imported.attr is None:
                yield sys.modules.get(imported.root_module if imported.bound ==
                                      imported.root_module else imported.module)
                continue
            module = sys.modules.get(imported.module)
            yield getattr(module, imported.attr, None)

    def _scanned_modules(self, graph: Graph) -> list[ModuleInfo]:
        """The graph's own module, every module copied from, and the user's modules they
        import (a plugin module imported for its registrations, say)."""
        pending = list(self.infos.values())
        own = _graph_module(graph)
        if own is not None:
            pending.insert(0, self._info(*own))
        seen: dict[str, ModuleInfo] = {}
        while pending:
            info = pending.pop(0)
            if info.file in seen:
                continue
            seen[info.file] = info
            imported_files: list[str] = []
            for statement in info.statements:
                for imported in statement.imports:
                    names = [imported.module]
                    if imported.attr is not None:
                        names.append(f"{imported.module}.{imported.attr}")
                    for name in names:
                        file = _user_module_file(name)
                        if file is None or file == info.file:
                            continue
                        imported_files.append(file)
                        self.user_imports.setdefault(info.file, []).append(
                            (statement.line, file))
                        if file not in seen:
                            pending.append(self._info(file, name))
            # An imported module's code ran before the importer's, in import order: so do
            # its copies (_file_order visits a file's edges in this order).
            edges = self.module_edges.setdefault(info.file, [])
            edges[:] = list(dict.fromkeys([*imported_files, *edges]))
        return list(seen.values())

    def _is_op(self, decorator: cst.Decorator, info: ModuleInfo) -> bool:
        """Is this decorator ``operonx``'s ``op``, however it was imported?"""
        return self._is_op_path(transform.decorator_path(decorator), info)

    def _is_op_path(self, path: str | None, info: ModuleInfo) -> bool:
        """Is the decorator spelt ``path`` (``op``, ``core.op``) ``operonx``'s ``op``?"""
        module = sys.modules.get(info.module_name)
        if path is None or module is None:
            return False
        value: Any = vars(module)
        for i, part in enumerate(path.split(".")):
            value = value.get(part) if i == 0 else getattr(value, part, None)
        return value is dsl.op

    def _copy_until_lambda(self, target: _Target, info: ModuleInfo) -> None:
        """Turn ``until=lambda state: ...`` into a named function of the generated module."""
        fn = target.fn
        lam = _find_lambda(info, fn, _describe(target))
        loop_name = target.loop.name if target.loop is not None else "loop"
        name = self._name(("until", info.file, str(fn.__code__.co_firstlineno)),
                          f"{loop_name}_until")
        params = cst.Module([]).code_for_node(lam.params)
        body = cst.Module([]).code_for_node(lam.body)
        node = cst.parse_statement(f"def {name}({params}):\n    return {body}\n")
        line = fn.__code__.co_firstlineno
        statement = Statement(-line, line, (name,), parsed=node)
        source = self._emit(info, statement, {name: name}, None, node)
        self.copied[(info.file, -line)] = CodeBlock(name, source, SourceLoc(info.file, line))
        self.function_names[fn] = name

    # ---------------------------------------------------------------- output

    def _import_lines(self) -> tuple[str, ...]:
        lines = {_import_line(key, self.names[key]) for key in self.imports}
        lines |= {f"import {m}" for m in self.submodules}
        return tuple(sorted(lines, key=_import_sort_key))

    def _ordered_blocks(self) -> tuple[CodeBlock, ...]:
        """Dependencies' files first; within a file, the user's own statement order."""
        rank = {file: i for i, file in enumerate(self._file_order())}
        ordered = sorted(((slot, block) for slot, block in self.copied.items() if block),
                         key=lambda item: (rank[item[0][0]], item[1].origin.line, item[0][1]))
        return tuple(block for _, block in ordered if block is not None)

    def _file_order(self) -> list[str]:
        order: dict[str, None] = {}
        visiting: set[str] = set()
        for file, _ in self.copied:
            self._visit_file(file, order, visiting)
        return list(order)

    def _visit_file(self, file: str, order: dict[str, None], visiting: set[str]) -> None:
        """Depth first: a file after the files it imports (see _changes_state on closures)."""
        if file in visiting or file in order:
            return
        visiting.add(file)
        for dep in self.module_edges.get(file, []):
            self._visit_file(dep, order, visiting)
        order[file] = None


# ------------------------------------------------------------------- helpers


def _refuse(message: str, file: str | None, line: int | None,
            hint: str | None = None) -> CompileError:
    """A refusal to compile the user's code, located at its file:line (exit code 1)."""
    return CompileError(message, file, line, hint=hint)


@dataclass(frozen=True)
class _PlainDef:
    """An ``@op`` function copied as text: ``text`` is its copy, ``read_text`` its own
    lines with the decorator's blanked (what :func:`name_use` reads)."""

    text: str
    read_text: str


def _ast_decorator_path(decorator: ast.expr) -> str | None:
    """``@op`` -> "op", ``@operonx.core.op(name=...)`` -> "operonx.core.op"; else None
    (as :func:`compiler.frontend.transform.decorator_path`, on an ``ast`` tree)."""
    expr = decorator.func if isinstance(decorator, ast.Call) else decorator
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return ".".join(reversed(parts))


def _as_module(node: cst.BaseStatement) -> cst.Module:
    assert isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
    return cst.Module(body=[node])


def _fn_loc(fn: Callable[..., Any]) -> SourceLoc:
    code = getattr(fn, "__code__", None)
    if code is None:
        return SourceLoc("<unknown>", 0)
    return SourceLoc(code.co_filename, code.co_firstlineno)


def _source_file(fn: Callable[..., Any]) -> str | None:
    try:
        file = inspect.getsourcefile(fn)
    except TypeError:
        return None
    return file if file is not None and _readable(file) else None


def _readable(file: str) -> bool:
    try:
        with open(file, encoding="utf-8"):
            return True
    except OSError:
        return False


def _describe(target: _Target) -> str:
    if target.op is not None:
        return f"op {target.op.name!r}"
    loop = target.loop.name if target.loop is not None else "?"
    return f"the until= of loop {loop!r}"


def _statement_what(statement: Statement) -> str:
    node = statement.node
    if isinstance(node, cst.FunctionDef):
        return f"function {node.name.value!r}"
    if isinstance(node, cst.ClassDef):
        return f"class {node.name.value!r}"
    if not statement.binds:
        return "this statement"
    return f"the statement defining {', '.join(statement.binds)}"


def _short(file: str) -> str:
    return file.rsplit("/", 1)[-1]


def _code_of(node: cst.BaseStatement, statement: Statement) -> str:
    """The code of ``node``: ``statement`` with some of its decorators removed.

    Cut from the statement's own text (the removed decorators' lines blanked) rather than
    printed by libcst: only names are read from it, and printing is slow.
    """
    if statement.parsed is not None or not isinstance(node, cst.FunctionDef):
        return _as_module(node).code
    original = statement.node
    assert isinstance(original, cst.FunctionDef)
    kept = {id(d) for d in node.decorators}
    removed = [i for i, d in enumerate(original.decorators) if id(d) not in kept]
    if not removed:
        return statement.own_code
    tree = statement.own_tree().body[0]  # numbered from the statement's first line
    assert isinstance(tree, (ast.FunctionDef, ast.AsyncFunctionDef))
    lines = statement.own_code.split("\n")
    for i in removed:
        decorator = tree.decorator_list[i]
        for line in range(decorator.lineno, (decorator.end_lineno or decorator.lineno) + 1):
            lines[line - 1] = ""
    return "\n".join(lines)


def _render(node: cst.BaseStatement) -> str:
    code = _as_module(node).code
    return code.lstrip("\n")


def _line_of_name(info: ModuleInfo, statement: Statement, name: str) -> int:
    """The line where ``statement`` first mentions ``name`` (its first line if unknown)."""
    if statement.index < 0:
        return statement.line
    try:
        nodes = statement.ast_nodes()
    except SyntaxError:
        return statement.line
    lines = [n.lineno for top in nodes for n in ast.walk(top)
             if isinstance(n, ast.Name) and n.id == name]
    return min(lines) if lines else statement.line


def _first_use(info: ModuleInfo, name: str, fallback: Statement) -> Statement:
    statements = info.bindings.get(name)
    return statements[0] if statements else fallback


def _find_lambda(info: ModuleInfo, fn: Callable[..., Any], what: str) -> cst.Lambda:
    code = fn.__code__
    wanted = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    candidates = [lam for lam in info.lambdas_at(code.co_firstlineno)
                  if tuple(p.name.value for p in lam.params.params) == wanted]
    if len(candidates) != 1:
        raise _refuse(f"cannot locate the source of {what} (a lambda)", info.file,
                           code.co_firstlineno,
                           "use an until string or a named function: until=my_predicate")
    return candidates[0]


def _graph_module(graph: Graph) -> tuple[str, str] | None:
    """(file, module name) of the module that binds ``graph`` at its top level, if any."""
    file = os.path.abspath(graph.loc.file)
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path is None or os.path.abspath(path) != file:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, dsl.GraphOp) and not value.is_nested:
                with contextlib.suppress(GraphError):
                    if value.ir is graph:
                        return file, name
    return None


def _user_module_file(module: str) -> str | None:
    """The file of ``module`` when it is part of the user's project (then it is copied from)."""
    loaded = sys.modules.get(module)
    file = getattr(loaded, "__file__", None)
    if file is None or not is_user_file(file) or not file.endswith(".py"):
        return None
    return str(file)


def _import_key(imported: ImportedName) -> EntityKey:
    if imported.attr is not None:
        return ("from", imported.module, imported.attr)
    if imported.bound == imported.root_module:
        return ("module", imported.root_module)  # import a / import a.b: binds a
    return ("module", imported.module)  # import a.b as c


def _import_line(key: EntityKey, name: str) -> str:
    if key[0] == "from":
        _, module, attr = key
        return f"from {module} import {attr}" + (f" as {name}" if name != attr else "")
    module = key[1]
    return f"import {module}" + (f" as {name}" if name != module else "")


def _import_sort_key(line: str) -> tuple[int, str, str]:
    module = line.split()[1]
    is_stdlib = module.split(".")[0] in sys.stdlib_module_names
    return (0 if is_stdlib else 1, module, line)

