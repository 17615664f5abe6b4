"""Stream regions: how a scope's nodes group by the frames they run in.

A *region* is the set of nodes of one scope that share a context: the scope's
root region runs once per scope run; the region of generator ``G`` runs once per
frame ``G`` yields. Dependencies that cross regions are *hoisted* to the nearest
common region, where they become dependencies on a generator's whole stream:

* ``b`` reading ``a`` from an outer region: ``b``'s generator waits for ``a``
  (the value is then the same for every frame);
* ``b`` reading ``x.collect()``, or ordered after ``x`` (``x >> b``), where ``x``
  runs deeper: ``b`` waits until the stream holding ``x`` has ended and every
  frame of it has finished.

Inside a region instance the nodes run in *levels* (longest-path layers of the
hoisted dependency graph): sync nodes inline, independent async nodes of a level
concurrently. Both the Engine and the compiler execute exactly this plan.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from functools import cache

from operonx.errors import GraphError
from operonx.ir.model import Graph, Node, NodeKind, output_refs


@dataclass(eq=False)
class Region:
    scope: Graph
    generator: str | None  # None for the scope's root region
    context: tuple[str, ...]
    nodes: list[str] = field(default_factory=list)  # topological order
    deps: dict[str, list[str]] = field(default_factory=dict)  # hoisted, region-local
    levels: list[list[str]] = field(default_factory=list)
    children: dict[str, Region] = field(default_factory=dict)
    inline: bool = True  # no node (transitively) ever awaits: runs on the caller's stack
    window: int = 1  # frames of this region in flight at once (generator regions)


@dataclass(eq=False)
class ScopePlan:
    graph: Graph
    root: Region
    regions: dict[tuple[str, ...], Region]
    order: list[str]


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _representative(node: Node, context: tuple[str, ...]) -> str:
    """The node of region ``context`` that stands for ``node``: itself, or its generator."""
    return node.name if node.context == context else node.context[len(context)]


@cache
def plan_scope(graph: Graph) -> ScopePlan:
    order = _topo(graph)
    regions: dict[tuple[str, ...], Region] = {(): Region(graph, None, ())}
    for name in order:  # generators precede the nodes of their region
        node = graph.nodes[name]
        if node.context not in regions:
            regions[node.context] = Region(graph, node.context[-1], node.context)
        regions[node.context].nodes.append(name)
        if node.is_generator and node.out_context not in regions:
            # Every generator has a region, even an empty one (its stream is only collected).
            regions[node.out_context] = Region(graph, name, node.out_context)
    for ctx, region in regions.items():
        if ctx:
            regions[ctx[:-1]].children[ctx[-1]] = region
    for region in regions.values():
        region.deps = {n: [] for n in region.nodes}

    hoisted: set[tuple[tuple[str, ...], str, str]] = set()  # deps already recorded
    for a, b in _dependencies(graph):
        na, nb = graph.nodes[a], graph.nodes[b]
        common = _common_prefix(na.context, nb.context)
        ra, rb = _representative(na, common), _representative(nb, common)
        if ra != rb and (common, rb, ra) not in hoisted:
            hoisted.add((common, rb, ra))
            regions[common].deps[rb].append(ra)

    for region in regions.values():
        region.levels = _levels(region)
        limits = [graph.nodes[n].max_concurrent for n in region.nodes]
        region.window = max(limits, default=1)
    for ctx in sorted(regions, key=len, reverse=True):  # children first
        region = regions[ctx]
        region.inline = all(_runs_inline(graph.nodes[n], region) for n in region.nodes)
    return ScopePlan(graph, regions[()], regions, order)


def _runs_inline(node: Node, region: Region) -> bool:
    if node.kind is NodeKind.OP:
        assert node.op is not None
        if not node.op.runs_inline:
            return False
        child = region.children.get(node.name)
        return child is None or child.inline
    assert node.body is not None
    return scope_is_inline(node.body)


def scope_is_inline(graph: Graph) -> bool:
    """True when no node of the scope, at any depth, ever awaits."""
    return all(r.inline for r in plan_scope(graph).regions.values())


def scope_is_bounded(graph: Graph) -> bool:
    """True when one run of the scope is a bounded amount of work: no generator and no loop
    at any depth. Only such a run may go without a chance to pause for the event loop."""
    return all((node.kind is NodeKind.OP and not node.is_generator)
               or (node.kind is NodeKind.GRAPH and node.body is not None
                   and scope_is_bounded(node.body))
               for node in graph.nodes.values())


def _dependencies(graph: Graph) -> list[tuple[str, str]]:
    deps = [(a, b) for a, b in graph.edges if a in graph.nodes and b in graph.nodes]
    for node in graph.nodes.values():
        for arg in node.args.values():
            for source in output_refs(arg):  # every option of a coalesce too
                if source.node != node.name:
                    deps.append((source.node, node.name))
    return list(dict.fromkeys(deps))


def _topo(graph: Graph) -> list[str]:
    """Repeatedly the first node, in declaration order, whose dependencies are all placed.

    Kahn's algorithm with a heap of ready nodes keyed by declaration index.
    """
    index = {name: i for i, name in enumerate(graph.nodes)}
    names = list(graph.nodes)
    missing = dict.fromkeys(names, 0)  # dependencies not placed yet
    succs: dict[str, list[str]] = {n: [] for n in names}
    for a, b in _dependencies(graph):
        missing[b] += 1
        succs[a].append(b)
    ready = [index[n] for n in names if not missing[n]]  # already a heap: ascending
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for b in succs[name]:
            missing[b] -= 1
            if not missing[b]:
                heapq.heappush(ready, index[b])
    if len(order) < len(names):  # pragma: no cover - finalize() already refused cycles
        raise AssertionError("cycle")
    return order


def _levels(region: Region) -> list[list[str]]:
    """Longest-path layers; a cycle here means a frame would wait for its own stream's end."""
    level: dict[str, int] = {}
    missing: dict[str, int] = {}  # dependencies without a level yet
    dependents: dict[str, list[str]] = {}
    for name in region.nodes:
        deps = region.deps[name]
        missing[name] = len(deps)
        for d in deps:
            dependents.setdefault(d, []).append(name)
    queue = [name for name in region.nodes if not missing[name]]
    for name in queue:  # grows while iterated: Kahn's algorithm
        level[name] = 1 + max((level[d] for d in region.deps[name]), default=-1)
        for b in dependents.get(name, ()):
            missing[b] -= 1
            if not missing[b]:
                queue.append(b)
    if len(level) < len(region.nodes):
        node = region.scope.nodes[next(n for n in region.nodes if n not in level)]
        waits = [d for d in region.deps[node.name] if d not in level]
        raise GraphError(
            f"{node.name!r} must wait for the whole stream of {waits[0]!r} to end, yet it "
            f"also feeds ops that run once per frame of that stream", node.loc.file,
            node.loc.line, "a per-frame op cannot depend on the end of its own stream; "
            "move the per-frame consumer after a .collect()")
    grouped: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for name in region.nodes:
        grouped[level[name]].append(name)
    return grouped
