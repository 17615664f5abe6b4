"""The lowered IR: what the code generator consumes, after the passes have run.

Lowering (:mod:`compiler.ir.lower`) turns the graph IR (``operonx.ir.model``)
and its execution plan (``operonx.ir.plan.plan_scope``: regions and levels, the
plan the Engine follows too) into these frozen dataclasses. Passes return new
values with :func:`dataclasses.replace`; nothing here is mutated.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from operonx.ir.condition import Condition
from operonx.ir.model import SourceLoc, UntilExpr
from operonx.ir.policy import Retry
from operonx.ir.until import to_python

ArgKind = Literal["const", "input", "value", "collect", "coalesce"]
StageKind = Literal["call", "gen", "graph", "loop"]
OpFlavor = Literal["sync", "async", "cpu", "gen", "asyncgen", "graph", "loop"]
Strategy = Literal["inline", "tasks"]


@dataclass(frozen=True)
class ArgIR:
    """One keyword argument of a stage."""

    name: str
    kind: ArgKind
    # const: the value, checked at lowering to have a literal spelling (codegen.pyast.lit)
    value: object = field(default=None, compare=False)
    key: str = ""  # input: the PARENT key; value/collect: the output key
    node: str = ""  # value/collect: the producing stage
    ordered: bool = False  # collect: yield order rather than completion order
    # coalesce: the options, first to last; each value/collect option that a branch may
    # leave without a value carries the check that tells (SPEC §8)
    options: tuple[ArgIR, ...] = ()
    presence: Presence | None = None

    def describe(self) -> str:
        if self.kind == "const":
            return literal_text(self.value)
        if self.kind == "input":
            return f"PARENT[{self.key!r}]"
        if self.kind == "coalesce":
            return f"coalesce({', '.join(o.describe() for o in self.options)})"
        text = f"{self.node}[{self.key!r}]"
        if self.kind == "collect":
            text += ".collect(ordered=True)" if self.ordered else ".collect()"
        return text


@dataclass(frozen=True)
class Presence:
    """How a reader tells that a value it may lack (a branch skipped its producer) is there.

    With ``key``: that output of ``stage`` exists (``key in stage's outputs``: a skipped
    stage's marker holds no key, a sub-graph may leave a key out). Without: ``stage``
    ran (for a generator, its stream started).
    """

    stage: str
    key: str | None = None


@dataclass(frozen=True)
class EdgeIR:
    """An incoming ``>>`` edge of a stage a branch may skip.

    Live when ``source`` ran (``None``: it always runs) and, when ``branch`` guards
    it, when that branch took ``arm``.
    """

    source: str | None
    branch: str | None = None
    arm: int = 0


@dataclass(frozen=True)
class GateIR:
    """The check a skippable stage makes before it runs (the Engine's gate, SPEC §8).

    Skipped when one of ``reads`` has none of its options there; else it runs when
    ``edges`` is empty (an edge is always live) or one edge, tried in order, is live.
    A branch is decided by the first gate that asks.
    """

    reads: tuple[tuple[Presence, ...], ...]
    edges: tuple[EdgeIR, ...]


@dataclass(frozen=True)
class BranchIR:
    """``if_(c1, t1).elif_(c2, t2).else_(t3)``: decided once per instance of ``context``."""

    name: str
    qualname: str  # what its errors are named
    context: tuple[str, ...]
    arms: tuple[tuple[Condition | None, tuple[str, ...]], ...]  # None: the else arm
    absent: tuple[Presence, ...]  # condition reads that may find no value: then no arm
    text: str  # the conditions as written, for messages
    loc: SourceLoc


@dataclass(frozen=True)
class ExceptionRef:
    """An exception class as generated code names it: ``module`` imported (``""``: a name
    the module already binds, a builtin or copied code) and ``name`` in it."""

    module: str
    name: str


@dataclass(frozen=True)
class PolicyIR:
    """``@op(timeout=, retry=, cache=)`` (SPEC §9)."""

    timeout: float | None
    retry: Retry | None
    cache: int | None
    awaited: bool  # the call is awaited (async, bound="cpu", or sync with waiting retries)
    retry_on: tuple[ExceptionRef, ...] = ()  # the classes ``retry`` retries on


@dataclass(frozen=True)
class StageIR:
    """One node of a scope: an op call, a generator, a sub-graph or a loop."""

    name: str  # node name (unique in its scope)
    qualname: str  # frame / error name: "inner.double"
    kind: StageKind
    flavor: OpFlavor
    function: str | None  # module-level name of the copied op function
    returns_none: bool  # annotated ``-> None``: called as a statement
    args: tuple[ArgIR, ...]
    needed: tuple[str, ...]  # output keys some reader needs: checked after the call
    deps: tuple[str, ...]  # region-local (hoisted) dependencies, from the plan
    context: tuple[str, ...]
    max_concurrent: int
    fuse: bool
    loc: SourceLoc
    body: ScopeIR | None = None  # sub-graph or loop body
    inline_loop: bool = False  # loop: the ``while`` is emitted in the caller (pass inline_loops)
    positional: tuple[str, ...] = ()  # args that may be passed positionally, in signature order
    # Every return/yield of the op is a dict literal with the needed keys (proven from its
    # source), so the run path needs no outputs check after the call.
    outputs_proven: bool = False
    gate: GateIR | None = None  # a branch may skip it (SPEC §8)
    policy: PolicyIR | None = None  # timeout, retry, cache (SPEC §9)
    # SPEC §7.1: the type of each output key as a reader at the stage's depth sees it,
    # as generated code spells it; only where it is known (not ``Any``)
    output_types: tuple[tuple[str, str], ...] = ()
    # @op(resources={...}) as sorted (name, amount) pairs: what a cluster target asks for.
    resources: tuple[tuple[str, float], ...] = ()

    def output_type(self, key: str) -> str | None:
        return dict(self.output_types).get(key)

    @property
    def awaits(self) -> bool:
        """Whether running this stage may suspend (decided again per strategy by codegen)."""
        return self.flavor in ("async", "cpu", "asyncgen")


@dataclass(frozen=True)
class RegionIR:
    """The stages that run once per frame of ``generator`` (or once per scope run)."""

    generator: str | None
    context: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    inline: bool  # nothing in it ever awaits (from the plan)
    window: int  # frames of one generator instance in flight at once
    strategy: Strategy = "tasks"  # how its generator drives it: inline (never awaits) or tasks
    chains: tuple[tuple[str, ...], ...] = ()  # fused linear sync chains (pass fuse_chains)


@dataclass(frozen=True)
class ResultIR:
    """One key a scope run returns: an END-wired output or a write-back."""

    key: str
    node: str
    out_key: str
    depth: int  # >= 1: a list in yield order, nested streams flattened
    # A key a branch may leave out of the result: there only when this says so (SPEC §8)
    presence: Presence | None = None


@dataclass(frozen=True)
class CollectIR:
    """A ``node[key].collect()`` buffer, owned by the region one level above the producer."""

    node: str
    key: str
    ordered: bool
    owner: tuple[str, ...]  # context of the region instance that holds the buffer


@dataclass(frozen=True)
class LoopIR:
    """What a loop stage needs besides its body: state, ``until``, the iteration guard."""

    state: tuple[tuple[str, object], ...]  # (key, initial value), literal-checked
    until: UntilExpr | str  # a checked expression, or the copied until function's name
    max_iterations: int
    state_types: tuple[tuple[str, str], ...] = ()  # key -> type text, where known (§7.1)


@dataclass(frozen=True)
class ScopeIR:
    """One scope: the top-level graph, a sub-graph body or a loop body."""

    name: str
    kind: Literal["graph", "loop"]
    qual: str  # prefix of its ops' frame names: "" or "inner."
    symbol: str  # suffix of the generated function names
    loc: SourceLoc
    stages: tuple[StageIR, ...]  # topological order
    regions: tuple[RegionIR, ...]  # root first, then by context
    results: tuple[ResultIR, ...]  # what one run returns, in order
    collects: tuple[CollectIR, ...]
    reads: tuple[str, ...]  # PARENT keys read by its stages
    inline: bool  # no stage at any depth awaits
    # No generator or loop at any depth: a run of it is bounded work. Anything else pauses
    # for the event loop now and then (fairness), so its run path is a coroutine.
    bounded: bool = False
    loop: LoopIR | None = None
    branches: tuple[BranchIR, ...] = ()
    input_types: tuple[tuple[str, str], ...] = ()  # PARENT key -> type text, where known

    def stage(self, name: str) -> StageIR:
        return self._stages_by_name[name]

    @cached_property
    def _stages_by_name(self) -> dict[str, StageIR]:
        # Codegen and passes look stages up per stage: a scan here would be quadratic.
        return {s.name: s for s in self.stages}

    def region(self, context: tuple[str, ...]) -> RegionIR:
        return self._regions_by_context[context]

    @cached_property
    def _regions_by_context(self) -> dict[tuple[str, ...], RegionIR]:
        return {r.context: r for r in self.regions}


@dataclass(frozen=True)
class ModuleIR:
    """The whole program: the top scope (a top-level loop is wrapped into a graph)."""

    graph_name: str
    source_path: str
    top: ScopeIR
    required_inputs: tuple[str, ...]
    optional_inputs: tuple[tuple[str, object], ...]  # (key, default value), literal-checked
    input_routes: tuple[tuple[str, str], ...]  # (scope key, run input key): inputs={k: PARENT[x]}
    fast_path: bool = False  # pass drop_bookkeeping: ``run`` gets a path without frames
    opt_level: int = 2
    # SPEC §7.1: the Inputs and Result TypedDicts, (key, type text, required), and the
    # imports their texts need
    input_fields: tuple[tuple[str, str, bool], ...] = ()
    result_fields: tuple[tuple[str, str, bool], ...] = ()
    type_imports: tuple[str, ...] = ()


def until_text(until: UntilExpr | str) -> str:
    """A loop's stop test for display: the expression, or a call of the copied function."""
    if isinstance(until, UntilExpr):
        return to_python(until)
    return f"{until}(state)"


def literal_text(value: object) -> str:
    """How a checked constant reads in generated code (and in ``operonx explain``)."""
    from compiler.codegen.pyast import lit

    return ast.unparse(lit(value))
