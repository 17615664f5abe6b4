"""Split a generated function too big to handle at once into module-level *part* functions.

A graph of thousands of ops gives its scope function thousands of stages: that
function's syntax tree, the parse that proves its text (``pyast.check_roundtrip``) and
its byte-compilation each exist for all of it at once (hundreds of megabytes at 10,000
ops), and a reader gets one function of 100,000 lines. :func:`outline` moves runs of
consecutive statements of a long statement list into functions of their own, each
called where its statements stood::

    step_530_x = _fast_chain_part_2(rt, idx, step_29_x)

A part's parameters are the locals its statements read before they assign them; it
returns the locals they assign that are read elsewhere in the function. A run moves
only when the call provably does what its statements did:

* it does not ``return``, ``yield``, ``break`` or ``continue`` out of itself, re-raise
  an exception it is not handling itself, ``del`` or declare names, call ``locals()``
  and the like, nor define a function, class, lambda or generator expression (their
  closures would see the part's variables, not the caller's);
* every local it reads before assigning is surely assigned when it starts (passing it
  cannot fail where the original read never happened), and every local it returns is
  surely assigned when it ends (or it is passed in, and returned as it came);
* inside a ``try`` or ``with`` of the function, which may observe the function after an
  exception escapes the run, nothing outside its statement list reads a local it
  assigns (an exception loses the part's frame, and the assignments with it);
* it assigns no variable that a closure of the function reads, and the function
  declares nothing ``global`` or ``nonlocal``.

"Surely assigned" and "read elsewhere" are decided conservatively (a ``for`` body may
not run, a ``with`` may swallow an exception, any read outside the run counts), so a
run that cannot be proven is left in place. A parameter or result keeps the annotation
the function gives that local (``x: int = ...`` or its parameter's), else ``Any``.
Small functions are never touched: a module's text changes only above
:data:`FUNCTION_STATEMENTS` statements in one function.
"""

from __future__ import annotations

import ast
import itertools
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from compiler.codegen import pyast as py
from compiler.codegen.names import Namespace
from compiler.codegen.pyast import Ident

# A function with more statements than this (nested blocks included) is split; each part
# aims at PART_STATEMENTS and holds at most MAX_PART_STATEMENTS (a tail or a run of
# statements that cannot be split smaller may stay in the function).
FUNCTION_STATEMENTS = 1000
PART_STATEMENTS = 400
MAX_PART_STATEMENTS = 1000
MAX_RESULTS = 16  # a run whose call would assign more locals than this stays in place

# Names whose use makes code depend on the frame it runs in.
_FRAME_NAMES = frozenset({"locals", "vars", "dir", "super", "eval", "exec", "__class__"})
_SCOPES = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
                     ast.GeneratorExp})
_COMPREHENSIONS = frozenset({ast.ListComp, ast.SetComp, ast.DictComp})


def outline(stmts: Sequence[ast.stmt], ns: Namespace,
            global_types: Mapping[str, str] | None = None) -> list[ast.stmt]:
    """``stmts`` (top-level statements: functions and comments), each function with more
    than :data:`FUNCTION_STATEMENTS` statements followed by the parts moved out of it.

    The functions are changed in place; ``ns`` (the module's) names the parts.
    ``global_types``: the declared types of module-level names (a local first assigned
    one of them has its type).
    """
    out: list[ast.stmt] = []
    for stmt in stmts:
        out.append(stmt)
        if (isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                and count_statements(stmt.body) > FUNCTION_STATEMENTS):
            out += _Outliner(stmt, ns, {} if global_types is None else global_types).run()
    return out


def count_statements(body: Sequence[ast.stmt]) -> int:
    """Statements in ``body``, nested blocks (and nested functions) included; an ``except``
    clause or a ``case`` counts as one too."""
    total = 0
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        total += 1
        if isinstance(node, _WITH_BLOCKS):
            for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                stack += getattr(node, name, ())
    return total


# --------------------------------------------------------------------- the function


@dataclass
class _Function:
    """What the whole function tells about its locals."""

    locals: set[str] = field(default_factory=set)  # every name it binds (over-approximated)
    closed_over: set[str] = field(default_factory=set)  # names nested scopes mention
    reads: Counter[str] = field(default_factory=Counter)  # reads anywhere (over-approximated)
    stores: Counter[str] = field(default_factory=Counter)  # assignments, in its own scope
    annotations: dict[str, ast.expr] = field(default_factory=dict)  # first declared type
    mentioned: set[str] = field(default_factory=set)  # every name in it (parts avoid them)
    params: list[str] = field(default_factory=list)  # its parameters, in order
    assigned: set[str] = field(default_factory=set)  # names bound so far (in source order)
    first_bound: dict[str, ast.Name] = field(default_factory=dict)  # mypy's declaration
    declares: bool = False  # a ``global`` or ``nonlocal`` anywhere in it

    @staticmethod
    def of(fn: ast.FunctionDef | ast.AsyncFunctionDef,
           global_types: Mapping[str, str]) -> _Function:
        info = _Function()
        args = fn.args
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None:
                info.locals.add(arg.arg)
                info.params.append(arg.arg)
                if arg.annotation is not None:
                    info.annotations.setdefault(arg.arg, arg.annotation)
        # In source order, so that the first declaration or assignment of a name is seen first.
        stack: list[ast.AST] = list(reversed(fn.body))
        while stack:
            node = stack.pop()
            kind = node.__class__
            if kind is ast.Name:
                ref = cast(ast.Name, node)
                info.mentioned.add(ref.id)
                if ref.ctx.__class__ is ast.Load:
                    info.reads[ref.id] += 1
                else:  # a store (or ``del``): a local; its first one is what mypy types
                    info.locals.add(ref.id)
                    info.stores[ref.id] += 1
                    info.first_bound.setdefault(ref.id, ref)
                    info.assigned.add(ref.id)  # after _note_binding saw its statement
                continue
            if kind in _SCOPES:
                if hasattr(node, "name"):
                    info.locals.add(node.name)
                info.note_nested(node)
                continue
            if kind in _BINDINGS:
                _note_binding(node, info, global_types)
            elif kind is ast.Global or kind is ast.Nonlocal:
                info.declares = True
            stack += reversed(_children(node))
        return info


    def note_nested(self, scope: ast.AST) -> None:
        """A nested scope: the names it mentions may be the function's, closed over."""
        for node in ast.walk(scope):
            if isinstance(node, ast.Name):
                self.mentioned.add(node.id)
                self.closed_over.add(node.id)
                if isinstance(node.ctx, ast.Load):
                    self.reads[node.id] += 1
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                self.declares = True


def _children(node: ast.AST) -> list[ast.AST]:
    """``ast.iter_child_nodes(node)`` as a list, without the nodes that hold no name (a
    ``Load`` context, an operator): a loop over fields, several times faster."""
    children: list[ast.AST] = []
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, ast.AST):
            if not isinstance(value, _NAMELESS):
                children.append(value)
        elif isinstance(value, list):
            children += [item for item in value if isinstance(item, ast.AST)]
    return children


_NAMELESS = (ast.expr_context, ast.operator, ast.cmpop, ast.unaryop, ast.boolop, ast.Constant)


_BINDINGS = frozenset({ast.AugAssign, ast.AnnAssign, ast.Assign, ast.ExceptHandler, ast.Import,
                       ast.ImportFrom, ast.Delete})


def _note_binding(node: ast.AST, info: _Function, global_types: Mapping[str, str]) -> None:
    """Bindings of the function's own scope that are not ``Name`` stores, and the types
    of its locals: a declaration, or the type mypy gives a local whose first assignment
    is a literal (``i = 0``: ``int``) or a module-level name of a declared type."""
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        info.reads[node.target.id] += 1  # ``x += 1`` reads x
    elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        info.annotations.setdefault(node.target.id, node.annotation)
    elif isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id not in info.assigned:
                value = node.value
                known = (_LITERAL_TYPES.get(type(value.value))
                         if isinstance(value, ast.Constant) else
                         global_types.get(value.id) if isinstance(value, ast.Name) else
                         global_types.get(call_key(value.func.id))
                         if isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                         else None)
                if known is not None:
                    info.annotations.setdefault(target.id, py.expr(known))
    elif isinstance(node, ast.ExceptHandler) and node.name:
        info.locals.add(node.name)
        info.assigned.add(node.name)
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        names = {(a.asname or a.name).split(".")[0] for a in node.names}
        info.locals |= names
        info.assigned |= names
    elif isinstance(node, ast.Delete):
        info.locals.update(t.id for t in node.targets if isinstance(t, ast.Name))


_LITERAL_TYPES = {bool: "bool", int: "int", float: "float", str: "str", bytes: "bytes"}


def call_key(function: str) -> str:
    """The key under which ``global_types`` holds what calling ``function`` returns."""
    return f"{function}()"


class ModuleTypes(Mapping[str, str]):
    """``global_types`` for :func:`outline`: the declared types of module-level names, and
    what calling a module-level function returns (its return annotation as written, read
    from its source the first time it is asked for: the outliner asks only about the
    functions whose results a local is first assigned from, as in ``step_out = step(x)``,
    where mypy types the local by that annotation)."""

    def __init__(self, declared: Mapping[str, str], functions: Mapping[str, str]) -> None:
        self._declared = declared
        self._functions = functions  # name -> the source of its ``def``
        self._returns: dict[str, str | None] = {}

    def __getitem__(self, key: str) -> str:
        if not key.endswith("()"):
            return self._declared[key]
        name = key[:-2]
        if name not in self._returns:
            self._returns[name] = _return_annotation(self._functions.get(name))
        found = self._returns[name]
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._declared)

    def __len__(self) -> int:
        return len(self._declared)


def _return_annotation(source: str | None) -> str | None:
    """The return annotation of the undecorated plain ``def`` in ``source``, else None (a
    decorator may change what a call returns; an ``async def`` returns a coroutine)."""
    if source is None:
        return None
    tree = ast.parse(source).body
    fn = next((node for node in tree if not py.is_comment(node)), None)
    if (isinstance(fn, ast.FunctionDef) and not fn.decorator_list
            and fn.returns is not None):
        return ast.unparse(fn.returns)
    return None


# ------------------------------------------------------------------ statement flow


@dataclass
class _Flow:
    """What one statement (or a run of them) does with the function's names.

    ``exposed``: names it may read before it surely assigned them; ``surely``: names
    surely assigned when it completes normally; ``maybe``: names it may assign (dicts:
    insertion-ordered, so that what follows from them is deterministic).
    """

    size: int = 0
    reads: Counter[str] = field(default_factory=Counter)
    stores: Counter[str] = field(default_factory=Counter)
    exposed: dict[str, None] = field(default_factory=dict)
    surely: set[str] = field(default_factory=set)
    maybe: dict[str, None] = field(default_factory=dict)
    annotated: set[str] = field(default_factory=set)
    awaits: bool = False
    movable: bool = True


@dataclass(frozen=True, slots=True)
class _Summary:
    """One statement's :class:`_Flow`, compact (a big list keeps one per statement):
    ``reads`` and ``stores`` hold a name once per read or assignment."""

    size: int
    movable: bool
    awaits: bool = False
    reads: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    exposed: tuple[str, ...] = ()
    surely: tuple[str, ...] = ()
    maybe: tuple[str, ...] = ()
    annotated: tuple[str, ...] = ()


class _FlowOf:
    """Computes the :class:`_Flow` of one statement (see :func:`flow_of`)."""

    def __init__(self) -> None:
        self.flow = _Flow()
        self.loops = 0  # loops around the current statement, within the one summarised
        self.handlers = 0  # except clauses around it (a bare ``raise`` is local there)

    def block(self, stmts: Sequence[ast.stmt], assigned: set[str]) -> set[str]:
        for stmt in stmts:
            assigned = self.stmt(stmt, assigned)
        return assigned

    def stmt(self, node: ast.stmt, assigned: set[str]) -> set[str]:
        """Walk ``node`` with ``assigned`` surely assigned before it; what is after it."""
        f = self.flow
        f.size += 1
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr)):
            return self._simple(node, assigned)
        if isinstance(node, ast.If):
            self.load(node.test, assigned)
            return self.block(node.body, set(assigned)) & self.block(node.orelse, set(assigned))
        if isinstance(node, (ast.For, ast.AsyncFor)):
            f.awaits |= isinstance(node, ast.AsyncFor)
            self.load(node.iter, assigned)
            self.loops += 1
            self.block(node.body, self.store(node.target, set(assigned)))
            self.loops -= 1
            self.block(node.orelse, set(assigned))
            return assigned  # the body may not run at all
        if isinstance(node, ast.While):
            self.load(node.test, assigned)
            self.loops += 1
            self.block(node.body, set(assigned))
            self.loops -= 1
            self.block(node.orelse, set(assigned))
            return assigned
        if isinstance(node, (ast.Try, ast.TryStar)):
            return self._try(node, assigned)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            f.awaits |= isinstance(node, ast.AsyncWith)
            inner = set(assigned)
            for item in node.items:
                self.load(item.context_expr, inner)
                if item.optional_vars is not None:
                    inner = self.store(item.optional_vars, inner)
            self.block(node.body, set(inner))
            return inner  # ``__exit__`` may swallow an exception: the body may not finish
        if isinstance(node, ast.Raise):
            if node.exc is None and not self.handlers:
                f.movable = False  # re-raises what the caller is handling
            for part in (node.exc, node.cause):
                if part is not None:
                    self.load(part, assigned)
            return assigned
        if isinstance(node, ast.Assert):
            self.load(node.test, assigned)
            if node.msg is not None:
                self.load(node.msg, assigned)
            return assigned
        if isinstance(node, (ast.Break, ast.Continue)):
            f.movable = f.movable and self.loops > 0
            return assigned
        if isinstance(node, ast.Pass):
            return assigned
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = {(a.asname or a.name).split(".")[0] for a in node.names}
            f.maybe.update(dict.fromkeys(sorted(names)))
            return assigned | names
        # return, del, global, nonlocal, def, class, match: never moved
        f.movable = False
        return assigned

    def _simple(self, node: ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Expr,
                assigned: set[str]) -> set[str]:
        if isinstance(node, ast.Expr):
            self.load(node.value, assigned)
            return assigned
        if isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                self.read(node.target.id, assigned)
            self.load(node.value, assigned)
            return self.store(node.target, assigned)
        if isinstance(node, ast.AnnAssign):
            if node.value is None:  # a declaration binds nothing (and is not evaluated)
                return assigned
            self.load(node.value, assigned)
            if isinstance(node.target, ast.Name):
                self.flow.annotated.add(node.target.id)
            return self.store(node.target, assigned)
        self.load(node.value, assigned)
        for target in node.targets:
            assigned = self.store(target, assigned)
        return assigned

    def _try(self, node: ast.Try | ast.TryStar, assigned: set[str]) -> set[str]:
        after_body = self.block(node.orelse, self.block(node.body, set(assigned)))
        after = after_body
        for handler in node.handlers:
            if handler.type is not None:
                self.load(handler.type, assigned)
            # The handler's name is its own: unbound again when the handler ends.
            bound = {handler.name} if handler.name else set()
            self.handlers += 1
            done = self.block(handler.body, assigned | bound) - bound
            self.handlers -= 1
            if not _ends_in_jump(handler.body):  # only a handler that finishes continues
                after = after & done
        return after | self.block(node.finalbody, set(assigned))

    def read(self, name: str, assigned: set[str]) -> None:
        self.flow.reads[name] += 1
        if name not in assigned:
            self.flow.exposed.setdefault(name)
        if name in _FRAME_NAMES:
            self.flow.movable = False

    def load(self, expr: ast.expr, assigned: set[str], hidden: frozenset[str] = frozenset()
             ) -> None:
        """Every read in ``expr``; names in ``hidden`` are a comprehension's own."""
        stack: list[ast.AST] = [expr]
        while stack:
            node = stack.pop()
            kind = node.__class__
            if kind is ast.Name:
                ref = cast(ast.Name, node)
                if ref.ctx.__class__ is ast.Load and ref.id not in hidden:
                    self.read(ref.id, assigned)
                continue
            if kind is ast.Constant:
                continue
            if kind in _SCOPES or kind is ast.Yield or kind is ast.YieldFrom:
                self.flow.movable = False
                continue
            if kind is ast.Await:
                self.flow.awaits = True
            elif kind is ast.NamedExpr:
                assert isinstance(node, ast.NamedExpr)
                self.flow.maybe.setdefault(node.target.id)  # binds in the function's scope
                self.flow.stores[node.target.id] += 1
                stack.append(node.value)
                continue
            elif kind in _COMPREHENSIONS:
                assert isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp))
                self._comprehension(node, assigned, hidden)
                continue
            stack += reversed(_children(node))  # in source order

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp,
                       assigned: set[str], hidden: frozenset[str]) -> None:
        """Its first iterable is read outside it; its targets are its own names."""
        own = set(hidden)
        for i, generator in enumerate(node.generators):
            self.load(generator.iter, assigned, hidden if i == 0 else frozenset(own))
            own |= {n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}
            for test in generator.ifs:
                self.load(test, assigned, frozenset(own))
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for part in parts:
            self.load(part, assigned, frozenset(own))

    def store(self, target: ast.expr, assigned: set[str]) -> set[str]:
        """Assign ``target``: its names are bound after, its other parts are reads."""
        if isinstance(target, ast.Name):
            self.flow.maybe.setdefault(target.id)
            self.flow.stores[target.id] += 1
            return assigned | {target.id}
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                assigned = self.store(element, assigned)
            return assigned
        if isinstance(target, ast.Starred):
            return self.store(target.value, assigned)
        self.load(target, assigned)  # ``x.attr = ...``, ``x[k] = ...``: x is read
        return assigned


def flow_of(stmt: ast.stmt) -> _Summary:
    walker = _FlowOf()
    flow = walker.flow
    surely = walker.stmt(stmt, set())
    return _Summary(flow.size, flow.movable, flow.awaits, tuple(flow.reads.elements()),
                    tuple(flow.stores.elements()), tuple(flow.exposed), tuple(surely),
                    tuple(flow.maybe), tuple(flow.annotated))


def _ends_in_jump(body: Sequence[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], (ast.Raise, ast.Return, ast.Break, ast.Continue))


# ------------------------------------------------------------------------ outlining


class _Sure:
    """The names surely assigned at one point of the function: ``extra``, those surely
    assigned before statement ``index`` of the enclosing list (``first``: name -> the
    first of its statements that surely assigns it), and those sure where that list starts.
    Chained rather than copied: a list of thousands of statements would copy thousands of
    names per statement."""

    def __init__(self, outer: _Sure | None, first: dict[str, int], index: int,
                 extra: frozenset[str] = frozenset()) -> None:
        self.outer = outer
        self.first = first
        self.index = index
        self.extra = extra

    def __contains__(self, name: object) -> bool:
        sure: _Sure | None = self
        while sure is not None and isinstance(name, str):
            if name in sure.extra or sure.first.get(name, sure.index) < sure.index:
                return True
            sure = sure.outer
        return False


@dataclass
class _Run:
    """A run of statements considered for a part: ``body[start:end]``, flows combined."""

    start: int
    end: int
    flow: _Flow = field(default_factory=_Flow)
    results: set[str] = field(default_factory=set)  # assigned here, read elsewhere


class _Outliner:
    def __init__(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, ns: Namespace,
                 global_types: Mapping[str, str]) -> None:
        self.fn = fn
        self.ns = ns
        self.info = _Function.of(fn, global_types)
        self.parts: list[ast.stmt] = []

    def run(self) -> list[ast.stmt]:
        if not self.info.declares:
            self._visit(self.fn.body, _Sure(None, {}, 0, frozenset(self.info.params)),
                        guarded=False)
        return self.parts

    # ----------------------------------------------------------- statement lists

    def _visit(self, body: list[ast.stmt], entry: _Sure, guarded: bool) -> None:
        """Split the big lists inside ``body`` first (innermost first), then ``body``.

        ``entry``: what is surely assigned where ``body`` starts; ``guarded``: ``body`` is
        inside a ``try`` or ``with`` of the function. A list no bigger than a part (nor,
        then, any list inside it) is left alone, and its statements are never analysed.
        """
        sizes = [count_statements([stmt]) if isinstance(stmt, _COMPOUND) else 1
                 for stmt in body]
        if sum(sizes) <= PART_STATEMENTS:
            return
        flows: list[_Summary] = []
        first: dict[str, int] = {}
        for i, stmt in enumerate(body):
            if sizes[i] > PART_STATEMENTS:
                here = _Sure(entry, first, i)
                for inner, extra, inner_guarded in _inner_lists(stmt):
                    self._visit(inner, _Sure(here, {}, 0, extra), guarded or inner_guarded)
                sizes[i] = count_statements([stmt])
            # A statement bigger than a part never moves: no need to follow it (a walk
            # that copies what is assigned at every branch would be quadratic in it).
            flow = (flow_of(stmt) if sizes[i] <= MAX_PART_STATEMENTS
                    else _Summary(sizes[i], movable=False))
            flows.append(flow)
            for name in flow.surely:
                first.setdefault(name, i)
        body[:] = self._split(body, flows, entry, first, guarded)

    def _split(self, body: list[ast.stmt], flows: list[_Summary], entry: _Sure,
               first: dict[str, int], guarded: bool) -> list[ast.stmt]:
        """``body`` with runs of its statements replaced by calls of new parts."""
        reads_here: Counter[str] = Counter()
        for flow in flows:
            for name in flow.reads:
                reads_here[name] += 1
        out: list[ast.stmt] = []
        budget = 8 * len(body)  # statements tried in runs that fail (bounds the retries)
        i = 0
        while i < len(body):
            if not flows[i].movable:
                out.append(body[i])
                i += 1
                continue
            sure = _Sure(entry, first, i)
            run = _Run(i, i)
            found: _Run | None = None
            while run.end < len(body) and self._extend(run, flows[run.end], sure):
                run.end += 1
                if run.flow.size >= MAX_PART_STATEMENTS or len(run.results) > 4 * MAX_RESULTS:
                    break  # (so many results are not read again inside a part: hopeless)
                if (run.flow.size >= PART_STATEMENTS and _good_cut(body, run.end)
                        and self._fits(body, run, sure, reads_here, guarded)):
                    found = run
                    break
            if found is None:
                found = self._shorter(body, flows, run, sure, reads_here, guarded)
            if found is None:
                # Nothing from here can move. What stops it is often the first statements
                # (one that binds what every later one reads, with a type mypy infers):
                # try again from the next stage, while the budget lasts; else leave all
                # that was tried in place.
                budget -= run.end - i
                stop = max(run.end, i + 1)
                if budget > 0 and len(run.results) <= MAX_RESULTS:
                    stop = next((end for end in range(i + 1, stop) if _good_cut(body, end)),
                                stop)
                out += body[i:stop]
                i = stop
                continue
            out.append(self._part(body, found))
            i = found.end
        return out

    def _extend(self, run: _Run, flow: _Summary, sure: _Sure) -> bool:
        """Add the next statement to ``run``; False (``run`` unchanged) when it cannot be
        in a part that starts there: it is not movable, reads a local that may be unbound
        there, or assigns a local a closure reads."""
        combined = run.flow
        info = self.info
        if not flow.movable or (info.closed_over and not info.closed_over.isdisjoint(
                flow.maybe)):
            return False
        exposed = [name for name in flow.exposed if name not in combined.surely]
        if any(name in info.locals and name not in sure for name in exposed):
            return False
        for name in exposed:
            combined.exposed.setdefault(name)
        combined.surely.update(flow.surely)
        reads, stores = combined.reads, combined.stores
        for name in flow.reads:
            reads[name] += 1
        for name in flow.stores:
            stores[name] += 1
        combined.annotated.update(flow.annotated)
        combined.awaits |= flow.awaits
        combined.size += flow.size
        for name in flow.maybe:
            combined.maybe.setdefault(name)
        for name in (*flow.maybe, *flow.reads):
            if name in combined.maybe and name in info.locals:
                if info.reads[name] > combined.reads[name]:
                    run.results.add(name)
                else:
                    run.results.discard(name)
        return True

    def _fits(self, body: list[ast.stmt], run: _Run, sure: _Sure, reads_here: Counter[str],
              guarded: bool) -> bool:
        """Whether ``run`` can be a part (what _extend checks aside)."""
        if len(run.results) > MAX_RESULTS:
            return False
        params = self._params(run)
        if any(name not in sure or name in run.flow.annotated for name in params):
            return False  # it may be unbound where the run starts; or declared twice
        if guarded and any(self.info.reads[name] > reads_here[name] for name in run.results):
            return False  # read outside this list: maybe after an exception in the run
        untyped = {id(self.info.first_bound.get(name)) for name in run.results
                   if name not in self.info.annotations}
        # Moving the first assignment of a local whose type mypy infers would type the
        # function's local as what the part returns: ``Any``.
        return not (untyped and any(id(node) in untyped for stmt in body[run.start:run.end]
                                    for node in ast.walk(stmt)))

    def _shorter(self, body: list[ast.stmt], flows: list[_Summary], run: _Run, sure: _Sure,
                 reads_here: Counter[str], guarded: bool) -> _Run | None:
        """The longest run from ``run.start`` to a good cut at most ``run.end`` that fits
        (a few cuts tried, longest first); None if none does."""
        size_to = list(itertools.accumulate(f.size for f in flows[run.start:run.end]))
        ends = [end for end in range(run.end, run.start, -1)
                if size_to[end - run.start - 1] >= PART_STATEMENTS // 4
                and _good_cut(body, end, strict=False)]
        for end in ends[::max(1, len(ends) // 8)][:8]:
            shorter = _Run(run.start, run.start)
            for flow in flows[run.start:end]:
                self._extend(shorter, flow, sure)
            shorter.end = end
            if self._fits(body, shorter, sure, reads_here, guarded):
                return shorter
        return None

    def _params(self, run: _Run) -> list[str]:
        """What the part takes: the locals it reads before assigning, the results it may
        not assign (returned as they came), and the locals it assigns and reads that the
        function assigns elsewhere too (else those assignments would be left unread, and
        ruff would call them unused)."""
        info = self.info
        params = [name for name in run.flow.exposed if name in info.locals]
        params += [name for name in run.flow.maybe
                   if name not in run.flow.exposed and name in info.locals
                   and ((name in run.results and name not in run.flow.surely)
                        or (name not in run.results and run.flow.reads[name] > 0
                            and info.stores[name] > run.flow.stores[name]))]
        own = self.info.params  # the function's own parameters first, in its order
        return sorted(params, key=lambda name: own.index(name) if name in own else len(own))

    # ------------------------------------------------------------------ parts

    def _part(self, body: list[ast.stmt], run: _Run) -> ast.stmt:
        """Move ``body[run.start:run.end]`` into a new part; the statement that calls it."""
        params = self._params(run)
        results = [name for name in run.flow.maybe if name in run.results]
        # A local the part assigns keeps the type the function gives it (``x: int`` first),
        # rather than one mypy would infer from the part's first assignment alone.
        statements: list[ast.stmt] = [
            ast.AnnAssign(target=py.name(Ident(name), "store"), annotation=self._type(name),
                          value=None, simple=1)
            for name in run.flow.maybe if name in self.info.annotations
            and name in self.info.locals and name not in params
            and name not in run.flow.annotated]
        statements += body[run.start:run.end]
        returns: ast.expr = py.expr("None")
        if len(results) == 1:
            returns = self._type(results[0])
            statements.append(ast.Return(value=py.name(Ident(results[0]))))
        elif results:
            returns = ast.Subscript(value=py.name(Ident("tuple")), slice=ast.Tuple(
                elts=[self._type(r) for r in results], ctx=ast.Load()), ctx=ast.Load())
            statements.append(ast.Return(value=ast.Tuple(
                elts=[py.name(Ident(r)) for r in results], ctx=ast.Load())))
        name = self._part_name()
        self.parts += [py.comment(f"part of {self.fn.name}"),
                       py.function(name, [(Ident(p), self._type(p)) for p in params], returns,
                                   statements, is_async=run.flow.awaits)]
        call: ast.expr = ast.Call(func=py.name(name), args=[py.name(Ident(p)) for p in params],
                                  keywords=[])
        if run.flow.awaits:
            call = ast.Await(value=call)
        # The function's counts now see the call instead of the moved statements, so that
        # a part made later around this one returns only what is still read after it.
        self.info.reads.subtract(run.flow.reads)
        self.info.reads.update(params)
        if not results:
            return ast.Expr(value=call)
        target: ast.expr = py.name(Ident(results[0]), "store")
        if len(results) > 1:
            target = ast.Tuple(elts=[py.name(Ident(r), "store") for r in results],
                               ctx=ast.Store())
        return ast.Assign(targets=[target], value=call, type_comment=None)

    def _type(self, name: str) -> ast.expr:
        """The annotation the function gives the local ``name``, else ``Any``."""
        annotation = self.info.annotations.get(name)  # shared: trees are only read from here
        return annotation if annotation is not None else py.expr("Any")

    def _part_name(self) -> Ident:
        while True:  # never a name the function mentions: a local of it would shadow it
            name = self.ns.fresh(f"{self.fn.name}_part")
            if name not in self.info.mentioned:
                return name


def _inner_lists(stmt: ast.stmt) -> Iterator[tuple[list[ast.stmt], frozenset[str], bool]]:
    """The statement lists directly inside ``stmt``: each with the names surely assigned
    where it starts beyond those before ``stmt``, and whether it is inside a ``try`` or
    ``with`` (which may observe the function after an exception leaves the list)."""
    if isinstance(stmt, (ast.If, ast.While)):
        yield stmt.body, frozenset(), False
        yield stmt.orelse, frozenset(), False
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        yield stmt.body, _names(stmt.target), False
        yield stmt.orelse, frozenset(), False
    elif isinstance(stmt, (ast.Try, ast.TryStar)):
        yield stmt.body, frozenset(), True
        for handler in stmt.handlers:
            yield handler.body, frozenset([handler.name] if handler.name else []), True
        yield stmt.orelse, frozenset(), True
        yield stmt.finalbody, frozenset(), True
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        bound: set[str] = set()
        for item in stmt.items:
            if item.optional_vars is not None:
                bound |= _names(item.optional_vars)
        yield stmt.body, frozenset(bound), True


_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.TryStar, ast.With,
             ast.AsyncWith, ast.Match, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_WITH_BLOCKS = (*_COMPOUND, ast.ExceptHandler, ast.match_case)


def _names(target: ast.expr) -> frozenset[str]:
    return frozenset(n.id for n in ast.walk(target) if isinstance(n, ast.Name))


def _good_cut(body: Sequence[ast.stmt], end: int, strict: bool = True) -> bool:
    """Whether a part may end before ``body[end]`` and read well: where a stage starts
    (its comment line, or the ``M = _FAILED`` before the code that may set M); not
    ``strict``: anywhere but right below a comment or such a line."""
    if end >= len(body):
        return True
    if _leads(body[end - 1]):
        return False
    return not strict or _leads(body[end])


def _leads(stmt: ast.stmt) -> bool:
    """A comment, or ``M = _FAILED``: lines that belong with the code below them."""
    if py.is_comment(stmt):
        return True
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [
        stmt.target] if isinstance(stmt, ast.AnnAssign) else []
    return (len(targets) == 1 and isinstance(targets[0], ast.Name)
            and isinstance(getattr(stmt, "value", None), ast.Name))
