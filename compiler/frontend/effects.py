"""Module-level statements that change what the copied code sees without defining it.

The extractor copies the statements that *bind* the names the ops read. A
module can change those names' objects afterwards without binding anything:
``REG["k"] = f``, ``REG.update(...)``, ``HANDLERS.append(h)``, a ``for`` loop
filling a table, ``@register`` on a function whose decorator stores it in
``REG``. Leaving such a statement out gives the compiled op an emptier registry
than the Engine's — a ``KeyError``, or a different result — so every top-level
statement the extractor did not copy is checked here, conservatively:

* *state* is every object the copied code can reach: the values of the names
  the copied statements bind and of the imports they use, and what those
  containers and the user's objects hold. It is read from the user's real,
  imported modules, so an alias (``ALIAS = REG``, ``SUB = REG["group"]``) is
  state too. Numbers, strings and other immutable scalars never are;
* a statement changes state when the code it runs on import assigns or deletes
  through a state object (``REG[k] = ...``, ``CFG.x = ...``), calls a method of
  one (``REG.update``, ``random.seed``), passes one to a call other than a few
  builtins that neither keep nor change their arguments (``len``, ``print``...),
  or calls the user's code (a function, a class, a decorator, a base class)
  that *reads* state: called code is not followed value by value, so inside it
  reading counts as changing;
* calls of ``@op`` functions inside a ``with GraphOp(...)`` block only build
  the graph, and ``operonx`` objects are never state;
* ``if __name__ == "__main__":`` blocks do not run on import: never copied;
* ``exec``, ``eval``, ``globals()``, ``locals()`` and ``vars()`` can change
  any name: where the copy reads a module that calls them, nothing can be
  decided, and the compiler refuses (:class:`Undecidable`);
* the import machinery (``sys.path``, ``sys.modules``, ...) only matters to code
  that imports at run time: a ``sys.path.insert(...)`` is a change only when
  some copied code contains an ``import`` or uses ``__import__``/``importlib``
  (the compiled module's own imports are of libraries, which it names exactly).
"""

from __future__ import annotations

import ast
import builtins
import collections
import inspect
import itertools
import os
import sys
import textwrap
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from compiler.frontend.load import is_user_file
from compiler.frontend.modinfo import ModuleInfo, Statement, is_main_guard

# Builtins that neither keep nor change their arguments, nor call them back (``key=``
# aside, checked separately). Iterating an argument is allowed: a generator's code is
# part of the statement and is checked on its own.
PURE_BUILTINS = frozenset({
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "complex",
    "dict", "divmod", "enumerate", "float", "format", "frozenset", "hasattr", "hash", "hex",
    "id", "int", "isinstance", "issubclass", "len", "list", "max", "min", "oct", "ord",
    "pow", "print", "range", "repr", "reversed", "round", "set", "sorted", "str", "sum",
    "tuple", "type", "zip",
})
# They can rebind or change any module-level name: nothing is decidable past them.
UNDECIDABLE_BUILTINS = frozenset({"exec", "eval", "globals", "locals", "vars"})
# Methods that only read, on the builtin containers (and nothing else: on an unknown
# type ``get`` may well change state).
READ_ONLY_METHODS = frozenset({
    "get", "keys", "values", "items", "copy", "count", "index", "issubset", "issuperset",
    "isdisjoint", "union", "intersection", "difference", "symmetric_difference",
    "startswith", "endswith", "format", "join", "split", "strip", "lower", "upper",
})
_CONTAINERS = (dict, list, tuple, set, frozenset, collections.deque)
_IMPORT_MACHINERY = frozenset({"path", "meta_path", "path_hooks", "path_importer_cache",
                               "modules"})
_SCALARS = (type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis))
_REACH_LIMIT = 200_000  # objects visited when collecting state; past it, roots only
_MISSING = object()


@dataclass(frozen=True)
class Change:
    """Why a top-level statement may change state the copied code uses."""

    line: int  # absolute line in the statement's file
    what: str  # e.g. "assigns into REG", "calls register(), which uses REG"


class Undecidable(Exception):
    """A statement whose effect on the copied code's names cannot be known."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what


# ------------------------------------------------------------------------- state


class State:
    """The objects the copied code can reach, by identity."""

    def __init__(self, roots: Iterable[object]) -> None:
        self.ids: set[int] = set()
        self._keep: list[object] = []  # ids are only stable while the objects live
        pending = collections.deque(v for v in roots if _may_hold_state(v))
        visited = 0
        while pending:
            value = pending.popleft()
            if id(value) in self.ids:
                continue
            self.ids.add(id(value))
            self._keep.append(value)
            visited += 1
            if visited < _REACH_LIMIT:
                pending.extend(v for v in _held(value) if _may_hold_state(v))

    def holds(self, value: object) -> bool:
        return value is not _MISSING and _may_hold_state(value) and id(value) in self.ids


def _may_hold_state(value: object) -> bool:
    if isinstance(value, _SCALARS):
        return False
    if isinstance(value, (tuple, frozenset)):
        return any(_may_hold_state(v) for v in _items(value))
    return not _is_operonx(value)


def _held(value: object) -> Iterator[object]:
    """What a container, or an object of the user's own classes, holds.

    Read through the builtin types' own methods and ``__dict__``: a subclass's
    overridden ``__iter__`` or ``keys`` is user code, never run at compile time.
    """
    if isinstance(value, dict):
        yield from dict.keys(value)
        yield from dict.values(value)
    elif isinstance(value, _CONTAINERS):
        yield from _items(value)
    elif isinstance(value, types.MethodType | types.BuiltinMethodType):
        owner = value.__self__
        if not isinstance(owner, types.ModuleType):  # len.__self__ is builtins
            yield owner
    elif isinstance(value, type) and _is_user_object(value):
        yield from list(vars(value).values())
    elif not isinstance(value, types.ModuleType | types.FunctionType) and _is_user_object(
            type(value)):
        try:
            attributes = object.__getattribute__(value, "__dict__")
        except (AttributeError, TypeError):  # __slots__, or no instance dict
            return
        if isinstance(attributes, dict):
            yield from list(dict.values(attributes))


def _items(value: object) -> Iterator[object]:
    """The items of a list, tuple, set, frozenset or deque, by the base type's iterator."""
    for base in _CONTAINERS:
        if isinstance(value, base):
            iterate: Any = base.__iter__
            return iter(list(iterate(value)))
    return iter(())


def is_data(value: object) -> bool:
    """A value whose contents can change (not code: a module, function, class or method)."""
    return not isinstance(value, (types.ModuleType, types.FunctionType, types.MethodType,
                                  types.BuiltinFunctionType, type))


def _is_operonx(value: object) -> bool:
    module = getattr(type(value), "__module__", "") or ""
    if isinstance(value, (types.ModuleType, types.FunctionType, type)):
        module = getattr(value, "__name__" if isinstance(value, types.ModuleType)
                         else "__module__", "") or ""
    return module.split(".")[0] == "operonx"


def _is_user_code(value: object) -> bool:
    """A function, method or class defined in one of the user's files."""
    if isinstance(value, types.MethodType):
        value = value.__func__
    if isinstance(value, types.FunctionType):
        return is_user_file(value.__code__.co_filename)
    return isinstance(value, type) and _is_user_object(value)


def _is_user_object(value: object) -> bool:
    """A class (or an object's class) defined in one of the user's files."""
    module = sys.modules.get(getattr(value, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    return file is not None and is_user_file(file)


# ------------------------------------------------------------------------ scopes


@dataclass
class _Frame:
    kind: str  # "module", "function", "class", "comprehension"
    locals: set[str]
    globals: set[str]


def _bindings(body: Iterable[ast.AST]) -> tuple[set[str], set[str]]:
    """Names a scope binds (its locals) and names it declares ``global``."""
    bound: set[str] = set()
    declared: set[str] = set()
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, (ast.Lambda, *_COMPREHENSIONS)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, ast.Global):
            declared.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            bound.update(node.names)
        stack.extend(ast.iter_child_nodes(node))
    return bound - declared, declared


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _params(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


def _is_global(name: str, frames: list[_Frame]) -> bool:
    """Python's rule: the innermost scope, then enclosing *function* scopes, then the module."""
    innermost = frames[-1]
    if name in innermost.globals:
        return True
    if innermost.kind != "module" and name in innermost.locals:
        return False
    for frame in reversed(frames[:-1]):
        if frame.kind in ("function", "comprehension") and name in frame.locals:
            return False
    return True


# ---------------------------------------------------------------------- analysis


class Analysis:
    """Decides, per top-level statement, whether it changes the copied code's state."""

    def __init__(self, state: State, imports_at_run_time: bool = True,
                 copied_names: Mapping[str, Iterable[str]] | None = None) -> None:
        self.state = state
        self.imports_at_run_time = imports_at_run_time
        # file -> module-level names the copied statements bind (ints and strings too,
        # which ``state`` cannot tell apart by identity).
        self._copied = {os.path.abspath(f): frozenset(n)
                        for f, n in (copied_names or {}).items()}
        self._called: dict[int, str | None] = {}  # id(code or class) -> what it uses, or None
        self._in_progress: set[int] = set()

    def is_copied(self, file: str | None, name: str) -> bool:
        """Does a copied statement of ``file`` bind ``name``?"""
        return file is not None and name in self._copied.get(os.path.abspath(file), ())

    def statement_change(self, info: ModuleInfo, statement: Statement,
                         namespace: Mapping[str, Any]) -> Change | None:
        """How ``statement`` (not copied) may change state, or None when it cannot."""
        nodes = statement.own_tree().body  # numbered from its first line: see line_offset
        if len(nodes) == 1 and is_main_guard(nodes[0]):
            return None
        walker = _Walker(self, namespace, follow_bodies=False, file=info.file,
                         line_offset=statement.line - 1)
        for node in nodes:
            found = walker.run(node)
            if found is not None:
                return found
        return None

    def called_code_uses_state(self, value: object) -> str | None:
        """For the user's function or class ``value``: the state it reads, or None."""
        target: Any = getattr(value, "fn") if _is_op(value) else value  # noqa: B009
        if isinstance(target, types.MethodType):
            target = target.__func__
        key = id(getattr(target, "__code__", target))
        if key in self._called:
            return self._called[key]
        if key in self._in_progress:
            return None  # a recursive call: what the outer call finds is the answer
        self._in_progress.add(key)
        try:
            found = self._scan_called(target)
        finally:
            self._in_progress.discard(key)
        self._called[key] = found
        return found

    def _scan_called(self, target: Any) -> str | None:
        if isinstance(target, type):
            namespace: Mapping[str, Any] = vars(sys.modules[target.__module__])
        else:
            namespace = getattr(target, "__globals__", {})
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(target)))
            node = tree.body[0]
        except (OSError, TypeError, SyntaxError, IndexError):
            # No source, or none that parses alone (a lambda inside a dict literal, say):
            # read the names its compiled code uses instead, every one a possible read.
            return self._scan_code(target, namespace)
        walker = _Walker(self, namespace, follow_bodies=True, file=inspect.getfile(target))
        found = walker.run(node)
        return found.what if found is not None else None

    def _scan_code(self, target: Any, namespace: Mapping[str, Any]) -> str | None:
        """What the compiled code of ``target`` may reach, by the names it mentions."""
        codes = [getattr(target, "__code__", None)]
        if isinstance(target, type):
            codes = [getattr(v, "__code__", None) for v in vars(target).values()]
        names: set[str] = set()
        while codes:
            code = codes.pop()
            if isinstance(code, types.CodeType):
                names.update(code.co_names)
                codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        for name in sorted(names):
            if name in UNDECIDABLE_BUILTINS and name not in namespace:
                raise Undecidable(0, f"calls {name}(), which can change any module-level name")
            value = namespace.get(name, _MISSING)
            if self.state.holds(value):
                return f"uses {name}"
            if value is not _MISSING and (_is_op(value) or _is_user_code(value)):
                used = self.called_code_uses_state(value)
                if used is not None:
                    return f"calls {name}(), which {used}"
        return None


def _is_op(value: object) -> bool:
    from operonx.core.dsl import Op

    return isinstance(value, Op)


class _Walker:
    """Walks the code a statement (or a called function) runs, looking for a state change."""

    def __init__(self, analysis: Analysis, namespace: Mapping[str, Any], *,
                 follow_bodies: bool, file: str, line_offset: int = 0) -> None:
        self.analysis = analysis
        self.line_offset = line_offset  # added to the trees' line numbers (see _line)
        self.state = analysis.state
        self.namespace = namespace
        self.follow_bodies = follow_bodies  # called code: bodies may run too
        self.file = file
        self.frames: list[_Frame] = []
        self.parents: dict[int, ast.AST] = {}
        self.graph_block = False

    def run(self, node: ast.stmt) -> Change | None:
        self._index(node)
        self.frames = [_Frame("module", set(), set())]
        if self.follow_bodies:
            # The whole definition runs on a call: its own statements in its own scope.
            return self._scope(node)
        return self._stmt(node)

    # --------------------------------------------------------------- traversal

    def _scope(self, node: ast.AST) -> Change | None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bound, declared = _bindings(node.body)
            self.frames.append(_Frame("function", bound | _params(node.args), declared))
            try:
                return self._each([*node.args.defaults, *filter(None, node.args.kw_defaults),
                                   *node.body])
            finally:
                self.frames.pop()
        if isinstance(node, ast.ClassDef):
            bound, declared = _bindings(node.body)
            self.frames.append(_Frame("class", bound, declared))
            try:
                return self._each(node.body)
            finally:
                self.frames.pop()
        return self._stmt(node)

    def _each(self, nodes: Iterable[ast.AST]) -> Change | None:
        for node in nodes:
            found = self._stmt(node)
            if found is not None:
                return found
        return None

    def _stmt(self, node: ast.AST) -> Change | None:
        """Check ``node`` and everything below it that runs, in the current scope.

        Below the forms :meth:`_checked` handles, the walk keeps a stack of its own rather
        than recursing: expressions nest as deep as the source does (a ``START >> n0 >>
        ... >> END`` chain of a thousand ops is a thousand nested ``BinOp`` nodes). The
        order is the recursive walk's: a node, then each child's subtree in turn.
        """
        stack = [node]
        while stack:
            node = stack.pop()
            found, descend = self._checked(node)
            if found is not None:
                return found
            if descend:
                stack.extend(reversed(list(ast.iter_child_nodes(node))))
        return None

    def _checked(self, node: ast.AST) -> tuple[Change | None, bool]:
        """What checking ``node`` itself finds, and whether its children are still to be
        walked (they are for every node but the forms that walk their own parts)."""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found = self._each([*node.decorator_list, *node.args.defaults,
                                *filter(None, node.args.kw_defaults)])
            found = found or self._decorators(node.decorator_list)
            if found is None and self.follow_bodies:
                found = self._scope(node)
            return found, False
        if isinstance(node, ast.ClassDef):
            found = self._each([*node.decorator_list, *node.bases,
                                *(k.value for k in node.keywords)])
            found = found or self._decorators(node.decorator_list)
            found = found or self._bases([*node.bases, *(k.value for k in node.keywords)])
            return found or self._scope(node), False  # a class body runs at definition
        if isinstance(node, ast.Lambda):
            found = self._each([*node.args.defaults, *filter(None, node.args.kw_defaults)])
            if found is None and self.follow_bodies:
                found = self._lambda_body(node)
            return found, False
        if isinstance(node, _COMPREHENSIONS):
            return self._comprehension(node), False
        if isinstance(node, ast.If) and is_main_guard(node) and len(self.frames) == 1:
            return None, False
        if isinstance(node, (ast.With, ast.AsyncWith)):
            return self._with(node), False
        return self._node(node), True

    def _lambda_body(self, node: ast.Lambda) -> Change | None:
        self.frames.append(_Frame("function", _params(node.args), set()))
        try:
            return self._stmt(node.body)
        finally:
            self.frames.pop()

    def _comprehension(self, node: ast.AST) -> Change | None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        first = self._stmt(generators[0].iter)
        if first is not None:
            return first
        targets: set[str] = set()
        for generator in generators:
            targets |= {n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}
        self.frames.append(_Frame("comprehension", targets, set()))
        try:
            rest: list[ast.AST] = [generators[0].target, *generators[0].ifs]
            for generator in generators[1:]:
                rest += [generator.target, generator.iter, *generator.ifs]
            rest += [getattr(node, attr) for attr in ("elt", "key", "value")
                     if hasattr(node, attr)]
            return self._each(rest)
        finally:
            self.frames.pop()

    def _with(self, node: ast.With | ast.AsyncWith) -> Change | None:
        """A ``with GraphOp(...)`` block builds a graph: op calls inside it run nothing."""
        found = self._each(node.items)
        if found is not None:
            return found
        builds = any(isinstance(item.context_expr, ast.Call)
                     and _is_operonx(self._value(item.context_expr.func))
                     for item in node.items)
        outer, self.graph_block = self.graph_block, self.graph_block or builds
        try:
            for stmt in node.body:  # its parents indexed while it is walked (see _index)
                added = self._index(stmt)
                found = self._stmt(stmt)
                for key in added:
                    self.parents.pop(key, None)  # (contexts like Load() are shared nodes)
                if found is not None:
                    return found
            return None
        finally:
            self.graph_block = outer

    def _index(self, node: ast.AST) -> list[int]:
        """Record the parent of every node below ``node``, but not below the body of a
        ``with``: a graph's ``with`` block holds a statement or two per op, and its
        statements are indexed (and forgotten) one at a time as _with walks them.
        Returns the keys added."""
        added: list[int] = []
        stack = [node]
        while stack:
            parent = stack.pop()
            skip = {id(s) for s in parent.body} if isinstance(
                parent, (ast.With, ast.AsyncWith)) else ()
            for child in ast.iter_child_nodes(parent):
                self.parents[id(child)] = parent
                added.append(id(child))
                if id(child) not in skip:
                    stack.append(child)
        return added

    # ------------------------------------------------------------- the checks

    def _node(self, node: ast.AST) -> Change | None:
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        return None

    def _name(self, node: ast.Name) -> Change | None:
        name = node.id
        if not _is_global(name, self.frames):
            return None
        line = self._line(node)
        top, steps = self._chain_top(node)
        values = self._prefix_values(node)
        held = [(text, v) for text, v in values if self.state.holds(v)]
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            # A module-level binding is the extractor's business; inside called code,
            # a `global` rebinding of a name the ops use changes what they see.
            if name in self.frames[-1].globals and (held or self.analysis.is_copied(
                    self.file, name)):
                return Change(line, f"rebinds {name} (declared global)")
            return None
        if (not self.analysis.imports_at_run_time and len(values) >= 2
                and values[0][1] is sys and values[1][0].split(".")[1] in _IMPORT_MACHINERY):
            return None  # sys.path & co.: nothing copied imports at run time
        ctx = getattr(top, "ctx", None)
        if steps and isinstance(ctx, (ast.Store, ast.Del)):
            return self._store(top, values, ctx, line)
        parent = self.parents.get(id(top))
        value = values[0][1]
        if (self.follow_bodies and not steps and _is_user_code(value)
                and not (isinstance(parent, ast.Call) and parent.func is top)):
            # Called code that hands out a function (returns it, stores it) lets whoever
            # gets it call it later: what that function does counts here.
            used = self.analysis.called_code_uses_state(value)
            if used is not None:
                return Change(line, f"uses {name}, which {used}")
        if not held:
            return None
        called = ((isinstance(parent, ast.Call) and parent.func is top)
                  or (isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and any(d is top for d in parent.decorator_list)))
        if called and steps:
            return self._method_call(top, values, parent, line)
        call = self._argument_of(top)
        if (call is not None and self._builtin_name(call.func) in ("setattr", "delattr")
                and call.args and call.args[0] is top):
            return Change(line, f"calls {_text(call.func)}() on {held[-1][0]}")
        data = [text for text, v in held if is_data(v)]
        if not data:
            return None  # a module, function or class read, not called: nothing changes
        if call is not None and self._keeps_nothing(call):
            return None  # len(REG), print(REG), an op's argument in a graph block
        if self.follow_bodies:
            # Called code is not followed value by value: a read may be an alias it changes.
            return Change(line, f"uses {data[-1]}")
        if call is not None:
            return Change(line, f"passes {data[-1]} to {_text(call.func)}()")
        return None

    def _store(self, top: ast.AST, values: list[tuple[str, object]], ctx: ast.expr_context,
               line: int) -> Change | None:
        """``X...[k] = v`` / ``del X...[k]`` / ``X...a = v``: a change where X... is state.

        The slot's own old value does not matter, except for an attribute of a module:
        ``registry.REG = {}`` rebinds a name the ops use.
        """
        resolved = len(values) == self._chain_length(top)
        owners = values[:-1] if resolved else values
        verb = "deletes from" if isinstance(ctx, ast.Del) else "assigns into"
        held = [text for text, v in owners if self.state.holds(v)]
        if held:
            return Change(line, f"{verb} {held[-1]}")
        module = values[-2][1] if resolved and len(values) >= 2 else None
        if isinstance(top, ast.Attribute) and isinstance(module, types.ModuleType) and (
                self.state.holds(values[-1][1])
                or self.analysis.is_copied(getattr(module, "__file__", None), top.attr)):
            return Change(line, f"rebinds {values[-1][0]}")  # config.LIMIT = 5
        return None

    def _method_call(self, top: ast.AST, values: list[tuple[str, object]],
                     parent: ast.AST | None, line: int) -> Change | None:
        """``X.m(...)`` (or ``@X.m``) where something along ``X`` is state."""
        resolved = len(values) == self._chain_length(top)  # the receiver itself is known
        owners = values[:-1] if resolved else values
        if not any(self.state.holds(v) for _, v in owners):
            return None
        method = getattr(top, "attr", None)
        read_only = (resolved and type(owners[-1][1]) in (*_CONTAINERS, str)
                     and method in READ_ONLY_METHODS)
        if read_only or (isinstance(parent, ast.Call) and self._is_operonx_call(parent)):
            return None
        return Change(line, f"calls {_text(top)}()")

    def _chain_length(self, top: ast.AST) -> int:
        length = 1
        while isinstance(top, (ast.Attribute, ast.Subscript)):
            top, length = top.value, length + 1
        return length

    def _call(self, node: ast.Call) -> Change | None:
        line = self._line(node)
        builtin = self._builtin_name(node.func)
        if builtin in UNDECIDABLE_BUILTINS and not (builtin == "vars" and node.args):
            raise Undecidable(line, f"calls {builtin}(), which can change any module-level "
                                    "name")
        value = self._value(node.func)
        if _is_op(value):
            if self.graph_block:
                return None  # adds a node to the graph being built; runs nothing
            return self._called(node, value)
        if value is _MISSING:
            return self._unknown_callee(node) or self._callbacks(node)
        if _is_operonx(value):
            return None
        if self.state.holds(value) and is_data(value):
            return Change(line, f"calls {_text(node.func)}(), an object the ops use")
        is_method = isinstance(value, types.MethodType | types.BuiltinMethodType)
        owner = value.__self__ if is_method else None  # type: ignore[attr-defined]
        if is_method and not isinstance(owner, types.ModuleType) and self.state.holds(owner):
            return Change(line, f"calls {_text(node.func)}(), a method of an object the ops "
                                "use")
        if _is_user_code(value):
            return self._called(node, value)
        if builtin in PURE_BUILTINS and not any(k.arg == "key" for k in node.keywords):
            return None
        return self._callbacks(node)

    def _called(self, node: ast.Call, value: object) -> Change | None:
        used = self.analysis.called_code_uses_state(value)
        if used is None:
            return None
        return Change(self._line(node), f"calls {_text(node.func)}(), which {used}")

    def _unknown_callee(self, node: ast.Call) -> Change | None:
        """``fns[i](x)``, ``(a or b)(x)``: any function the callee expression can reach may
        be the one called — a function it names, or one held in a container it names."""
        line = self._line(node)
        for name in ast.walk(node.func):
            if not isinstance(name, ast.Name) or not _is_global(name.id, self.frames):
                continue
            value = self._global_value(name.id)
            if self.state.holds(value):
                return Change(line, f"calls {_text(node.func)}(), reached from {name.id}, "
                                    "which the ops use")
            candidates = [value]
            if isinstance(value, _CONTAINERS):
                items = dict.values(value) if isinstance(value, dict) else _items(value)
                candidates = list(itertools.islice(items, 10_000))
            for candidate in candidates:
                if (_is_op(candidate) and not self.graph_block) or _is_user_code(candidate):
                    used = self.analysis.called_code_uses_state(candidate)
                    if used is not None:
                        return Change(line, f"calls {_text(node.func)}(), which may be "
                                            f"{_text_of(candidate)}, which {used}")
        return None

    def _callbacks(self, node: ast.Call) -> Change | None:
        """A call we cannot see into may call the user's code it is given."""
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            inner = arg.value if isinstance(arg, ast.Starred) else arg
            if isinstance(inner, ast.Lambda):
                found = self._lambda_body(inner)
                if found is not None:
                    return found
                continue
            value = self._value(inner)
            if (_is_op(value) and not self.graph_block) or _is_user_code(value):
                used = self.analysis.called_code_uses_state(value)
                if used is not None:
                    return Change(self._line(node), f"passes {_text(inner)} to "
                                  f"{_text(node.func)}(), which may call it; it {used}")
        return None

    def _decorators(self, decorators: list[ast.expr]) -> Change | None:
        """``@d`` calls ``d`` with the new function: the user's decorators are called code."""
        for decorator in decorators:
            if isinstance(decorator, ast.Call):
                continue  # the call itself was checked; what it returns is not knowable
            value = self._value(decorator)
            if self.state.holds(value) and is_data(value):
                return Change(self._line(decorator),
                              f"is decorated with @{_text(decorator)}, an object the ops use")
            if _is_user_code(value):
                used = self.analysis.called_code_uses_state(value)
                if used is not None:
                    return Change(self._line(decorator),
                                  f"is decorated with @{_text(decorator)}, which {used}")
        return None

    def _bases(self, bases: list[ast.expr]) -> Change | None:
        """A base class (or metaclass) of the user's runs its code on subclassing."""
        for base in bases:
            value = self._value(base)
            if isinstance(value, type) and _is_user_code(value):
                used = self.analysis.called_code_uses_state(value)
                if used is not None:
                    return Change(self._line(base),
                                  f"subclasses {_text(base)}, whose code {used}")
        return None

    # ---------------------------------------------------------------- helpers

    def _chain_top(self, node: ast.AST) -> tuple[ast.AST, int]:
        """The outermost ``x.a[i].b`` built on ``node``, and how many steps it has."""
        top, steps = node, 0
        while True:
            parent = self.parents.get(id(top))
            if isinstance(parent, (ast.Attribute, ast.Subscript)) and parent.value is top:
                top, steps = parent, steps + 1
            else:
                return top, steps

    def _prefix_values(self, node: ast.Name) -> list[tuple[str, object]]:
        """``REG``, ``REG.sub``, ... with their values, as far as they resolve statically."""
        value = self._global_value(node.id)
        found = [(node.id, value)]
        current: ast.AST = node
        while value is not _MISSING:
            parent = self.parents.get(id(current))
            if isinstance(parent, ast.Attribute) and parent.value is current:
                value = inspect.getattr_static(value, parent.attr, _MISSING)
            elif (isinstance(parent, ast.Subscript) and parent.value is current
                  and isinstance(parent.slice, ast.Constant)):
                value = _constant_item(value, parent.slice.value)
            else:
                break
            current = parent
            found.append((_text(current), value))
        return found

    def _global_value(self, name: str) -> object:
        if name in self.namespace:
            return self.namespace[name]
        return getattr(builtins, name, _MISSING)

    def _value(self, expr: ast.AST) -> object:
        """The value of ``name``, ``name.attr...`` or ``name["key"]``, when global."""
        if isinstance(expr, ast.Name):
            return self._global_value(expr.id) if _is_global(expr.id, self.frames) else _MISSING
        if isinstance(expr, ast.Attribute):
            owner = self._value(expr.value)
            if owner is _MISSING:
                return _MISSING
            return _unwrap_descriptor(inspect.getattr_static(owner, expr.attr, _MISSING))
        if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant):
            owner = self._value(expr.value)
            return _constant_item(owner, expr.slice.value)
        return _MISSING

    def _builtin_name(self, func: ast.AST) -> str | None:
        if (isinstance(func, ast.Name) and _is_global(func.id, self.frames)
                and func.id not in self.namespace and hasattr(builtins, func.id)):
            return func.id
        return None

    def _argument_of(self, node: ast.AST) -> ast.Call | None:
        """The call ``node`` is an argument of (directly, starred, or inside a literal)."""
        current = node
        while True:
            parent = self.parents.get(id(current))
            if isinstance(parent, ast.Call):
                return parent if parent.func is not current else None
            if isinstance(parent, (ast.Starred, ast.keyword, ast.List, ast.Tuple, ast.Set,
                                   ast.Dict)):
                current = parent
                continue
            return None

    def _keeps_nothing(self, call: ast.Call) -> bool:
        """A pure builtin, an operonx call, or an op call that builds the graph."""
        builtin = self._builtin_name(call.func)
        if builtin in PURE_BUILTINS and not any(k.arg == "key" for k in call.keywords):
            return True
        return self._is_operonx_call(call)

    def _is_operonx_call(self, call: ast.Call) -> bool:
        value = self._value(call.func)
        if _is_op(value):
            return self.graph_block
        return _is_operonx(value) and value is not _MISSING

    def _line(self, node: ast.AST) -> int:
        line: int = getattr(node, "lineno", 0)
        return line + self.line_offset if line else 0


def imports_at_run_time(sources: Iterable[str]) -> bool:
    """Does any of this (copied) code import something when it runs?"""
    for source in sources:
        if "import" not in source and source.isascii():  # every way below spells it
            continue  # (a non-ASCII identifier may be ``import`` once normalised)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                return True
            if isinstance(node, ast.Name) and node.id in ("__import__", "importlib"):
                return True
            if isinstance(node, ast.Attribute) and node.attr == "import_module":
                return True
    return False


def _constant_item(owner: object, key: object) -> object:
    """``owner[key]`` for a plain dict, list or tuple (no user ``__getitem__`` runs)."""
    if type(owner) not in (dict, list, tuple):
        return _MISSING
    try:
        return owner[key]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return _MISSING


def _text_of(value: object) -> str:
    return getattr(value, "__qualname__", None) or type(value).__name__


def _unwrap_descriptor(value: object) -> object:
    """``getattr_static`` gives a class's raw ``classmethod``; what a call runs is inside."""
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    return value


def _text(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."
