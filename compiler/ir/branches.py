"""Lower what SPEC §8 adds to a scope: branches, the gates of skippable stages, presence.

Everything here restates, for the code generator, the rule the Engine applies
(``operonx.engine.gates`` and ``operonx.engine.routes.presence``), computed from
the same IR analysis (``operonx.ir.branching``): which stages a branch may skip
(``Graph.skippable``), where a reader finds a producer's status (``effective``)
and which reads may find nothing (``read_may_be_absent``). A stage outside
``skippable`` gets no gate, and a read that is always there gets no check.
"""

from __future__ import annotations

from compiler.codegen.pyast import lit
from compiler.errors import CompileError
from compiler.ir.nodes import BranchIR, EdgeIR, GateIR, Presence
from operonx.ir import condition
from operonx.ir.branching import effective, read_may_be_absent
from operonx.ir.model import Branch, Const, Graph, Node, OutputRef, ResultSpec, leaves


def presence(graph: Graph, at: tuple[str, ...], ref: OutputRef) -> Presence | None:
    """How a reader in context ``at`` tells that ``ref`` has a value; None: it always has."""
    if not read_may_be_absent(graph, set(graph.skippable), ref, at):
        return None
    if ref.collect is not None:  # the collected stream exists unless its generator was skipped
        return Presence(effective(graph.nodes, ref.node, at)[1])
    return Presence(ref.node, ref.key)


def result_presence(graph: Graph, spec: ResultSpec) -> Presence | None:
    """How a scope run tells that a result (or write-back) is there; None: always."""
    if spec.depth == 0:
        return presence(graph, (), OutputRef(spec.node, spec.key))
    starter = effective(graph.nodes, spec.node, ())[1]  # whose skip leaves the list out
    return Presence(starter) if starter in graph.skippable else None


def gate(graph: Graph, node: Node) -> GateIR | None:
    """The gate of a stage a branch may skip; None for the others."""
    if node.name not in graph.skippable:
        return None
    at = node.context
    skippable = set(graph.skippable)
    reads: list[tuple[Presence, ...]] = []
    for source in node.args.values():
        options = leaves(source)
        refs = [o for o in options if isinstance(o, OutputRef)]
        if len(refs) < len(options) or not refs:
            continue  # a PARENT or literal option is always there
        if all(read_may_be_absent(graph, skippable, r, at) for r in refs):
            reads.append(tuple(p for r in refs if (p := presence(graph, at, r)) is not None))
    guards = graph.edge_guards()
    edges: list[EdgeIR] = []
    for a in (a for a, b in graph.edges if b == node.name):
        guarded = guards.get((a, node.name))
        rep: str | None = None
        if a != "START":
            rep = effective(graph.nodes, a, at)[1]
            if rep not in skippable:
                rep = None  # that predecessor always runs
        if rep is None and guarded is None:
            edges = []  # an edge that is always live: the stage runs (reads permitting)
            break
        edges.append(EdgeIR(rep) if guarded is None
                     else EdgeIR(rep, guarded[0].name, guarded[1]))
    return GateIR(tuple(reads), tuple(edges))


def branches(graph: Graph, qual: str) -> tuple[BranchIR, ...]:
    out = []
    for branch in graph.branches:
        refs = [r for _c, r in _condition_refs(branch)]
        absent = tuple(dict.fromkeys(p for r in refs
                                     if (p := presence(graph, branch.context, r)) is not None))
        for cond, _targets in ((a.condition, a.targets) for a in branch.arms):
            for part in _literals(cond):
                try:
                    lit(part)
                except TypeError:
                    raise CompileError(
                        f"branch condition compares with {type(part).__name__} {part!r:.60}, "
                        "which cannot be written into the compiled module as a literal",
                        branch.loc.file, branch.loc.line,
                        hint="compare with a value read from a node or a run input") from None
        out.append(BranchIR(
            name=branch.name, qualname=qual + branch.name, context=branch.context,
            arms=tuple((arm.condition, arm.targets) for arm in branch.arms), absent=absent,
            text="; ".join("else" if arm.condition is None else condition.describe(arm.condition)
                           for arm in branch.arms),
            loc=branch.loc))
    return tuple(out)


def condition_reads(graph: Graph) -> dict[str, list[str]]:
    """Producer -> keys the scope's branch conditions read (they must be there, as for any
    reader: the Engine checks them after the producer runs)."""
    reads: dict[str, list[str]] = {}
    for branch in graph.branches:
        for _c, ref in _condition_refs(branch):
            reads.setdefault(ref.node, []).append(ref.key)
    return reads


def _condition_refs(branch: Branch) -> list[tuple[condition.Condition, OutputRef]]:
    return [(arm.condition, r) for arm in branch.arms if arm.condition is not None
            for r in condition.refs(arm.condition) if isinstance(r, OutputRef)]


def _literals(cond: condition.Condition | None) -> list[object]:
    """The constants a condition compares with (each must have a literal spelling)."""
    if cond is None:
        return []
    found: list[object] = [x.value for x in condition.operands(cond) if isinstance(x, Const)]

    def walk(c: condition.Condition) -> None:
        match c:
            case condition.IsIn(values=values):
                found.append(values)
            case condition.AllOf(parts=parts) | condition.AnyOf(parts=parts):
                for part in parts:
                    walk(part)
            case condition.Not(part=part):
                walk(part)

    walk(cond)
    return found
