"""Branches in the IR (SPEC §8): their edges, their build checks, and what they may skip.

A branch ``sources >> if_(c, t1).else_(t2)`` adds the edges ``source >> target``
to the scope like any ``>>``, so ordering, ancestry and the stream plan need
nothing new; :attr:`Graph.branches` says which of those edges are conditional.

*Skipping* is then one rule for every node, decided in the instance (scope run
or frame) it would run in:

* a node is skipped when an argument it reads (without ``coalesce``) comes from a
  skipped node, or when every option of one of its ``coalesce`` arguments does;
* otherwise, a node with ``>>`` predecessors runs when at least one incoming edge
  is *live*: its predecessor ran (``START`` always runs) and, for a conditional
  edge, its arm was taken. A node with no incoming edge always runs.

Across stream levels an edge or read stands for what the plan hoists it to
(see :func:`effective`): from inside a stream, a node outside it depends on the
stream as a whole, which ran when its generator ran (the frames a branch
filtered out simply are not in its lists). :func:`skip_analysis` marks, once per
scope, which nodes can be skipped at all, so the Engine checks only those and
the compiler types only their result keys ``NotRequired``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from operonx.errors import GraphError
from operonx.ir.condition import Condition
from operonx.ir.condition import refs as condition_refs
from operonx.ir.model import (
    Arm,
    Branch,
    Coalesce,
    Graph,
    Node,
    NodeKind,
    OutputRef,
    SourceLoc,
    leaves,
)


@dataclass
class BranchDraft:
    """What the DSL records for one ``if_(...)`` chain while its block is open."""

    loc: SourceLoc
    arms: list[tuple[Condition | None, tuple[str, ...]]] = field(default_factory=list)
    sources: tuple[str, ...] | None = None  # set by ``>>``; None: never placed after anything
    source_loc: SourceLoc | None = None


def _err(message: str, loc: SourceLoc, hint: str = "") -> GraphError:
    return GraphError(message, loc.file, loc.line, hint or None)


def build_branches(drafts: Iterable[BranchDraft], nodes: Mapping[str, Node],
                   edges: dict[tuple[str, str], SourceLoc]) -> tuple[Branch, ...]:
    """Check the targets of every branch and add its ``source >> target`` edges to ``edges``."""
    branches: list[Branch] = []
    owner: dict[str, Branch] = {}  # target -> the branch that guards it
    taken = set(nodes)
    for draft in drafts:
        if draft.sources is None:
            raise _err("if_(...) is not placed after anything, so it never runs", draft.loc,
                       "put it after the node it routes from: `node >> if_(...)` "
                       "(or `START >> if_(...)`)")
        name = _free_name("branch", taken)
        taken.add(name)
        seen: set[str] = set()
        for _cond, targets in draft.arms:
            for t in targets:
                if t in seen:
                    raise _err(f"{t!r} is a target of two arms of one branch", draft.loc,
                               "a node runs under one arm; use a list to run several "
                               "nodes under one arm")
                seen.add(t)
                if t in owner:
                    other = owner[t].loc
                    raise _err(f"{t!r} is a target of two branches ({other} and this one)",
                               draft.loc, "route to it from one branch; several arms may "
                               "feed a node that runs after them (`[a, b] >> join`)")
        branch = Branch(name=name, sources=draft.sources,
                        arms=tuple(Arm(c, targets) for c, targets in draft.arms),
                        loc=draft.loc)
        for t in branch.targets:
            owner[t] = branch
            for s in branch.sources:
                if (s, t) in edges:
                    raise _err(f"{t!r} is placed after {s!r} both directly ({edges[s, t]}) "
                               "and by a branch", draft.loc,
                               f"drop the direct `{s} >> {t}`: the branch decides whether "
                               f"{t!r} runs")
        for t in branch.targets:
            for s in branch.sources:
                edges[s, t] = draft.loc
        branches.append(branch)
    return tuple(branches)


def _free_name(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


def ancestors(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> set[str]:
    """Every node with a ``>>`` path to one of ``nodes`` (not including them)."""
    preds: dict[str, list[str]] = {}
    for a, b in edges:
        preds.setdefault(b, []).append(a)
    seen: set[str] = set()
    stack = list(nodes)
    while stack:
        for p in preds.get(stack.pop(), ()):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def check_bypass(branches: Iterable[Branch], nodes: Mapping[str, Node],
                 edges: Iterable[tuple[str, str]]) -> None:
    """Refuse a target that can be reached from the scope's start without taking its branch.

    From ``START`` and every node nothing is placed after (those always run),
    follow every edge except the branch's own: reaching one of its targets means
    the target could run whatever the condition says.
    """
    edge_list = list(edges)
    has_pred = {b for _a, b in edge_list}
    roots = ["START", *(n for n in nodes if n not in has_pred)]
    for branch in branches:
        own = {(s, t) for s in branch.sources for t in branch.targets}
        succs: dict[str, list[str]] = {}
        for a, b in edge_list:
            if (a, b) not in own:
                succs.setdefault(a, []).append(b)
        came_from: dict[str, str] = {r: "" for r in roots}
        stack = list(roots)
        targets = set(branch.targets)
        while stack:
            a = stack.pop()
            for b in succs.get(a, ()):
                if b in came_from:
                    continue
                came_from[b] = a
                if b in targets:
                    path = [b]
                    while came_from[path[-1]]:
                        path.append(came_from[path[-1]])
                    route = " >> ".join(reversed(path))
                    raise _err(f"{b!r} is a target of the branch but is also reached without "
                               f"it: {route}", branch.loc,
                               f"remove the edge into {b!r} that bypasses the branch, or read "
                               "its inputs without ordering it")
                stack.append(b)


# --------------------------------------------------------------------- skipping


def common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def effective(nodes: Mapping[str, Node], producer: str, at: tuple[str, ...]
              ) -> tuple[int, str]:
    """Where a node running in context ``at`` finds the status of ``producer``.

    ``(levels up, name)``: the instance that many levels up from the reader's,
    and the node there that stands for ``producer`` -- itself when it runs in
    that instance, else the generator whose stream holds it.
    """
    p = nodes[producer]
    common = common_prefix(p.context, at)
    rep = producer if p.context == common else p.context[len(common)]
    return len(at) - len(common), rep


def read_may_be_absent(graph: Graph, skippable: set[str], ref: OutputRef,
                       at: tuple[str, ...]) -> bool:
    """Whether a read of ``ref`` by a node in context ``at`` can find nothing there."""
    if ref.collect is not None:  # a collected stream is there (maybe []) unless never started
        return effective(graph.nodes, ref.node, at)[1] in skippable
    producer = graph.nodes[ref.node]
    if ref.node in skippable:
        return True
    body = producer.body
    return producer.kind is NodeKind.GRAPH and body is not None \
        and ref.key in body.optional_results


def skip_analysis(graph: Graph, order: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(nodes a branch may skip, depth-0 result keys that may be absent) of one scope.

    A sound over-approximation (the Engine checks the nodes it returns; the
    compiler types their result keys ``NotRequired``), made tight for the common
    join: a node after one target of *every* arm of a branch with an ``else_``
    always runs, since exactly one arm is taken whenever the branch is decided.
    """
    nodes = graph.nodes
    guard = {t: (b, i) for b in graph.branches for i, arm in enumerate(b.arms)
             for t in arm.targets}
    preds: dict[str, list[str]] = {}
    for a, b in graph.edges:
        if b in nodes:
            preds.setdefault(b, []).append(a)
    skippable: set[str] = set()
    sure_arm: dict[str, tuple[Branch, int]] = {}  # target -> its arm: runs iff the arm is taken
    for name in order:
        node = nodes[name]
        if _reads_may_skip(graph, skippable, sure_arm, node):
            skippable.add(name)
            continue
        if name in guard:
            skippable.add(name)
            branch, arm = guard[name]
            if _always_decided(graph, skippable, branch, node.context):
                sure_arm[name] = (branch, arm)
            continue
        incoming = preds.get(name, [])
        if incoming and not _some_pred_runs(nodes, skippable, sure_arm, incoming, node.context):
            skippable.add(name)
    optional: set[str] = set()
    if graph.kind == "graph":  # a loop's results are its state: always there
        specs = [*graph.results.items(), *graph.writebacks.items()]
        for key, spec in specs:
            if spec.depth == 0:
                absent = read_may_be_absent(graph, skippable, OutputRef(spec.node, spec.key), ())
            else:  # a list of frames, absent when its stream never started
                absent = effective(nodes, spec.node, ())[1] in skippable
            if absent:
                optional.add(key)
    return frozenset(skippable), frozenset(optional)


def _always_decided(graph: Graph, skippable: set[str], branch: Branch,
                    at: tuple[str, ...]) -> bool:
    """Whether ``branch`` (with an else arm) takes an arm in every instance of ``at``."""
    if branch.arms[-1].condition is not None:
        return False
    for arm in branch.arms:
        if arm.condition is not None and any(
                isinstance(r, OutputRef) and read_may_be_absent(graph, skippable, r,
                                                                branch.context)
                for r in condition_refs(arm.condition)):
            return False
    return any(s == "START" or effective(graph.nodes, s, at)[1] not in skippable
               for s in branch.sources)


def _some_pred_runs(nodes: Mapping[str, Node], skippable: set[str],
                    sure_arm: Mapping[str, tuple[Branch, int]], incoming: Iterable[str],
                    at: tuple[str, ...]) -> bool:
    """Whether at least one ``>>`` predecessor surely runs: one never skipped, or one target
    of every arm of an always-decided branch."""
    covered: dict[str, set[int]] = {}
    for p in incoming:
        if p == "START":
            return True
        _up, rep = effective(nodes, p, at)
        if rep not in skippable:
            return True
        if rep in sure_arm:  # p itself, or the generator whose stream p runs in
            branch, arm = sure_arm[rep]
            arms = covered.setdefault(branch.name, set())
            arms.add(arm)
            if len(arms) == len(branch.arms):
                return True
    return False


def _reads_may_skip(graph: Graph, skippable: set[str],
                    sure_arm: Mapping[str, tuple[Branch, int]], node: Node) -> bool:
    for source in node.args.values():
        options = [o for o in leaves(source) if isinstance(o, OutputRef)]
        if isinstance(source, Coalesce) and len(options) < len(source.options):
            continue  # a PARENT or literal default is always there
        if options and not _some_present(graph, skippable, sure_arm, options, node.context):
            return True
    return False


def _some_present(graph: Graph, skippable: set[str], sure_arm: Mapping[str, tuple[Branch, int]],
                  options: Iterable[OutputRef], at: tuple[str, ...]) -> bool:
    """Whether at least one of ``options`` is surely there: one never absent, or reads of one
    target of every arm of an always-decided branch (what ``coalesce`` over the arms reads)."""
    covered: dict[str, set[int]] = {}
    for ref in options:
        if not read_may_be_absent(graph, skippable, ref, at):
            return True
        producer = graph.nodes[ref.node]
        # Whose running makes the value there: the producer, or for a collect its generator.
        runs = ref.node if ref.collect is None else effective(graph.nodes, ref.node, at)[1]
        if runs in sure_arm and (ref.collect is not None or not (
                producer.body is not None and ref.key in producer.body.optional_results)):
            branch, arm = sure_arm[runs]
            arms = covered.setdefault(branch.name, set())
            arms.add(arm)
            if len(arms) == len(branch.arms):
                return True
    return False
