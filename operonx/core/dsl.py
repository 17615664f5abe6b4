"""The graph-building DSL: ``@op``, ``GraphOp``, ``PARENT``, ``START``, ``END``, refs and ``>>``.

Building is recording: inside ``with GraphOp(...)`` an op call adds a node to
the open block's :class:`~operonx.ir.build.ScopeDraft` and returns a handle;
``>>`` records edges; when the block closes, :func:`operonx.ir.build.finalize`
validates the draft into the IR (:class:`operonx.ir.model.Graph`).
"""

from __future__ import annotations

import bisect
import contextvars
import functools
import keyword
import os
import pickle
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

from operonx.core import reference
from operonx.core.conditions import Comparable, Cond
from operonx.errors import GraphError
from operonx.ir import introspect
from operonx.ir.build import ScopeDraft, did_you_mean, finalize
from operonx.ir.condition import Operand
from operonx.ir.model import (
    CollectMode,
    Const,
    Graph,
    InputRef,
    Node,
    NodeKind,
    OpDef,
    OpKind,
    OutputRef,
    Source,
    SourceLoc,
)
from operonx.ir.policy import PolicyError, Retry, check_policies
from operonx.ir.resources import check_resources

# With the separator, so a user's ``operonx_demo/`` next to the package is not taken for it.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_open_blocks: contextvars.ContextVar[tuple[GraphOp, ...]] = contextvars.ContextVar(
    "operonx_open_blocks", default=())
_RESERVED_NAMES = frozenset({"START", "END", "PARENT"})


def user_loc() -> SourceLoc:
    """The first stack frame outside the operonx package: where the user wrote the call."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return SourceLoc("<unknown>", 0)
    return SourceLoc(frame.f_code.co_filename, _line_of(frame))


# code id -> (code, end offsets, lines) of its co_lines() ranges; a few big code objects
_LINE_TABLES: dict[int, tuple[types.CodeType, list[int], list[int | None]]] = {}
_BIG_CODE = 4096  # bytes of bytecode above which ``frame.f_lineno`` is worth a table


def _line_of(frame: types.FrameType) -> int:
    """``frame.f_lineno``, in O(log n).

    CPython finds ``f_lineno`` by scanning the code's line table from the start, so in
    a graph file of N ops (one big module body) every op call and ``>>`` would cost O(N).
    For big code objects, map the frame's last instruction through a cached table instead.
    """
    code = frame.f_code
    if len(code.co_code) < _BIG_CODE:
        return frame.f_lineno
    entry = _LINE_TABLES.get(id(code))
    if entry is None or entry[0] is not code:
        if len(_LINE_TABLES) >= 8:
            _LINE_TABLES.clear()
        ends: list[int] = []
        lines: list[int | None] = []
        for _start, end, line in code.co_lines():  # contiguous [start, end) ranges
            ends.append(end)
            lines.append(line)
        entry = _LINE_TABLES[id(code)] = (code, ends, lines)
    i = bisect.bisect_right(entry[1], frame.f_lasti)
    line = entry[2][i] if i < len(entry[2]) else None
    return line if line is not None else frame.f_lineno


def _current_block() -> GraphOp | None:
    blocks = _open_blocks.get()
    return blocks[-1] if blocks else None


def _check_name(name: str, loc: SourceLoc, what: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or name in _RESERVED_NAMES:
        raise GraphError(f"{what} name {name!r} is not a valid identifier "
                         "(START, END and PARENT are reserved)", loc.file, loc.line)


# --------------------------------------------------------------------------- refs


class ParentRef(Comparable):
    """``PARENT["key"]``: an input of the enclosing graph, or a loop's state variable.

    Comparisons (``PARENT["mode"] == "fast"``) build branch conditions; see
    :mod:`operonx.core.conditions` for why hashing and ``in`` are unaffected.
    """

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def _operand(self) -> Operand:
        return InputRef(self.key)

    def __repr__(self) -> str:
        return f"PARENT[{self.key!r}]"


class _Parent:
    def __getitem__(self, key: str) -> ParentRef:
        if not isinstance(key, str):
            raise TypeError(f"PARENT keys are strings, not {type(key).__name__}")
        return ParentRef(key)

    def __repr__(self) -> str:
        return "PARENT"


PARENT = _Parent()


class Ref(Comparable):
    """``node["key"]``: one output of a node, optionally collected from its stream.

    Comparisons (``node["k"] == 1``, ``.isin([...])``, ``.is_none()``) build
    branch conditions; see :mod:`operonx.core.conditions` for why hashing and
    ``in`` are unaffected.
    """

    __slots__ = ("collect_mode", "handle", "key")

    def __init__(self, handle: _Handle, key: str, collect_mode: CollectMode | None = None) -> None:
        self.handle = handle
        self.key = key
        self.collect_mode = collect_mode

    def collect(self, ordered: bool = False) -> Ref:
        """Gather the stream feeding this input into one list (completion or yield order)."""
        if self.collect_mode is not None:
            raise GraphError(f"{self!r} is already collected; a stream level is collected once "
                             "per read")
        return Ref(self.handle, self.key, "ordered" if ordered else "completion")

    def __rshift__(self, target: ParentRef) -> ParentRef:
        """``node["k"] >> PARENT["x"]``: write ``k`` back to the enclosing scope as ``x``."""
        if not isinstance(target, ParentRef):
            raise GraphError(f"{self!r} >> {target!r}: an output can only be written back to "
                             "PARENT['key']; order nodes with node >> node")
        draft = self.handle.block._require_open(f"{self!r} >> {target!r}")
        draft.writebacks.append((self.to_source(), target.key, user_loc()))
        return target

    def to_source(self) -> OutputRef:
        return OutputRef(self.handle.name, self.key, self.collect_mode)

    def _operand(self) -> Operand:
        if self.collect_mode is not None:
            loc = user_loc()
            raise GraphError(f"a branch condition reads {self!r}: conditions compare one value "
                             "per frame, not a collected stream", loc.file, loc.line,
                             "collect it into an op and branch on that op's output")
        return self.to_source()

    def __repr__(self) -> str:
        text = f"{self.handle.name}[{self.key!r}]"
        if self.collect_mode == "ordered":
            return f"ordered({text})"
        return f"{text}.collect()" if self.collect_mode else text


def ordered(ref: Ref) -> Ref:
    """The ordered-collect helper: ``ordered(node["k"])`` is ``node["k"].collect(ordered=True)``."""
    return ref.collect(ordered=True)


# --------------------------------------------------------------------- ordering: >>

class _Routing:
    """What ``>>`` can place after nodes besides a node: a branch (``operonx.core.branch``).

    On the right of ``>>`` it is placed after the left side; on the left it
    stands for its targets (``a >> if_(c, x).else_(y) >> z`` is ``[x, y] >> z``).
    """

    def _place_after(self, lefts: list[Any], loc: SourceLoc) -> None:
        raise NotImplementedError

    def _stands_for(self) -> list[Any]:
        raise NotImplementedError


class _ArgumentValue:
    """A computed argument value (``coalesce(...)``) that becomes one IR source."""

    def to_argument(self) -> Source:
        raise NotImplementedError

    def dsl_refs(self) -> list[Ref]:
        raise NotImplementedError


def _wire(left: Any, right: Any) -> None:
    lefts = left if isinstance(left, (list, tuple)) else [left]
    rights = right if isinstance(right, (list, tuple)) else [right]
    loc = user_loc()
    lefts = [x for item in lefts
             for x in (item._stands_for() if isinstance(item, _Routing) else (item,))]
    if any(isinstance(r, _Routing) for r in rights):
        if len(rights) != 1:
            raise GraphError("a branch stands alone on the right of >>", loc.file, loc.line,
                             "give each target to the branch instead: if_(c, [a, b])")
        rights[0]._place_after(lefts, loc)
        return
    for a in lefts:
        for b in rights:
            _wire_one(a, b, loc)


def _wire_one(a: Any, b: Any, loc: SourceLoc) -> None:
    if a is END or b is START:
        raise GraphError("END cannot come before anything, nor anything before START",
                         loc.file, loc.line)
    handles = [x for x in (a, b) if isinstance(x, _Handle)]
    for x in (a, b):
        if not isinstance(x, (_Handle, _Terminal)):
            raise GraphError(f">> connects nodes, START and END, not {type(x).__name__} {x!r}",
                             loc.file, loc.line,
                             "write node['key'] >> PARENT['x'] for a write-back")
    if not handles:
        raise GraphError("START >> END connects nothing", loc.file, loc.line)
    block = handles[0].block
    for h in handles[1:]:
        if h.block is not block:
            raise GraphError(f"{a!r} >> {b!r} connects nodes of different graphs "
                             f"({handles[0].block.name!r} and {h.block.name!r})",
                             loc.file, loc.line)
    draft = block._require_open(f"{a!r} >> {b!r}")
    edge = (a.name if isinstance(a, _Handle) else "START", b.name if isinstance(b, _Handle)
            else "END")
    draft.edges.setdefault(edge, loc)


class _Handle:
    """What a node looks like while building: indexable for refs, wirable with ``>>``."""

    name: str
    block: GraphOp

    def __getitem__(self, key: str) -> Ref:
        if not isinstance(key, str):
            raise TypeError(f"output keys are strings, not {type(key).__name__}")
        return Ref(self, key)

    def __rshift__(self, other: Any) -> Any:
        _wire(self, other)
        return other

    def __rrshift__(self, other: Any) -> Any:
        _wire(other, self)
        return self


class NodeHandle(_Handle):
    """An op's node inside a graph: what ``my_op(x=...)`` returns in a ``with`` block."""

    def __init__(self, name: str, block: GraphOp) -> None:
        self.name = name
        self.block = block

    def __repr__(self) -> str:
        return self.name


class _Terminal:
    def __init__(self, name: str) -> None:
        self.name = name

    def __rshift__(self, other: Any) -> Any:
        _wire(self, other)
        return other

    def __rrshift__(self, other: Any) -> Any:
        _wire(other, self)
        return self

    def __repr__(self) -> str:
        return self.name


START = _Terminal("START")
END = _Terminal("END")


# ------------------------------------------------------------------ argument values


def _to_source(value: Any, arg: str, where: str, loc: SourceLoc) -> Source:
    if isinstance(value, Ref):
        return value.to_source()
    if isinstance(value, _ArgumentValue):
        return value.to_argument()
    if isinstance(value, Cond):
        raise GraphError(f"{where}: argument {arg!r} is the condition {value!r}; conditions "
                         "route with if_(...), they are not values", loc.file, loc.line,
                         "compute the comparison inside an op and pass its output")
    if isinstance(value, ParentRef):
        return InputRef(value.key)
    if isinstance(value, _Handle):
        raise GraphError(f"{where}: argument {arg!r} is the node {value.name!r} itself",
                         loc.file, loc.line, f"pass one of its outputs: {value.name}['key']")
    hidden = _find_hidden_ref(value)
    if hidden is not None:
        raise GraphError(f"{where}: argument {arg!r} hides the reference {hidden!r} inside a "
                         f"{type(value).__name__}; references must be whole arguments",
                         loc.file, loc.line,
                         "pass each reference as its own argument and build the container "
                         "inside the op")
    return Const(value)


def _find_hidden_ref(value: Any) -> object | None:
    if isinstance(value, (Ref, ParentRef, _Handle, _Terminal, _ArgumentValue, _Routing, Cond)):
        return value
    if isinstance(value, Mapping):
        items: Any = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return None
    for item in items:
        found = _find_hidden_ref(item)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------- @op


class Op:
    """A function decorated with ``@op``.

    Called outside a graph block it is the plain function (ops stay
    unit-testable); called inside one it adds a node and returns its handle.
    """

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None,
                 max_concurrent: int | None = None, outputs: list[str] | None = None,
                 bound: Literal["cpu"] | None = None, fuse: bool = True,
                 timeout: float | None = None, retry: int | Retry | None = None,
                 cache: bool | int = False,
                 resources: Mapping[str, float] | None = None) -> None:
        loc = introspect.definition_loc(fn)
        kind = introspect.op_kind(fn)
        if bound not in (None, "cpu"):
            raise GraphError(f"@op(bound={bound!r}): the only bound is 'cpu'", loc.file, loc.line)
        if bound == "cpu" and kind is not OpKind.SYNC:
            raise GraphError(f"@op(bound='cpu') runs a plain def in a worker process; "
                             f"{fn.__name__!r} is {kind.value}", loc.file, loc.line)
        if bound == "cpu":
            try:  # a worker process must be able to import it (SPEC §10): say so now
                reference.reference_to(fn)
            except reference.Unreachable as exc:
                raise GraphError(f"@op(bound='cpu') {getattr(fn, '__name__', fn)!r} cannot run "
                                 f"in a worker process: {exc.reason}", loc.file, loc.line,
                                 exc.hint) from None
        if max_concurrent is not None and (not isinstance(max_concurrent, int)
                                           or max_concurrent < 1):
            raise GraphError(f"@op(max_concurrent={max_concurrent!r}) must be a positive int",
                             loc.file, loc.line)
        op_name = name or fn.__name__
        _check_name(op_name, loc, "op")
        try:
            policies = check_policies(op_name, kind, bound, timeout, retry, cache)
        except PolicyError as err:
            raise GraphError(str(err), loc.file, loc.line, err.hint or None) from None
        tree = introspect.function_ast(fn)
        static = introspect.static_outputs(tree, kind)
        self.definition = OpDef(
            fn=fn, name=op_name, kind=kind, params=introspect.params_of(fn, tree),
            outputs=tuple(outputs) if outputs is not None else static,
            outputs_declared=outputs is not None, max_concurrent=max_concurrent, bound=bound,
            fuse=fuse, loc=loc, return_annotation=introspect.return_annotation(tree),
            proven_outputs=introspect.proven_outputs(tree, kind, fn),
            timeout=policies.timeout, retry=policies.retry, cache=policies.cache,
            resources=check_resources(resources, loc),
        )
        self.fn = fn
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        block = _current_block()
        if block is None:
            return self.fn(*args, **kwargs)
        if self.definition.bound == "cpu":
            self._check_importable_by_workers()
        return block._add_op(self.definition, args, kwargs)

    def _check_importable_by_workers(self) -> None:
        """A worker process finds a ``bound="cpu"`` op by its module-level name: is it there?

        Checked when the op is used in a graph, once the module has bound the name
        (at ``@op`` time it is not bound yet).
        """
        try:
            ref = reference.reference_to(self.fn)  # as at @op time, unless its file vanished
        except reference.Unreachable as exc:
            loc = user_loc()
            raise GraphError(f"op {self.definition.name!r} is bound='cpu' but cannot run in a "
                             f"worker process: {exc.reason}", loc.file, loc.line,
                             exc.hint) from None
        problem = reference.binding_problem(ref, self, self.fn)
        if problem is not None:
            loc = user_loc()
            raise GraphError(f"op {self.definition.name!r} is bound='cpu', so worker processes "
                             f"import it by its module-level name, but {problem}",
                             loc.file, loc.line,
                             f"define it with @op at module level as {ref.qualname!r} and do "
                             "not rebind that name")

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str, str | None]]:
        """Pickle by reference: another process imports the module and finds the op by name."""
        try:
            ref = reference.reference_to(self.fn)
        except reference.Unreachable as exc:
            raise pickle.PicklingError(f"cannot pickle op {self.definition.name!r}: "
                                       f"{exc.reason}") from None
        problem = reference.binding_problem(ref, self, self.fn)
        if problem is not None:
            raise pickle.PicklingError(f"cannot pickle op {self.definition.name!r}: {problem}")
        return reference.resolve_reference, (ref.module, ref.qualname, ref.file)

    def __repr__(self) -> str:
        return f"<op {self.definition.name}>"


@overload
def op(fn: Callable[..., Any], /) -> Op: ...
@overload
def op(*, name: str | None = None, max_concurrent: int | None = None,
       outputs: list[str] | None = None, bound: Literal["cpu"] | None = None,
       fuse: bool = True, timeout: float | None = None, retry: int | Retry | None = None,
       cache: bool | int = False, resources: Mapping[str, float] | None = None,
       ) -> Callable[[Callable[..., Any]], Op]: ...


def op(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
       max_concurrent: int | None = None, outputs: list[str] | None = None,
       bound: Literal["cpu"] | None = None, fuse: bool = True, timeout: float | None = None,
       retry: int | Retry | None = None, cache: bool | int = False,
       resources: Mapping[str, float] | None = None) -> Op | Callable[..., Op]:
    """Declare an op: bare ``@op`` or ``@op(name=..., max_concurrent=..., outputs=[...])``.

    Policies (SPEC §9): ``timeout=`` seconds per execution (async, async
    generator steps, ``bound="cpu"``), ``retry=N`` or ``Retry(...)``, and
    ``cache=True`` (an LRU of 1024 per node) or ``cache=N``.

    ``resources={"num_cpus": 2, "num_gpus": 1, "memory": bytes, "custom": n}`` is what one
    execution asks a Ray cluster for (``operonx compile --target ray``); local runs ignore it.
    """
    if fn is not None:
        return Op(fn)

    def decorate(f: Callable[..., Any]) -> Op:
        return Op(f, name=name, max_concurrent=max_concurrent, outputs=outputs, bound=bound,
                  fuse=fuse, timeout=timeout, retry=retry, cache=cache, resources=resources)

    return decorate


# ------------------------------------------------------------------------ GraphOp


class GraphOp(_Handle):
    """A graph: ``with GraphOp(name=...) as g:`` records its body; closing it validates.

    Opened inside another graph's block, it is a sub-graph node of that graph.
    ``GraphOp.loop(until=..., **state)`` makes a loop body.
    """

    def __init__(self, name: str = "graph", *, max_stream_concurrent: int | None = None,
                 inputs: Mapping[str, Any] | None = None) -> None:
        self._init("graph", name, max_stream_concurrent, inputs, {}, None, 1000)

    @classmethod
    def loop(cls, until: str | Callable[[Mapping[str, Any]], Any], *, name: str = "loop",
             max_iterations: int = 1000, inputs: Mapping[str, Any] | None = None,
             max_stream_concurrent: int | None = None, **state: Any) -> GraphOp:
        """A loop: the body runs, write-backs apply, then ``until`` is checked against the state."""
        self = cls.__new__(cls)
        self._init("loop", name, max_stream_concurrent, inputs, state, until, max_iterations)
        return self

    def _init(self, kind: Literal["graph", "loop"], name: str,
              max_stream_concurrent: int | None, inputs: Mapping[str, Any] | None,
              state: Mapping[str, Any], until: Any, max_iterations: int) -> None:
        loc = user_loc()
        _check_name(name, loc, "graph")
        if max_stream_concurrent is not None and (not isinstance(max_stream_concurrent, int)
                                                  or max_stream_concurrent < 1):
            raise GraphError(f"max_stream_concurrent={max_stream_concurrent!r} must be a "
                             "positive int", loc.file, loc.line)
        if kind == "loop" and (not isinstance(max_iterations, int) or max_iterations < 1):
            raise GraphError(f"max_iterations={max_iterations!r} must be a positive int",
                             loc.file, loc.line)
        for key, value in state.items():
            if _find_hidden_ref(value) is not None:
                raise GraphError(f"loop state {key}={value!r} is a reference; initial values "
                                 "from the enclosing graph go in inputs={...}", loc.file, loc.line)
        overlap = set(state) & set(inputs or {})
        if overlap:
            raise GraphError(f"loop state {sorted(overlap)} is declared both as a keyword and "
                             "in inputs=", loc.file, loc.line)
        self.name = name
        self.loc = loc
        self._kind = kind
        self._max_stream_concurrent = max_stream_concurrent
        self._inputs = dict(inputs or {})
        self._state = dict(state)
        self._until = until
        self._max_iterations = max_iterations
        self._draft: ScopeDraft | None = None
        self._graph: Graph | None = None
        self._outer: GraphOp | None = None
        self._node: Node | None = None
        self.block = self  # until nested, a graph is its own block

    # -- context manager

    def __enter__(self) -> GraphOp:
        if self._draft is not None or self._graph is not None:
            raise GraphError(f"graph {self.name!r} was already built; make a new GraphOp",
                             self.loc.file, self.loc.line)
        outer = _current_block()
        limit = self._max_stream_concurrent or (
            outer._draft.max_stream_concurrent if outer is not None and outer._draft else 64)
        declared = {k: _to_source(v, k, f"graph {self.name!r} inputs", self.loc) if outer
                    else self._top_level_input(k, v) for k, v in self._inputs.items()}
        if outer is not None:
            for value in self._inputs.values():
                refs = value.dsl_refs() if isinstance(value, _ArgumentValue) else [value]
                for ref in refs:
                    if isinstance(ref, Ref) and ref.handle.block is not outer:
                        raise GraphError(f"graph {self.name!r} inputs read {ref!r}, a node of "
                                         "another graph", self.loc.file, self.loc.line)
            self._outer = outer
            self.name = outer._unique_name(self.name, explicit=False)
            self.block = outer
            self._node = Node(name=self.name,
                              kind=NodeKind.LOOP if self._kind == "loop" else NodeKind.GRAPH,
                              loc=self.loc, args=declared, max_concurrent=limit)
            outer._draft_or_raise().nodes[self.name] = self._node
        self._draft = ScopeDraft(
            name=self.name, kind=self._kind, loc=self.loc, nested=outer is not None,
            max_stream_concurrent=limit, declared_inputs=declared, state=self._state,
            until=self._until, max_iterations=self._max_iterations)
        self._token = _open_blocks.set((*_open_blocks.get(), self))
        return self

    def _top_level_input(self, key: str, value: Any) -> Source:
        source = _to_source(value, key, f"graph {self.name!r} inputs", self.loc)
        if isinstance(source, (InputRef, Const)):
            return source
        raise GraphError(f"graph {self.name!r}: input {key!r} refers to a node, but a top-level "
                         "graph has no enclosing graph", self.loc.file, self.loc.line,
                         "give a literal default, or PARENT['key'] to read a run input")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        _open_blocks.reset(self._token)
        draft, self._draft = self._draft, None
        if exc_type is not None or draft is None:
            return  # the user's own error propagates untouched
        graph = finalize(draft)
        self._graph = graph
        if self._node is not None:
            self._node.body = graph

    # -- building

    def _draft_or_raise(self) -> ScopeDraft:
        if self._draft is None:
            raise GraphError(f"graph {self.name!r} is closed: nodes are added inside its "
                             "`with` block", self.loc.file, self.loc.line)
        return self._draft

    def _require_open(self, what: str) -> ScopeDraft:
        if self._draft is None:
            loc = user_loc()
            raise GraphError(f"{what}: graph {self.name!r} is closed; wire nodes inside its "
                             "`with` block", loc.file, loc.line)
        return self._draft

    def _unique_name(self, base: str, explicit: bool) -> str:
        nodes = self._draft_or_raise().nodes
        if base not in nodes:
            return base
        if explicit:
            loc = user_loc()
            raise GraphError(f"graph {self.name!r} already has a node named {base!r}",
                             loc.file, loc.line, "names given with name= must be unique")
        # Names are never removed, so every ``base_K`` below the last one handed out is
        # still taken: resume the scan there (``double``, ``double_2``, ``double_3``, ...,
        # skipping names already taken with name=) instead of from 2 every time.
        counters = self._draft_or_raise().name_counters
        n = counters.get(base, 2)
        while f"{base}_{n}" in nodes:
            n += 1
        counters[base] = n + 1
        return f"{base}_{n}"

    def _add_op(self, definition: OpDef, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> NodeHandle:
        loc = user_loc()
        draft = self._draft_or_raise()
        node_name = kwargs.pop("name", None) if "name" not in {
            p.name for p in definition.params} else None
        where = f"op {definition.name!r}"
        if args:
            raise GraphError(f"{where} was given {len(args)} positional argument(s); node "
                             "arguments are keyword-only", loc.file, loc.line,
                             f"write {definition.name}(name_of_param=...)")
        params = {p.name: p for p in definition.params}
        takes_any = any(p.is_var_keyword for p in definition.params)
        for key in kwargs:
            if key not in params and not takes_any:
                hint = did_you_mean(key, params) or f"its parameters: {', '.join(params)}"
                raise GraphError(f"{where} has no parameter {key!r}", loc.file, loc.line, hint)
        missing = [p.name for p in definition.params
                   if not p.has_default and not p.is_var_keyword and p.name not in kwargs]
        if missing:
            raise GraphError(f"{where} is missing argument(s) {', '.join(map(repr, missing))}",
                             loc.file, loc.line)
        if node_name is not None:
            _check_name(node_name, loc, "node")
        name = self._unique_name(node_name or definition.name, explicit=node_name is not None)
        for value in kwargs.values():
            refs = value.dsl_refs() if isinstance(value, _ArgumentValue) else [value]
            for ref in refs:
                if isinstance(ref, Ref) and ref.handle.block is not self:
                    raise GraphError(f"{where} reads {ref!r}, a node of another graph",
                                     loc.file, loc.line,
                                     "pass values into a sub-graph with inputs={...}")
        sources = {k: _to_source(v, k, where, loc) for k, v in kwargs.items()}
        limit = definition.max_concurrent or draft.max_stream_concurrent
        draft.nodes[name] = Node(name=name, kind=NodeKind.OP, loc=loc, args=sources,
                                 op=definition, max_concurrent=limit)
        return NodeHandle(name, self)

    # -- results

    @property
    def ir(self) -> Graph:
        """The validated IR (available once the ``with`` block has closed)."""
        if self._graph is None:
            raise GraphError(f"graph {self.name!r} is still being built (its `with` block has "
                             "not closed)", self.loc.file, self.loc.line)
        return self._graph

    @property
    def is_nested(self) -> bool:
        return self._outer is not None

    def __repr__(self) -> str:
        return f"<{'loop' if self._kind == 'loop' else 'GraphOp'} {self.name}>"
