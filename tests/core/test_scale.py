"""Building, planning and interpreting a graph is linear in its size.

No wall-clock here: these tests pin *what* is computed (names, orders, levels,
errors) on large and on tricky graphs, and count the operations that used to
grow quadratically (name probes, passes over the edges).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from operonx.core import END, PARENT, START, Engine, GraphError, GraphOp, op
from operonx.ir.build import ScopeDraft, _topological_order, _unordered_reads
from operonx.ir.model import Node, NodeKind, OutputRef, SourceLoc
from operonx.ir.plan import plan_scope

BIG = 3000


@op
def step(x: int) -> dict[str, int]:
    return {"x": x + 1}


@op
def source(n: int) -> Iterator[dict[str, int]]:
    for i in range(n):
        yield {"x": i}


@op
def keep(x: int) -> dict[str, int]:
    return {"y": x}


class CountingDict(dict[Any, Any]):
    """A dict that counts membership probes and full iterations."""

    probes = 0
    scans = 0

    def __contains__(self, key: object) -> bool:
        CountingDict.probes += 1
        return super().__contains__(key)

    def __iter__(self) -> Iterator[Any]:
        CountingDict.scans += 1
        return super().__iter__()


def _chain(n: int) -> GraphOp:
    with GraphOp(name="chain") as g:
        prev = step(x=PARENT["x"])
        START >> prev
        for _ in range(n - 1):
            nxt = step(x=prev["x"])
            prev >> nxt
            prev = nxt
        prev >> END
    return g


# ------------------------------------------------------------------ big graphs


def test_a_3000_op_chain_builds_plans_and_runs() -> None:
    g = _chain(BIG)
    names = list(g.ir.nodes)
    assert names[:3] == ["step", "step_2", "step_3"] and names[-1] == f"step_{BIG}"
    plan = plan_scope(g.ir)
    assert plan.order == names
    assert plan.root.levels == [[n] for n in names]
    assert Engine(g).run_sync({"x": 0}) == {"x": BIG}


def test_a_3000_op_fan_out_builds_plans_and_runs() -> None:
    with GraphOp(name="fan") as g:
        src = source(n=PARENT["n"])
        START >> src
        first = keep(x=src["x"], name="k0")
        src >> first >> END
        for _ in range(BIG - 1):
            src >> keep(x=src["x"])
    ir = g.ir
    names = list(ir.nodes)
    assert names[:4] == ["source", "k0", "keep", "keep_2"] and names[-1] == f"keep_{BIG - 1}"
    plan = plan_scope(ir)
    assert plan.order == names
    assert plan.regions[("source",)].levels == [names[1:]]
    assert Engine(g).run_sync({"n": 3}) == {"y": [0, 1, 2]}


# ------------------------------------------------------------- counted operations


def test_naming_n_uses_of_one_op_probes_the_names_linearly() -> None:
    with GraphOp(name="g") as g:
        draft = g._draft
        assert draft is not None
        draft.nodes = CountingDict(draft.nodes)
        CountingDict.probes = 0
        first = step(x=PARENT["x"])
        START >> first
        for _ in range(BIG - 1):
            first >> step(x=first["x"])
        probes = CountingDict.probes
    assert probes <= 4 * BIG  # was ~BIG²/2: every use re-probed step_2, step_3, ...
    assert list(g.ir.nodes)[-1] == f"step_{BIG}"


def test_generated_names_skip_names_taken_with_name_and_keep_their_sequence() -> None:
    with GraphOp(name="g") as g:
        a = step(x=PARENT["x"], name="step_3")
        nodes = [a] + [step(x=a["x"]) for _ in range(4)]
        b = step(x=a["x"], name="step_7")
        nodes += [b] + [step(x=a["x"]) for _ in range(2)]
        for n in nodes:
            START >> n >> END if n is nodes[0] else a >> n
    assert list(g.ir.nodes) == ["step_3", "step", "step_2", "step_4", "step_5", "step_7",
                                "step_6", "step_8"]


def test_finalize_scans_the_edges_a_constant_number_of_times() -> None:
    with GraphOp(name="g") as g:
        draft = g._draft
        assert draft is not None
        prev = step(x=PARENT["x"])
        START >> prev
        for _ in range(199):
            nxt = step(x=prev["x"])
            prev >> nxt
            prev = nxt
        prev >> END
        draft.edges = CountingDict(draft.edges)
        CountingDict.scans = 0
    assert CountingDict.scans <= 10  # was one scan per node (ancestor sets)
    assert len(g.ir.nodes) == 200


# ------------------------------------------------- orders match their definitions


def _draft(n: int, edges: list[tuple[int, int]], reads: list[tuple[int, int]]) -> ScopeDraft:
    loc = SourceLoc("f.py", 1)
    d = ScopeDraft("g", "graph", loc, False, 64)
    for i in range(n):
        d.nodes[f"n{i}"] = Node(name=f"n{i}", kind=NodeKind.OP, loc=loc, args={})
    for a, b in edges:
        d.edges[(f"n{a}", f"n{b}")] = loc
    for k, (a, b) in enumerate(reads):
        d.nodes[f"n{b}"].args[f"a{k}"] = OutputRef(f"n{a}", "x", None)
    return d


def _rounds_reference(d: ScopeDraft) -> list[str] | None:
    """The definition: round by round, every ready node, in declaration order."""
    preds = {n: {a for a, b in d.edges if b == n and a in d.nodes} for n in d.nodes}
    done: list[str] = []
    remaining = list(d.nodes)
    while remaining:
        ready = [n for n in remaining if preds[n] <= set(done)]
        if not ready:
            return None
        done += ready
        remaining = [n for n in remaining if n not in ready]
    return done


def _reachable_reference(d: ScopeDraft, a: str, b: str) -> bool:
    stack, seen = [a], {a}
    while stack:
        x = stack.pop()
        for p, q in d.edges:
            if p == x and q not in seen:
                if q == b:
                    return True
                seen.add(q)
                stack.append(q)
    return False


def test_build_order_and_unordered_reads_match_their_definitions() -> None:
    rng = random.Random(7)
    for _ in range(400):
        n = rng.randint(1, 10)
        perm = rng.sample(range(n), n)  # a hidden order that differs from declaration
        edges = [(perm[i], perm[j]) for i in range(n) for j in range(i + 1, n)
                 if rng.random() < 0.3]
        reads = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(0, 6))]
        d = _draft(n, edges, reads)
        expected = _rounds_reference(d)
        assert _topological_order(d) == expected
        assert expected is not None
        unordered = {(f"n{a}", f"n{b}") for a, b in reads
                     if not _reachable_reference(d, f"n{a}", f"n{b}")}
        assert _unordered_reads(d, expected) == unordered


def test_build_order_goes_round_by_round() -> None:
    # n0 >> n1, n2 free: round 1 is [n0, n2], then n1 (not n0, n1, n2).
    assert _topological_order(_draft(3, [(0, 1)], [])) == ["n0", "n2", "n1"]
    assert _topological_order(_draft(4, [(1, 0), (2, 3)], [])) == ["n1", "n2", "n0", "n3"]


def test_cycle_error_is_unchanged() -> None:
    d = _draft(4, [(0, 1), (1, 2), (2, 1), (2, 3)], [])
    with pytest.raises(GraphError, match=r"cycle in graph 'g': n2 >> n1 >> n2"):
        _topological_order(d)


def test_plan_order_takes_the_first_ready_node_in_declaration_order() -> None:
    with GraphOp(name="g") as g:
        p = step(x=PARENT["x"], name="p")
        q = step(x=p["x"], name="q")
        r = step(x=PARENT["x"], name="r")
        START >> [p, r]
        p >> q >> END
    assert plan_scope(g.ir).order == ["p", "q", "r"]  # not round by round: p, r, q
    assert plan_scope(g.ir).root.levels == [["p", "r"], ["q"]]


@op
def numbers(n: int) -> Iterator[dict[str, int]]:
    for i in range(n):
        yield {"x": i}


@op
def total(ys: list[int]) -> dict[str, int]:
    return {"z": sum(ys)}


@op
def add(x: int, z: int) -> dict[str, int]:
    return {"w": x + z}


def test_a_frame_waiting_for_its_own_stream_is_refused_as_before() -> None:
    with pytest.raises(GraphError, match="'numbers' must wait for the whole stream of 'total' "
                       "to end, yet it also feeds ops that run once per frame of that stream"):
        with GraphOp(name="g"):
            s = numbers(n=PARENT["n"])
            a = keep(x=s["x"])
            c = total(ys=a["y"].collect())
            b = add(x=s["x"], z=c["z"])
            START >> s >> a >> c >> b >> END


def test_plan_levels_of_a_wide_and_deep_graph() -> None:
    with GraphOp(name="g") as g:
        heads = [step(x=PARENT["x"]) for _ in range(BIG // 2)]
        tails = [step(x=h["x"]) for h in heads]
        for h, t in zip(heads, tails, strict=True):
            START >> h >> t
        tails[0] >> END
    levels = plan_scope(g.ir).root.levels
    names = list(g.ir.nodes)
    assert levels == [names[:BIG // 2], names[BIG // 2:]]


def test_locations_in_a_big_module_body_are_the_exact_lines() -> None:
    # user_loc() reads lines through a cached table for big code objects (f_lineno
    # rescans the whole line table): it must agree with f_lineno everywhere.
    import sys

    from operonx.core import dsl

    seen: list[tuple[int, int]] = []

    def probe(*_args: Any, **_kwargs: Any) -> int:
        frame = sys._getframe(1)
        seen.append((dsl._line_of(frame), frame.f_lineno))
        return 0

    parts = [f"x{i} = probe(1,\n    probe(2),\n    k=[probe(3)\n       for _ in range(1)])"
             if i % 3 == 0 else "probe(); y = (probe()\n    + probe())" for i in range(1500)]
    parts.append("for j in range(3):\n    probe()\n    if j:\n        probe()")
    code = compile("\n".join(parts) + "\n", "<big>", "exec")
    assert len(code.co_code) > dsl._BIG_CODE
    exec(code, {"probe": probe})
    assert len(seen) > 4000
    assert all(fast == slow for fast, slow in seen)
