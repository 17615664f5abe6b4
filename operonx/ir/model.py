"""The graph IR: what a ``with GraphOp(...)`` block means, independent of how it runs.

The DSL builds these objects when a block closes (see :mod:`operonx.ir.build`);
the Engine interprets them and the compiler lowers them to code, so build-time
validation, stream contexts, collect points, loop state and result depths are
computed exactly once, here.

Vocabulary:

* a *scope* is one graph body: the top-level graph, a sub-graph or a loop body;
* a node's *context* is the chain of generator nodes (outermost first) of its
  scope whose frames it runs once per; ``()`` means it runs once per scope run;
* a value's *depth* is the length of the context it lives in. At END (and in
  write-backs) a value of depth >= 1 becomes a list in yield order.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from operonx.ir.condition import Condition
    from operonx.ir.policy import Retry


class OpKind(enum.Enum):
    SYNC = "sync"
    ASYNC = "async"
    GEN = "gen"
    ASYNCGEN = "asyncgen"

    @property
    def is_generator(self) -> bool:
        return self in (OpKind.GEN, OpKind.ASYNCGEN)


@dataclass(frozen=True)
class SourceLoc:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Param:
    """One parameter of an op function, as the compiler needs it for types."""

    name: str
    annotation: str | None  # source text of the annotation, None when absent
    has_default: bool
    is_var_keyword: bool = False


@dataclass(frozen=True, eq=False)
class OpDef:
    """A function decorated with ``@op``: what it is, not where it is used."""

    fn: Callable[..., Any]
    name: str
    kind: OpKind
    params: tuple[Param, ...]
    outputs: tuple[str, ...] | None  # None: built dynamically and not declared
    outputs_declared: bool
    max_concurrent: int | None
    bound: Literal["cpu"] | None
    fuse: bool
    loc: SourceLoc
    return_annotation: str | None
    # Keys every returned/yielded dict provably has (see introspect.proven_outputs).
    proven_outputs: tuple[str, ...] | None = None
    # Policies (SPEC §9), validated by operonx.ir.policy.check_policies:
    timeout: float | None = None  # seconds per execution (async, asyncgen step, bound="cpu")
    retry: Retry | None = None
    cache: int | None = None  # LRU size of the node's cache; None: not cached

    # @op(resources={...}): (name, amount) pairs, sorted; only the Ray target uses them.
    resources: tuple[tuple[str, float], ...] = ()

    @property
    def has_policy(self) -> bool:
        return self.timeout is not None or self.retry is not None or self.cache is not None

    @property
    def runs_inline(self) -> bool:
        """Sync functions (and sync generators) run on the event loop thread, inline.

        Except a sync op whose retries wait: it sleeps between attempts with
        ``asyncio.sleep`` rather than block the loop, so it awaits.
        """
        return (self.kind in (OpKind.SYNC, OpKind.GEN) and self.bound is None
                and not (self.retry is not None and self.retry.may_sleep))


CollectMode = Literal["completion", "ordered"]


@dataclass(frozen=True)
class Const:
    """A literal argument: the same value for every run and every frame."""

    value: Any


@dataclass(frozen=True)
class InputRef:
    """``PARENT["key"]``: an input of the enclosing scope (or a loop's state)."""

    key: str


@dataclass(frozen=True)
class OutputRef:
    """``node["key"]``, optionally ``.collect()``-ed."""

    node: str
    key: str
    collect: CollectMode | None = None


@dataclass(frozen=True)
class Coalesce:
    """``coalesce(a["k"], b["k"], ...)``: the first option whose producer ran (SPEC §8).

    Options are node refs of one stream depth; only the last may be a
    ``PARENT`` ref or a literal, a default that is always there.
    """

    options: tuple[Const | InputRef | OutputRef, ...]


Source = Const | InputRef | OutputRef | Coalesce


def leaves(source: Source) -> tuple[Const | InputRef | OutputRef, ...]:
    """The plain sources an argument reads: a coalesce's options, else the source itself."""
    return source.options if isinstance(source, Coalesce) else (source,)


def output_refs(source: Source) -> list[OutputRef]:
    """The node refs an argument reads (every option of a coalesce)."""
    return [s for s in leaves(source) if isinstance(s, OutputRef)]


class NodeKind(enum.Enum):
    OP = "op"
    GRAPH = "graph"
    LOOP = "loop"


@dataclass(eq=False)
class Node:
    name: str
    kind: NodeKind
    loc: SourceLoc
    args: dict[str, Source]  # op keyword arguments, or a body's declared inputs
    op: OpDef | None = None
    body: Graph | None = None
    max_concurrent: int = 64
    # Filled in by analysis when the scope is built:
    context: tuple[str, ...] = ()

    @property
    def is_generator(self) -> bool:
        return self.op is not None and self.op.kind.is_generator

    @property
    def outputs(self) -> tuple[str, ...] | None:
        if self.op is not None:
            return self.op.outputs
        assert self.body is not None
        return tuple(self.body.result_keys)

    @property
    def out_context(self) -> tuple[str, ...]:
        """The context this node's outputs live in: one level deeper for a generator."""
        return (*self.context, self.name) if self.is_generator else self.context


@dataclass(frozen=True)
class ResultSpec:
    """Where a result key (END-wired output or write-back) comes from."""

    node: str
    key: str
    depth: int  # >= 1: a list in yield order, nested streams flattened


@dataclass(frozen=True)
class Arm:
    """One arm of a branch: ``condition`` None is the ``else_`` arm."""

    condition: Condition | None
    targets: tuple[str, ...]


@dataclass(eq=False)
class Branch:
    """``sources >> if_(c1, t1).elif_(c2, t2).else_(t3)`` (SPEC §8).

    Every ``(source, target)`` pair is also an edge of the graph (so ordering,
    ancestry and the plan treat it as ``>>``); such an edge is *live* only when
    its arm is the one taken. The first arm whose condition holds is taken.
    ``context`` (set when the scope is built) is where the decision is made:
    once per run of the scope, or once per frame of a stream.
    """

    name: str  # unique among the scope's nodes and branches: names its errors
    sources: tuple[str, ...]  # node names, or "START"
    arms: tuple[Arm, ...]
    loc: SourceLoc
    context: tuple[str, ...] = ()

    def arm_of(self, target: str) -> int:
        return next(i for i, arm in enumerate(self.arms) if target in arm.targets)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(t for arm in self.arms for t in arm.targets)


@dataclass(frozen=True)
class UntilExpr:
    """A validated ``until`` string: the parsed expression and its source text."""

    source: str
    tree: Any  # ast.expr, validated by operonx.ir.until
    names: tuple[str, ...]


GraphKind = Literal["graph", "loop"]


@dataclass(eq=False)
class Graph:
    """One scope: a top-level graph, a sub-graph body or a loop body."""

    name: str
    kind: GraphKind
    loc: SourceLoc
    nodes: dict[str, Node]  # declaration order
    edges: tuple[tuple[str, str], ...]  # node names, plus "START"/"END"
    results: dict[str, ResultSpec]  # END-wired outputs
    writebacks: dict[str, ResultSpec]  # node["k"] >> PARENT["x"]
    declared_inputs: dict[str, Source]  # inputs={...}: evaluated in the enclosing scope
    state: dict[str, Any] = field(default_factory=dict)  # loop state with literal initial values
    reads: tuple[str, ...] = ()  # PARENT keys read by nodes of this scope
    until: UntilExpr | Callable[[Mapping[str, Any]], Any] | None = None
    max_iterations: int = 1000
    max_stream_concurrent: int = 64
    nested: bool = False
    branches: tuple[Branch, ...] = ()
    # Filled in by operonx.ir.branching when the scope is built (empty without branches):
    skippable: frozenset[str] = frozenset()  # nodes that a branch may skip
    optional_results: frozenset[str] = frozenset()  # depth-0 result keys that may be absent

    def edge_guards(self) -> dict[tuple[str, str], tuple[Branch, int]]:
        """The conditional edges: ``(source, target)`` -> (its branch, the arm it needs)."""
        return {(s, t): (b, i) for b in self.branches for i, arm in enumerate(b.arms)
                for t in arm.targets for s in b.sources}

    @property
    def result_keys(self) -> list[str]:
        """Keys of what one run of this scope produces."""
        if self.kind == "loop":
            return [*self.state, *(k for k in self.declared_inputs if k not in self.state)]
        return [*self.results, *(k for k in self.writebacks if k not in self.results)]

    def result_depths(self) -> dict[str, int]:
        """Depth of every result key (0: plain value, >= 1: list in yield order)."""
        if self.kind == "loop":  # state keys; a streamed write-back makes a list
            return {k: self.writebacks[k].depth if k in self.writebacks else 0
                    for k in self.result_keys}
        return {**{k: s.depth for k, s in self.results.items()},
                **{k: s.depth for k, s in self.writebacks.items()}}

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """Run inputs a top-level scope cannot run without."""
        declared = set(self.declared_inputs) | set(self.state)
        own = [k for k in self.reads if k not in declared]
        via_refs = [s.key for s in self.declared_inputs.values() if isinstance(s, InputRef)]
        return tuple(dict.fromkeys([*own, *via_refs]))

    @property
    def optional_inputs(self) -> tuple[str, ...]:
        """Run inputs a top-level scope accepts to override a literal default."""
        literal = [k for k, s in self.declared_inputs.items() if isinstance(s, Const)]
        return tuple(dict.fromkeys([*literal, *self.state]))


def wrap_top_level_loop(loop: Graph) -> Graph:
    """A loop run on its own is the only node of a graph whose inputs are the loop's state.

    The Engine and the compiler both run a top-level loop this way, so it behaves
    exactly like the same loop used as a node (its body's op names stay unprefixed:
    callers treat the wrapper as transparent).
    """
    state_keys = [*loop.state, *(k for k in loop.declared_inputs if k not in loop.state)]
    node = Node(name=loop.name, kind=NodeKind.LOOP, loc=loop.loc,
                args={k: InputRef(k) for k in state_keys}, body=loop,
                max_concurrent=loop.max_stream_concurrent)
    return Graph(name=loop.name, kind="graph", loc=loop.loc, nodes={loop.name: node},
                 edges=(("START", loop.name), (loop.name, "END")),
                 results={k: ResultSpec(loop.name, k, 0) for k in state_keys},
                 writebacks={}, declared_inputs={}, reads=tuple(state_keys))
