"""The Engine and the compiled module (at -O0, -O1 and -O2) agree on every golden graph.

Results, ``on_error="collect"`` results, frames as a multiset of
``(op_name, index, outputs)``, and error types, op names, indexes and messages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_graph
from compiler.frontend.load import find_graphs, load_module, select_graph
from operonx.core import END, PARENT, START, GraphOp, InputError
from tests.compiler import oplib
from tests.compiler.helpers import assert_equivalent, load_source, outcome
from tests.golden.cases import CASES, Case

LEVELS = (0, 1, 2)
UNORDERED = {"asyncgen": ()}  # completion-order collects are summed: order-free


def _compile(graph: Any, tmp_path: Path, level: int, path: str = oplib.__file__) -> Any:
    result = compile_graph(graph, source_path=path, graph_name="graph", opt_level=level)
    return load_source(result.source, tmp_path, f"O{level}")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_golden_graph_equivalence(case: Case, level: int, tmp_path: Path) -> None:
    _name, graph = select_graph(find_graphs(load_module(case.abspath)), None, case.abspath)
    module = _compile(graph, tmp_path, level, case.abspath)
    for inputs in case.inputs:
        assert_equivalent(graph, module, inputs)


@pytest.mark.parametrize("level", LEVELS)
def test_input_errors_match(level: int, tmp_path: Path) -> None:
    path = CASES[0].abspath
    _name, graph = select_graph(find_graphs(load_module(path)), None, path)
    module = _compile(graph, tmp_path, level, path)
    for bad in ({}, {"numbers": [1], "extra": 2}, {"nums": [1]}):
        from operonx.core import Engine

        want = outcome(lambda b=bad: Engine(graph).run_sync(b))
        got = outcome(lambda b=bad: module.run_sync(b))
        assert got == want
        assert want[0] == "error" and want[1][0] == "InputError"
    with pytest.raises(module.InputError) as info:
        module.run_sync({})
    assert isinstance(info.value, module.OperonxError)
    assert info.value.missing == ("numbers",)
    assert not isinstance(info.value, InputError)  # its own class, not operonx's


def _stream_graph(step: str, fail: int = -1) -> GraphOp:
    with GraphOp(name="errors") as graph:
        gen = oplib.source(items=PARENT["items"], fail=fail if step == "source" else -1)
        if step == "not_a_dict":
            node = oplib.not_a_dict(v=gen["v"])
        elif step == "missing_key":
            node = oplib.missing_key(v=gen["v"])
            after = oplib.add(v=node["v"], k=1)
        elif step == "aadd":
            node = oplib.aadd(v=gen["v"], k=1, fail=fail)
        elif step == "expand":
            node = oplib.expand(v=gen["v"], n=2, fail=fail)
        else:
            node = oplib.add(v=gen["v"], k=1, fail=fail)
        START >> gen >> node
        if step == "missing_key":
            node >> after >> END
        else:
            node >> END
    return graph


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("step,fail", [("add", 2), ("aadd", 3), ("source", 2),
                                       ("expand", 21), ("not_a_dict", -1),
                                       ("missing_key", -1), ("add", 99)])
def test_op_errors_match(step: str, fail: int, level: int, tmp_path: Path) -> None:
    graph = _stream_graph(step, fail)
    module = _compile(graph, tmp_path, level)
    assert_equivalent(graph, module, {"items": [1, 2, 3]})


def test_op_error_keeps_its_cause(tmp_path: Path) -> None:
    module = _compile(_stream_graph("add", 2), tmp_path, 2)
    with pytest.raises(module.OpError) as info:
        module.run_sync({"items": [1, 2, 3]})
    assert info.value.op_name == "add"
    assert info.value.index == (1,)
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value) == "op 'add' at index (1,) raised ValueError: bad value 2"


@pytest.mark.parametrize("level", LEVELS)
def test_loop_limit_matches(level: int, tmp_path: Path) -> None:
    with GraphOp.loop(until="counter >= 100", counter=0, max_iterations=5) as graph:
        inc = oplib.incr(counter=PARENT["counter"], step=1)
        inc["counter"] >> PARENT["counter"]
        START >> inc >> END
    module = _compile(graph, tmp_path, level)
    assert_equivalent(graph, module, {})
    with pytest.raises(module.LoopLimitExceeded) as info:
        module.run_sync({})
    assert info.value.loop_name == "loop" and info.value.max_iterations == 5


@pytest.mark.parametrize("level", LEVELS)
def test_concurrency_bound_and_backpressure_match(level: int, tmp_path: Path) -> None:
    from operonx.core import Engine

    with GraphOp(name="bounded") as graph:
        gen = oplib.counted(items=PARENT["items"])
        t = oplib.tracked(v=gen["v"])
        START >> gen >> t >> END
    module = _compile(graph, tmp_path, level)
    inputs = {"items": list(range(12))}
    observed = []
    for run in (lambda: Engine(graph).run_sync(inputs), lambda: module.run_sync(inputs)):
        track = oplib.TRACK if len(observed) == 0 else module.TRACK
        track.update(now=0, peak=0, produced=0, finished=0, backlog=0)
        assert run() == {"v": list(range(12))}
        observed.append((track["peak"], track["backlog"]))
    for peak, backlog in observed:  # the Engine's, then the compiled module's
        assert peak == 2  # max_concurrent=2 reached, never exceeded
        # Backpressure: the window (2) in flight, plus at most the frame just yielded (the
        # Engine's worker pool pulls a frame only for a free worker: 2).
        assert backlog <= 3


def test_compiled_stream_span_structure(tmp_path: Path) -> None:
    import asyncio

    module = _compile(_stream_graph("add"), tmp_path, 2)

    async def frames() -> list[Any]:
        return [f async for f in module.stream({"items": [1, 2]})]

    got = asyncio.run(frames())
    end = got[-1]
    assert end.op_name == "END" and end.span.parent_span_id is None
    trace = end.span.trace_id
    assert len(trace) == 32 and all(f.span.trace_id == trace for f in got)
    yields = {f.index: f.span.span_id for f in got if f.op_name == "source"}
    for f in got:
        if f.op_name == "add":
            assert f.span.parent_span_id == yields[f.index]
        elif f.op_name == "source":
            assert f.span.parent_span_id == end.span.span_id
            assert len(f.span.span_id) == 16


def test_stream_closes_the_run_when_left_early(tmp_path: Path) -> None:
    import asyncio

    module = _compile(_stream_graph("aadd"), tmp_path, 2)

    async def first_then_leave() -> int:
        agen = module.stream({"items": list(range(50))})
        await agen.__anext__()
        await agen.aclose()
        await asyncio.sleep(0)
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    assert asyncio.run(first_then_leave()) == 0


def test_error_cancels_everything_and_leaks_no_task(tmp_path: Path) -> None:
    import asyncio

    module = _compile(_stream_graph("aadd", 5), tmp_path, 2)

    async def go() -> int:
        with pytest.raises(module.OpError):
            await module.run({"items": list(range(40))})
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    assert asyncio.run(go()) == 0


def test_examples_compile_from_the_cli_api(tmp_path: Path) -> None:
    from compiler import compile_file, is_stale

    result = compile_file(os.path.join(CASES[0].abspath))
    out = tmp_path / "out.py"
    assert is_stale(str(out), result)
    out.write_text(result.source)
    assert not is_stale(str(out), result)
    out.write_text(result.source + "\n")
    assert is_stale(str(out), result)
    assert [p.name for p in result.passes] == ["specialise_fanout", "drop_bookkeeping",
                                               "fuse_chains", "inline_loops"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("consumer", ["add", "aadd"])
def test_generators_are_closed_when_a_frame_fails(level: int, consumer: str,
                                                  tmp_path: Path) -> None:
    with GraphOp(name="closing") as graph:
        gen = oplib.guarded(items=PARENT["items"])
        make = oplib.add if consumer == "add" else oplib.aadd
        node = make(v=gen["v"], k=1, fail=3)
        START >> gen >> node >> END
    module = _compile(graph, tmp_path, level)
    module.TRACK["closed"] = 0
    with pytest.raises(module.OpError) as info:
        module.run_sync({"items": list(range(100))})
    assert info.value.op_name == consumer and info.value.index == (3,)
    assert module.TRACK["closed"] == 1
    assert_equivalent(graph, module, {"items": list(range(10))})


@pytest.mark.parametrize("level", LEVELS)
def test_top_level_input_defaults_and_routes(level: int, tmp_path: Path) -> None:
    with GraphOp(name="defaults", inputs={"k": 10, "start": PARENT["first"]}) as graph:
        node = oplib.add(v=PARENT["start"], k=PARENT["k"])
        START >> node >> END
    module = _compile(graph, tmp_path, level)
    for inputs in ({"first": 1}, {"first": 1, "k": 5}, {}, {"first": 1, "other": 2}):
        assert_equivalent(graph, module, inputs)
    assert module.run_sync({"first": 2}) == {"v": 12}


@pytest.mark.parametrize("level", LEVELS)
def test_until_that_raises_matches(level: int, tmp_path: Path) -> None:
    with GraphOp.loop(until="counter >= items[5]", counter=0, items=[1]) as graph:
        inc = oplib.incr(counter=PARENT["counter"], step=1)
        inc["counter"] >> PARENT["counter"]
        START >> inc >> END
    module = _compile(graph, tmp_path, level)
    assert_equivalent(graph, module, {})


@pytest.mark.parametrize("level", [0, 2])
def test_a_slow_stream_consumer_holds_the_producer_back(level: int, tmp_path: Path) -> None:
    import asyncio

    with GraphOp(name="slow_consumer") as graph:
        gen = oplib.counted(items=PARENT["items"])
        node = oplib.add(v=gen["v"], k=1)
        START >> gen >> node
    module = _compile(graph, tmp_path, level)
    module.TRACK.update(produced=0, finished=0, backlog=0)

    async def consume() -> int:
        worst = seen = 0
        async for frame in module.stream({"items": list(range(3000))}):
            if frame.op_name == "counted":
                seen += 1
                worst = max(worst, module.TRACK["produced"] - seen)
            await asyncio.sleep(0)
        return worst

    worst = asyncio.run(consume())
    assert module.TRACK["produced"] == 3000
    assert worst <= 300  # bounded by the frame backlog, not by the stream's length


def _loop_with_stream(make: str, streamed_writeback: bool) -> GraphOp:
    with GraphOp(name="outer") as graph:
        first = oplib.add(v=PARENT["v"], k=0)
        with GraphOp.loop(until="total >= 100", inputs={"seed": first["v"]}, total=0, seen=[],
                          max_iterations=20) as loop:
            gen = getattr(oplib, make)(v=PARENT["seed"], n=3)
            summed = oplib.total(vs=gen["v"].collect())
            grown = oplib.add(v=summed["v"], k=1)
            grown["v"] >> PARENT["total"]
            grown["v"] >> PARENT["seed"]
            START >> gen >> summed >> grown >> END
            if streamed_writeback:
                seeds = oplib.add(v=gen["v"], k=0)
                seeds["v"] >> PARENT["seen"]
                gen >> seeds
        after = oplib.total(vs=loop["seen"]) if streamed_writeback else oplib.combine(
            a=loop["total"], b=loop["seed"])
        START >> first >> loop >> after >> END
    return graph


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("make", ["expand", "aexpand"])
def test_loop_with_a_stream_in_its_body(level: int, make: str, streamed: bool,
                                        tmp_path: Path) -> None:
    graph = _loop_with_stream(make, streamed_writeback=streamed)
    module = _compile(graph, tmp_path, level)
    for inputs in ({"v": 1}, {"v": 0}):
        assert_equivalent(graph, module, inputs)


@pytest.mark.parametrize("level", LEVELS)
def test_loop_streamed_writeback_is_a_list_in_yield_order(level: int, tmp_path: Path) -> None:
    """docs/semantics.md: a write-back of depth >= 1 is a list in yield order.

    seed 1 -> frames 10, 11, 12 (total 34) -> frames 340, 341, 342 (total 1024, stop):
    ``seen`` is [340, 341, 342].
    """
    module = _compile(_loop_with_stream("expand", streamed_writeback=True), tmp_path, level)
    assert module.run_sync({"v": 1}) == {"v": 1023}


def test_engine_loop_streamed_writeback() -> None:
    from operonx.core import Engine

    graph = _loop_with_stream("expand", streamed_writeback=True)
    assert Engine(graph).run_sync({"v": 1}) == {"v": 1023}
