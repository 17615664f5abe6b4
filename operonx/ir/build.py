"""Turn a finished ``with GraphOp(...)`` block (a :class:`ScopeDraft`) into a :class:`Graph`.

Every check here raises :class:`GraphError` pointing at the ``file:line`` of the
node at fault, with a did-you-mean where a near miss is likely.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operonx.errors import GraphError
from operonx.ir import condition
from operonx.ir.branching import (
    BranchDraft,
    ancestors,
    build_branches,
    check_bypass,
    skip_analysis,
)
from operonx.ir.model import (
    Branch,
    Coalesce,
    Const,
    Graph,
    GraphKind,
    InputRef,
    Node,
    NodeKind,
    OutputRef,
    ResultSpec,
    Source,
    SourceLoc,
    UntilExpr,
    leaves,
    output_refs,
)
from operonx.ir.plan import plan_scope
from operonx.ir.until import UntilSyntaxError, parse_until

TERMINALS = ("START", "END")


@dataclass
class ScopeDraft:
    """What the DSL records while a ``with`` block is open."""

    name: str
    kind: GraphKind
    loc: SourceLoc
    nested: bool
    max_stream_concurrent: int
    declared_inputs: dict[str, Source] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    until: str | Callable[[Mapping[str, Any]], Any] | None = None
    max_iterations: int = 1000
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: dict[tuple[str, str], SourceLoc] = field(default_factory=dict)
    writebacks: list[tuple[OutputRef, str, SourceLoc]] = field(default_factory=list)
    branches: list[BranchDraft] = field(default_factory=list)  # in if_(...) call order
    # base name -> the next ``_N`` suffix to try for it (see GraphOp._unique_name)
    name_counters: dict[str, int] = field(default_factory=dict)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else ""


def _err(message: str, loc: SourceLoc, hint: str = "") -> GraphError:
    return GraphError(message, loc.file, loc.line, hint or None)


def finalize(draft: ScopeDraft) -> Graph:
    nodes = draft.nodes
    _check_connected(draft)
    branches = build_branches(draft.branches, nodes, draft.edges)  # adds their edges
    order = _topological_order(draft)
    unordered = _unordered_reads(draft, order)
    guard = {t: b for b in branches for t in b.targets}
    decided: set[str] = set()  # branches whose conditions are checked and context is known
    for name in order:
        node = nodes[name]
        for arg, source in node.args.items():
            for ref in output_refs(source):
                _check_ref(draft, node, arg, ref, unordered)
            if isinstance(source, Coalesce):
                _check_coalesce(draft, node, arg, source)
        node.context = _context_of(draft, node)
        branch = guard.get(name)
        if branch is not None:
            if branch.name not in decided:
                decided.add(branch.name)
                branch.context = _decide_where(draft, branch)
            node.context = _target_context(node, branch)
    if branches:
        check_bypass(branches, nodes, draft.edges)
    for ref, _target, loc in draft.writebacks:
        _check_ref_key(draft, ref, loc)

    results = _results(draft)
    writebacks = {target: ResultSpec(ref.node, ref.key, len(nodes[ref.node].out_context))
                  for ref, target, _loc in draft.writebacks}
    reads = tuple(dict.fromkeys(
        s.key for n in (nodes[x] for x in order) for a in n.args.values() for s in leaves(a)
        if isinstance(s, InputRef) and n.kind is NodeKind.OP
    ))
    # A sub-graph's or loop's declared inputs are read in *this* scope too, and so are the
    # PARENT keys branch conditions compare.
    reads = tuple(dict.fromkeys([*reads, *(
        s.key for n in nodes.values() if n.kind is not NodeKind.OP
        for a in n.args.values() for s in leaves(a) if isinstance(s, InputRef)), *(
        r.key for b in branches for arm in b.arms if arm.condition is not None
        for r in condition.refs(arm.condition) if isinstance(r, InputRef))]))
    _check_reads(draft, writebacks, branches)
    until = _until(draft)
    graph = Graph(
        name=draft.name, kind=draft.kind, loc=draft.loc,
        nodes={name: nodes[name] for name in nodes},
        edges=tuple(draft.edges), results=results, writebacks=writebacks,
        declared_inputs=dict(draft.declared_inputs), state=dict(draft.state),
        reads=reads, until=until, max_iterations=draft.max_iterations,
        max_stream_concurrent=draft.max_stream_concurrent, nested=draft.nested,
        branches=branches,
    )
    plan = plan_scope(graph)  # refuses frames that would wait for their own stream's end
    if branches or any(n.body is not None and n.body.optional_results for n in nodes.values()):
        graph.skippable, graph.optional_results = skip_analysis(graph, plan.order)
    return graph


def _check_connected(draft: ScopeDraft) -> None:
    touched = {x for edge in draft.edges for x in edge}
    touched |= {r.node for n in draft.nodes.values() for s in n.args.values()
                for r in output_refs(s)}
    touched |= {ref.node for ref, _t, _l in draft.writebacks}
    touched |= {x for b in draft.branches for _c, targets in b.arms for x in targets}
    for node in draft.nodes.values():
        if node.name not in touched:
            raise _err(f"op {node.name!r} is not wired into graph {draft.name!r}", node.loc,
                       f"connect it, e.g. `START >> {node.name}` and `{node.name} >> END`")


def _topological_order(draft: ScopeDraft) -> list[str]:
    """Declaration order, constrained by ``>>`` edges; a cycle is a GraphError.

    Round by round, every node whose predecessors are all placed, in declaration
    order: that is, ordered by (longest ``>>`` path from a source, declaration index).
    Computed with Kahn's algorithm in O(nodes + edges).
    """
    names = list(draft.nodes)
    preds: dict[str, set[str]] = {n: set() for n in names}
    succs: dict[str, list[str]] = {n: [] for n in names}
    for a, b in draft.edges:
        if a in preds and b in preds:
            preds[b].add(a)
            succs[a].append(b)
    missing = {n: len(preds[n]) for n in names}  # predecessors not placed yet
    depth = dict.fromkeys(names, 0)  # the round a node is placed in
    ready = [n for n in names if not missing[n]]
    placed = 0
    while placed < len(ready):  # ``ready`` doubles as the FIFO of placed nodes
        a = ready[placed]
        placed += 1
        for b in succs[a]:
            depth[b] = max(depth[b], depth[a] + 1)
            missing[b] -= 1
            if not missing[b]:
                ready.append(b)
    if placed < len(names):
        done = set(ready)
        remaining = [n for n in names if n not in done]
        cycle = _find_cycle({n: preds[n] - done for n in remaining})
        first = draft.nodes[cycle[0]]
        raise _err("cycle in graph " f"{draft.name!r}: " + " >> ".join([*cycle, cycle[0]]),
                   first.loc, "ops may not feed back into themselves; use GraphOp.loop "
                   "for feedback, writing state with `node['k'] >> PARENT['x']`")
    rounds: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for n in names:
        rounds[depth[n]].append(n)
    return [n for level in rounds for n in level]


def _find_cycle(preds: dict[str, set[str]]) -> list[str]:
    start = next(iter(preds))
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = sorted(preds[node])[0]
    cycle = path[seen[node]:]
    cycle.reverse()  # predecessors were followed: print in >> direction
    return cycle


def _unordered_reads(draft: ScopeDraft, order: list[str]) -> set[tuple[str, str]]:
    """The (producer, reader) pairs of ``node["k"]`` reads with no ``>>`` path between them.

    Most reads come from a direct predecessor (one set lookup). The others are
    grouped by producer: one forward search from each such producer, which never
    goes deeper (in ``>>`` rounds) than its deepest pending reader and stops as
    soon as every pending reader is found.
    """
    nodes = draft.nodes
    preds: dict[str, set[str]] = {n: set() for n in nodes}
    succs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in draft.edges:
        if a in nodes and b in nodes:
            preds[b].add(a)
            succs[a].append(b)
    pending: dict[str, set[str]] = {}  # producer -> readers with no direct edge from it
    for name in order:
        for arg in nodes[name].args.values():
            for source in output_refs(arg):
                if source.node not in preds[name]:
                    pending.setdefault(source.node, set()).add(name)
    if not pending:
        return set()
    depth: dict[str, int] = {}  # longest path from a source: an edge always goes deeper
    for name in order:
        depth[name] = 1 + max((depth[p] for p in preds[name]), default=-1)
    unordered: set[tuple[str, str]] = set()
    for producer, readers in pending.items():
        left = set(readers)
        limit = max(depth[r] for r in left)
        seen = {producer}
        stack = [producer]
        while stack and left:
            for b in succs[stack.pop()]:
                if b not in seen:
                    seen.add(b)
                    left.discard(b)
                    if depth[b] < limit:
                        stack.append(b)
        unordered.update((producer, r) for r in left)
    return unordered


def _check_ref_key(draft: ScopeDraft, ref: OutputRef, loc: SourceLoc) -> None:
    producer = draft.nodes[ref.node]
    outputs = producer.outputs
    if outputs is None:
        raise _err(f"op {producer.name!r} builds its result dict dynamically, so its outputs "
                   f"are unknown and {ref.node}[{ref.key!r}] cannot be checked", loc,
                   f"declare them: @op(outputs=[{ref.key!r}, ...])")
    if ref.key not in outputs:
        hint = did_you_mean(ref.key, outputs)
        listed = ", ".join(repr(k) for k in outputs) or "none"
        raise _err(f"{ref.node!r} has no output {ref.key!r} (its outputs: {listed})", loc, hint)
    if ref.collect is not None and not producer.out_context:
        raise _err(f"{ref.node}[{ref.key!r}].collect() collects a value that is not a stream",
                   loc, f"{ref.node!r} runs once, not once per frame; read it without .collect()")


def _check_ref(draft: ScopeDraft, node: Node, arg: str, ref: OutputRef,
               unordered: set[tuple[str, str]]) -> None:
    _check_ref_key(draft, ref, node.loc)
    if (ref.node, node.name) in unordered:
        raise _err(f"{node.name!r} reads {ref.node}[{ref.key!r}] (argument {arg!r}) but nothing "
                   f"orders {ref.node!r} before {node.name!r}", node.loc,
                   f"did you mean to add `{ref.node} >> {node.name}`?")


def _ref_context(nodes: Mapping[str, Node], ref: OutputRef) -> tuple[str, ...]:
    ctx = nodes[ref.node].out_context
    return ctx[:-1] if ref.collect is not None else ctx


def _context_of(draft: ScopeDraft, node: Node) -> tuple[str, ...]:
    """The deepest context among the node's inputs; they must all lie on one chain."""
    best: tuple[str, ...] = ()
    best_ref: OutputRef | None = None
    for ref in (r for arg in node.args.values() for r in output_refs(arg)):
        ctx = _ref_context(draft.nodes, ref)
        shorter, longer = sorted((best, ctx), key=len)
        if longer[: len(shorter)] != shorter:
            other = f"{best_ref.node}[{best_ref.key!r}]" if best_ref else "?"
            raise _err(f"{node.name!r} reads from two independent streams: "
                       f"{other} (per frame of {best[-1]!r}) and {ref.node}[{ref.key!r}] "
                       f"(per frame of {ctx[-1]!r})", node.loc,
                       "frames of different generators cannot be paired; .collect() one of them")
        if len(ctx) > len(best):
            best, best_ref = ctx, ref
    return best


def _check_coalesce(draft: ScopeDraft, node: Node, arg: str, source: Coalesce) -> None:
    """Options of one stream depth; a PARENT ref or literal only as the last (a default)."""
    for option in source.options[:-1]:
        if not isinstance(option, OutputRef):
            what = "a literal" if isinstance(option, Const) else f"PARENT[{option.key!r}]"
            raise _err(f"{node.name!r}: coalesce(...) for argument {arg!r} has {what} before "
                       "its last option, so the options after it are never read", node.loc,
                       "put the default last: coalesce(a['k'], b['k'], default)")
    refs = [o for o in source.options if isinstance(o, OutputRef)]
    contexts = [_ref_context(draft.nodes, r) for r in refs]
    for ref, ctx in zip(refs[1:], contexts[1:], strict=True):
        if ctx != contexts[0]:
            def depth(c: tuple[str, ...]) -> str:
                return f"per frame of {c[-1]!r}" if c else "once per run"

            raise _err(f"{node.name!r}: coalesce(...) for argument {arg!r} mixes stream depths: "
                       f"{refs[0].node}[{refs[0].key!r}] ({depth(contexts[0])}) and "
                       f"{ref.node}[{ref.key!r}] ({depth(ctx)})", node.loc,
                       "coalesce picks one value per frame; .collect() the deeper one first")


def _decide_where(draft: ScopeDraft, branch: Branch) -> tuple[str, ...]:
    """Check what a branch's conditions read; return the context its decision is made in.

    Each ref must come from a branch source or one of their ``>>`` ancestors
    (so its value exists when the branch is decided), and is read per frame
    (no ``.collect()``). The decision lives in the deepest context they read.
    """
    before = ancestors([s for s in branch.sources if s != "START"], draft.edges)
    before.update(s for s in branch.sources if s != "START")
    best: tuple[str, ...] = ()
    best_ref: OutputRef | None = None
    for arm in branch.arms:
        for ref in condition.refs(arm.condition) if arm.condition is not None else ():
            if not isinstance(ref, OutputRef):
                continue
            text = f"{ref.node}[{ref.key!r}]"
            if ref.node not in before:
                placed = " >> ".join(branch.sources)
                raise _err(f"the branch condition reads {text}, but {ref.node!r} is not before "
                           f"the branch (it is placed after {placed})", branch.loc,
                           f"did you mean to add `{ref.node} >> ...` before the branch?")
            _check_ref_key(draft, ref, branch.loc)
            ctx = draft.nodes[ref.node].out_context
            shorter, longer = sorted((best, ctx), key=len)
            if longer[: len(shorter)] != shorter:
                other = f"{best_ref.node}[{best_ref.key!r}]" if best_ref else "?"
                raise _err(f"the branch condition reads two independent streams: {other} and "
                           f"{text}", branch.loc,
                           "frames of different generators cannot be paired")
            if len(ctx) > len(best):
                best, best_ref = ctx, ref
    return best


def _target_context(node: Node, branch: Branch) -> tuple[str, ...]:
    """A target runs where its branch is decided, or deeper (when its inputs are)."""
    ctx, where = node.context, branch.context
    if ctx[: len(where)] == where:
        return ctx
    if where[: len(ctx)] == ctx:
        return where  # e.g. a target reading only PARENT runs per frame of the condition
    raise _err(f"{node.name!r} runs per frame of {ctx[-1]!r}, but its branch is decided per "
               f"frame of {where[-1]!r}, an independent stream", node.loc,
               "frames of different generators cannot be paired")


def _results(draft: ScopeDraft) -> dict[str, ResultSpec]:
    results: dict[str, ResultSpec] = {}
    for a, b in draft.edges:
        if b != "END" or a not in draft.nodes:
            continue
        producer = draft.nodes[a]
        outputs = producer.outputs
        if outputs is None:
            raise _err(f"op {a!r} is wired to END but builds its result dict dynamically",
                       producer.loc, "declare its keys: @op(outputs=[...])")
        for key in outputs:
            if key in results and results[key].node != a:
                raise _err(f"result key {key!r} is produced by both {results[key].node!r} and "
                           f"{a!r}", producer.loc, "rename one output, or wire only one to END")
            results[key] = ResultSpec(a, key, len(producer.out_context))
    return results


def _check_reads(draft: ScopeDraft, writebacks: Mapping[str, ResultSpec],
                 branches: tuple[Branch, ...] = ()) -> None:
    known = set(draft.declared_inputs) | set(draft.state)
    for branch in branches:
        for arm in branch.arms:
            for ref in condition.refs(arm.condition) if arm.condition is not None else ():
                if isinstance(ref, InputRef) and ref.key not in known and (
                        draft.kind == "loop" or draft.nested):
                    what = "a state variable of loop" if draft.kind == "loop" else \
                        "an input of sub-graph"
                    raise _err(f"a branch condition reads PARENT[{ref.key!r}], which is not "
                               f"{what} {draft.name!r}", branch.loc,
                               did_you_mean(ref.key, known))
    for node in draft.nodes.values():
        for arg, source in ((a, s) for a, src in node.args.items() for s in leaves(src)):
            if isinstance(source, InputRef) and source.key not in known:
                if draft.kind == "loop":
                    raise _err(f"{node.name!r} reads PARENT[{source.key!r}] (argument {arg!r}), "
                               f"which is not a state variable of loop {draft.name!r}", node.loc,
                               did_you_mean(source.key, known) or
                               f"declare it: GraphOp.loop(..., {source.key}=<initial value>)")
                if draft.nested:
                    raise _err(f"{node.name!r} reads PARENT[{source.key!r}] (argument {arg!r}), "
                               f"which is not an input of sub-graph {draft.name!r}", node.loc,
                               did_you_mean(source.key, known) or
                               f"declare it: GraphOp(..., inputs={{{source.key!r}: <ref>}})")
    if draft.kind == "loop":
        for target in writebacks:
            if target not in known:
                loc = next(at for _ref, t, at in draft.writebacks if t == target)
                raise _err(f"write-back to PARENT[{target!r}], which is not a state variable of "
                           f"loop {draft.name!r}", loc, did_you_mean(target, known))


def _until(draft: ScopeDraft) -> UntilExpr | Callable[[Mapping[str, Any]], Any] | None:
    if draft.kind != "loop":
        return None
    if callable(draft.until):
        return draft.until
    if not isinstance(draft.until, str):
        raise _err(f"loop {draft.name!r}: until= must be a string expression or a callable, "
                   f"not {type(draft.until).__name__}", draft.loc)
    state = [*draft.state, *draft.declared_inputs]
    try:
        return parse_until(draft.until, state)
    except UntilSyntaxError as err:
        raise _err(f"loop {draft.name!r}: {err} (column {err.col + 1})", draft.loc) from None
