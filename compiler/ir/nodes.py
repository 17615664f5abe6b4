"""The lowered IR: what the code generator consumes, after the passes have run.

Lowering (:mod:`compiler.ir.lower`) turns the graph IR (``operonx.ir.model``)
and its execution plan (``operonx.ir.plan.plan_scope``: regions and levels, the
plan the Engine follows too) into these frozen dataclasses. Passes return new
values with :func:`dataclasses.replace`; nothing here is mutated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from operonx.ir.model import SourceLoc, UntilExpr
from operonx.ir.until import to_python

ArgKind = Literal["const", "input", "value", "collect"]
StageKind = Literal["call", "gen", "graph", "loop"]
OpFlavor = Literal["sync", "async", "cpu", "gen", "asyncgen", "graph", "loop"]
Strategy = Literal["inline", "tasks"]


@dataclass(frozen=True)
class ArgIR:
    """One keyword argument of a stage."""

    name: str
    kind: ArgKind
    literal: str = ""  # const: Python source of the value
    key: str = ""  # input: the PARENT key; value/collect: the output key
    node: str = ""  # value/collect: the producing stage
    ordered: bool = False  # collect: yield order rather than completion order

    def describe(self) -> str:
        if self.kind == "const":
            return self.literal
        if self.kind == "input":
            return f"PARENT[{self.key!r}]"
        text = f"{self.node}[{self.key!r}]"
        if self.kind == "collect":
            text += ".collect(ordered=True)" if self.ordered else ".collect()"
        return text


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
    # @op(resources={...}) as sorted (name, amount) pairs: what a cluster target asks for.
    resources: tuple[tuple[str, float], ...] = ()

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
    strategy: Strategy = "tasks"  # how its generator drives it (pass specialise_fanout)
    chains: tuple[tuple[str, ...], ...] = ()  # fused linear sync chains (pass fuse_chains)


@dataclass(frozen=True)
class ResultIR:
    """One key a scope run returns: an END-wired output or a write-back."""

    key: str
    node: str
    out_key: str
    depth: int  # >= 1: a list in yield order, nested streams flattened


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

    state: tuple[tuple[str, str], ...]  # (key, literal source) initial values
    until: UntilExpr | str  # a checked expression, or the copied until function's name
    max_iterations: int


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
    loop: LoopIR | None = None

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
    optional_inputs: tuple[tuple[str, str], ...]  # (key, literal default)
    input_routes: tuple[tuple[str, str], ...]  # (scope key, run input key): inputs={k: PARENT[x]}
    fast_path: bool = False  # pass drop_bookkeeping: ``run`` gets a path without frames
    opt_level: int = 2


def until_text(until: UntilExpr | str, rename: Callable[[str], str],
               state: str | None = None) -> str:
    """Python for a loop's stop test: the expression with state names renamed, or a call of
    the copied until function on ``state`` (a dict expression of the current state)."""
    if isinstance(until, UntilExpr):
        return to_python(until, rename)
    return f"{until}({state if state is not None else 'state'})"
