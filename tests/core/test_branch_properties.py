"""Property: the Engine routes like a plain-Python reference (SPEC §8), for random tables.

A routing table is a list of arms (each a condition on the value, built from
the DSL's operators) with or without an else. It is placed at depth 0 (one
value) or inside a stream (a value per frame); each arm feeds a target, every
target feeds a ``coalesce`` join, and one arm's target feeds a follower (a
transitively skipped chain). The reference computes, per value, the first arm
whose condition holds in plain Python; END must hold exactly the taken frames,
in yield order, and absent keys must be the ones the IR calls optional.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from operonx.core import END, PARENT, START, Engine, GraphOp, coalesce, if_, op

EXAMPLES = int(os.environ.get("OPERONX_PROPERTY_EXAMPLES", "25"))


@dataclass(frozen=True)
class Guard:
    """One condition: how the DSL spells it on a ref, and what it means on an int."""

    text: str
    build: Callable[[Any], Any]
    holds: Callable[[int], bool]


def conditions() -> st.SearchStrategy[Guard]:
    c = st.integers(0, 9)
    return st.one_of(
        c.map(lambda k: Guard(f"< {k}", lambda r: r < k, lambda v: v < k)),
        c.map(lambda k: Guard(f"== {k}", lambda r: r == k, lambda v: v == k)),
        c.map(lambda k: Guard(f"!= {k}", lambda r: r != k, lambda v: v != k)),
        c.map(lambda k: Guard(f">= {k}", lambda r: r >= k, lambda v: v >= k)),
        st.frozensets(c, max_size=4).map(lambda ks: Guard(
            f"isin {sorted(ks)}", lambda r: r.isin(sorted(ks)), lambda v: v in ks)),
        st.tuples(c, c).map(lambda ab: Guard(
            f"in ({ab[0]}, {ab[1]})", lambda r: (r > ab[0]) & (r < ab[1]),
            lambda v: ab[0] < v < ab[1])),
        st.tuples(c, c).map(lambda ab: Guard(
            f"outside [{ab[0]}, {ab[1]}]", lambda r: (r < ab[0]) | ~(r <= ab[1]),
            lambda v: v < ab[0] or not v <= ab[1])),
    )


@dataclass(frozen=True)
class Table:
    arms: tuple[Guard, ...]
    has_else: bool
    in_stream: bool
    async_targets: bool

    def arm_of(self, value: int) -> int | None:
        for i, cond in enumerate(self.arms):
            if cond.holds(value):
                return i
        return len(self.arms) if self.has_else else None

    @property
    def targets(self) -> int:
        return len(self.arms) + self.has_else


tables = st.builds(Table, st.lists(conditions(), min_size=1, max_size=4).map(tuple),
                   st.booleans(), st.booleans(), st.booleans())


@op
def values(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"v": item}


@op
def value(v: int) -> dict[str, int]:
    return {"v": v}


def target(i: int, is_async: bool) -> Any:
    if is_async:
        async def arm(v: int) -> dict[str, int]:
            await asyncio.sleep(0.0005 * ((v * 7 + i) % 3))  # finish out of yield order
            return {"out": v * 10 + i}
    else:
        def arm(v: int) -> dict[str, int]:
            return {"out": v * 10 + i}
    return op(name=f"arm{i}", outputs=["out"])(arm)


@op
def join(x: int) -> dict[str, int]:
    return {"joined": x}


@op
def follow(x: int) -> dict[str, int]:
    return {"followed": x + 1}


@op
def gather(xs: list[int]) -> dict[str, list[int]]:
    return {"gathered": xs}


def build(table: Table) -> GraphOp:
    with GraphOp(name="routing") as g:
        src = values(items=PARENT["items"]) if table.in_stream else value(v=PARENT["v"])
        arms = [target(i, table.async_targets)(v=src["v"]) for i in range(table.targets)]
        branch = if_(table.arms[0].build(src["v"]), arms[0])
        for cond, node in zip(table.arms[1:], arms[1:len(table.arms)], strict=True):
            branch = branch.elif_(cond.build(src["v"]), node)
        if table.has_else:
            branch = branch.else_(arms[-1])
        START >> src >> branch
        j = join(x=coalesce(*(a["out"] for a in arms)))
        f = follow(x=arms[0]["out"])
        arms >> j >> END
        arms[0] >> f >> END
        if table.in_stream:  # .collect() holds the taken frames only
            j >> gather(xs=j["joined"].collect(ordered=True)) >> END
    return g


def expected(table: Table, inputs: list[int]) -> dict[str, Any]:
    taken = [(v, table.arm_of(v)) for v in inputs]
    outs = [v * 10 + arm for v, arm in taken if arm is not None]
    follows = [v * 10 + 1 for v, arm in taken if arm == 0]
    if table.in_stream:
        return {"joined": outs, "followed": follows, "gathered": outs}
    result: dict[str, Any] = {}
    if outs:
        result["joined"] = outs[0]
    if follows:
        result["followed"] = follows[0]
    return result


@settings(max_examples=EXAMPLES, deadline=None)
@given(table=tables, items=st.lists(st.integers(0, 9), max_size=8), v=st.integers(0, 9))
def test_engine_routes_like_plain_python(table: Table, items: list[int], v: int) -> None:
    graph = build(table)
    inputs: dict[str, Any] = {"items": items} if table.in_stream else {"v": v}
    result = Engine(graph).run_sync(inputs)
    assert result == expected(table, items if table.in_stream else [v])
    ir = graph.ir
    for key in ("joined", "followed"):  # what the IR says is always there, is
        if key not in ir.optional_results:
            assert key in result
    # An else makes the join certain at depth 0: the compiler may type it as required.
    assert ("joined" in ir.optional_results) == (not table.in_stream and not table.has_else)


@settings(max_examples=EXAMPLES, deadline=None)
@given(table=tables, items=st.lists(st.integers(0, 9), max_size=6))
def test_streamed_frames_are_exactly_the_taken_executions(table: Table,
                                                          items: list[int]) -> None:
    graph = build(Table(table.arms, table.has_else, True, table.async_targets))

    async def frames() -> list[tuple[str, tuple[int, ...]]]:
        return [(f.op_name, f.index) async for f in Engine(graph).stream({"items": items})]

    seen = asyncio.run(frames())
    ran = sorted((name, index) for name, index in seen if name.startswith("arm"))
    wanted = sorted((f"arm{arm}", (i,)) for i, v in enumerate(items)
                    if (arm := table.arm_of(v)) is not None)
    assert ran == wanted
