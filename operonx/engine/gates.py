"""Branch decisions and skip gates (SPEC §8), built once per Engine from the IR.

Only the nodes :func:`operonx.ir.branching.skip_analysis` marks skippable get a
gate; the region loops call it just before the node would run, when everything
it waits for is settled, and mark the node skipped (or failed) instead of
running it. The rule the gate applies is the one written in
:mod:`operonx.ir.branching`.

A branch is decided at most once per instance of its context (a scope run, or
a frame when its condition reads a stream), by the first target that asks; the
arm taken is kept in that instance (``Inst.decisions``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from operonx.engine.routes import presence
from operonx.engine.runtime import OP_FAILURES, Inst, Run
from operonx.errors import OpError
from operonx.ir import condition
from operonx.ir.branching import effective, read_may_be_absent
from operonx.ir.model import Branch, Graph, InputRef, Node, OutputRef, leaves

RUN, SKIP, FAIL = 0, 1, 2
NO_ARM, FAILED = -1, -2  # decisions besides an arm index

Gate = Callable[[Run, Inst], int]


class Decider:
    """Decides one branch in one instance: the index of the arm taken, NO_ARM or FAILED."""

    def __init__(self, graph: Graph, branch: Branch, slot: int, qual: str) -> None:
        self.slot = slot
        self.qualname = qual + branch.name
        self.text = "; ".join(
            "else" if arm.condition is None else condition.describe(arm.condition)
            for arm in branch.arms)
        at = branch.context
        refs = [r for arm in branch.arms if arm.condition is not None
                for r in condition.refs(arm.condition) if isinstance(r, OutputRef)]
        # A condition on a value that is not there (its producer was skipped) takes no arm;
        # only the values the IR says may be absent are checked.
        self.present = [presence(graph, at, r) for r in dict.fromkeys(refs)
                        if read_may_be_absent(graph, set(graph.skippable), r, at)]

        def read(ref: InputRef | OutputRef) -> Callable[[Inst], Any]:
            key = ref.key
            if isinstance(ref, InputRef):
                return lambda inst: inst.scope.inputs[key]
            name = ref.node
            up = len(at) - len(graph.nodes[name].out_context)
            if up == 0:
                return lambda inst: inst.vals[name][key]
            return lambda inst: inst.up(up).vals[name][key]

        self.tests = [None if arm.condition is None else
                      condition.compile_condition(arm.condition, read) for arm in branch.arms]

    def decide(self, run: Run, inst: Inst) -> int:
        decisions = inst.decisions
        if decisions is None:
            decisions = inst.decisions = {}
        elif self.slot in decisions:
            return decisions[self.slot]
        decisions[self.slot] = arm = self._evaluate(run, inst)
        return arm

    def _evaluate(self, run: Run, inst: Inst) -> int:
        for present in self.present:
            if not present(inst):
                return NO_ARM
        try:
            for i, test in enumerate(self.tests):
                if test is None or test(inst):
                    return i
        except OP_FAILURES as exc:  # e.g. ``None < 3``: the branch fails like an op would
            if not run.collect_errors:
                where = f" at index {inst.index}" if inst.index else ""
                err = OpError(f"branch {self.qualname!r}{where} raised {type(exc).__name__}: "
                              f"{exc} (deciding {self.text})", self.qualname, inst.index)
                run.fail(err)
                raise err from exc
            run.record(self.qualname, inst.index, exc)
            return FAILED
        return NO_ARM


class ScopeGates:
    """What the gates of one scope share: its deciders, incoming edges and edge guards."""

    def __init__(self, graph: Graph, qual: str) -> None:
        self.graph = graph
        self.deciders = {b.name: Decider(graph, b, slot, qual)
                         for slot, b in enumerate(graph.branches)}
        self.guards = graph.edge_guards()
        self.incoming: dict[str, list[str]] = {}
        for a, b in graph.edges:
            self.incoming.setdefault(b, []).append(a)

    def gate(self, node: Node) -> Gate | None:
        """The check a skippable node makes before it runs; None when nothing can skip it."""
        graph = self.graph
        if node.name not in graph.skippable:
            return None
        return _gate(graph, node, self.incoming.get(node.name, []), self.guards, self.deciders)


def _gate(graph: Graph, node: Node, incoming: list[str],
          guards: dict[tuple[str, str], tuple[Branch, int]], decide: dict[str, Decider]) -> Gate:
    at = node.context
    skippable = set(graph.skippable)
    # Per argument that may find nothing: the checks of its options (any one present will do).
    # Reads the IR proves are always there (an outer value, a node no branch can skip, a
    # PARENT or literal default) need no check.
    reads: list[list[Callable[[Inst], bool]]] = []
    for source in node.args.values():
        options = leaves(source)
        refs = [o for o in options if isinstance(o, OutputRef)]
        if len(refs) < len(options) or not refs:
            continue
        if all(read_may_be_absent(graph, skippable, r, at) for r in refs):
            reads.append([presence(graph, at, r) for r in refs])
    # Incoming edges: (levels up, the node whose skip kills the edge or "", guard or None).
    edges: list[tuple[int, str, tuple[Decider, int, int] | None]] = []
    for a in incoming:
        guarded = guards.get((a, node.name))
        guard = None
        if guarded is not None:
            branch, arm = guarded
            guard = (decide[branch.name], arm, len(at) - len(branch.context))
        if a == "START":
            rep, up = "", 0
        else:
            up, rep = effective(graph.nodes, a, at)
            if rep not in skippable:
                rep = ""  # that predecessor always runs
        if not rep and guard is None:
            edges = []  # an edge that is always live: the edge rule holds
            break
        edges.append((up, rep, guard))

    def check(run: Run, inst: Inst) -> int:
        for options in reads:
            for present in options:
                if present(inst):
                    break
            else:
                return SKIP
        if not edges:
            return RUN
        for up, rep, guard in edges:
            if rep and (inst if up == 0 else inst.up(up)).is_skipped(rep):
                continue
            if guard is None:
                return RUN
            decider, arm, branch_up = guard
            taken = decider.decide(run, inst if branch_up == 0 else inst.up(branch_up))
            if taken == arm:
                return RUN
            if taken == FAILED:
                return FAIL
        return SKIP

    return check
