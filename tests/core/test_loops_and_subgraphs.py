"""SPEC §3 (loops) and §4 (sub-graphs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from operonx.core import (
    END,
    PARENT,
    START,
    Engine,
    GraphError,
    GraphOp,
    LoopLimitExceeded,
    OperonxError,
    op,
)
from tests.core.seed_ops import double, each_item


@op
def increment(counter: int) -> dict[str, int]:
    return {"counter": counter + 1}


def counting_loop(until: Any = "count >= 5", **kwargs: Any) -> GraphOp:
    with GraphOp.loop(until=until, count=0, **kwargs) as loop:
        inc = increment(counter=PARENT["count"])
        inc["counter"] >> PARENT["count"]
        START >> inc >> END
    return loop


def test_seed_loop_returns_its_final_state() -> None:
    assert Engine(counting_loop()).run_sync() == {"count": 5}


def test_loop_body_always_runs_at_least_once() -> None:
    assert Engine(counting_loop(until="count >= 0")).run_sync() == {"count": 1}


def test_run_inputs_override_initial_state_of_a_top_level_loop() -> None:
    assert Engine(counting_loop()).run_sync({"count": 10}) == {"count": 11}


def test_callable_until_is_accepted() -> None:
    def done(state: Mapping[str, Any]) -> bool:
        return bool(state["count"] >= 3)

    assert Engine(counting_loop(until=done)).run_sync() == {"count": 3}
    assert Engine(counting_loop(until=lambda s: s["count"] == 2)).run_sync() == {"count": 2}


def test_until_language_allows_arithmetic_calls_and_subscripts() -> None:
    @op
    def push(items: list[int], count: int) -> dict[str, Any]:
        return {"items": [*items, count], "count": count + 1}

    with GraphOp.loop(until="len(items) >= 3 and max(items[-2:]) > abs(-1) or count > 99",
                      items=[], count=0) as loop:
        p = push(items=PARENT["items"], count=PARENT["count"])
        p["items"] >> PARENT["items"]
        p["count"] >> PARENT["count"]
        START >> p >> END
    assert Engine(loop).run_sync() == {"items": [0, 1, 2], "count": 3}


@pytest.mark.parametrize(("until", "message"), [
    ("__import__('os').system('echo pwned')", "only len, abs, min and max may be called"),
    ("count.real > 1", "attribute access"),
    ("cuont >= 5", "did you mean 'count'"),
    ("count >=", "not an expression"),
    ("[x for x in count]", "is not allowed"),
    ("(lambda: 1)()", "call"),
])
def test_bad_until_is_a_build_error_pointing_at_the_part(until: str, message: str) -> None:
    with pytest.raises(GraphError, match=message) as info:
        counting_loop(until=until)
    assert info.value.file == __file__


def test_bad_until_never_runs_anything(tmp_path: Any) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(GraphError):
        counting_loop(until=f"__import__('pathlib').Path({str(marker)!r}).touch()")
    assert not marker.exists()


def test_max_iterations_raises_loop_limit_exceeded_naming_the_loop() -> None:
    loop = counting_loop(until="count < 0", max_iterations=7, name="spin")
    with pytest.raises(LoopLimitExceeded, match="'spin' reached max_iterations=7") as info:
        Engine(loop).run_sync()
    assert info.value.loop_name == "spin" and isinstance(info.value, OperonxError)


def test_until_true_on_the_last_allowed_iteration_is_not_an_error() -> None:
    assert Engine(counting_loop(max_iterations=5)).run_sync() == {"count": 5}


def test_unknown_state_variable_is_a_build_error() -> None:
    with pytest.raises(GraphError, match=r"(?s)not a state variable.*did you mean 'count'"):
        with GraphOp.loop(until="count > 1", count=0):
            inc = increment(counter=PARENT["cout"])
            START >> inc >> END
    with pytest.raises(GraphError, match="write-back to PARENT\\['total'\\]"):
        with GraphOp.loop(until="count > 1", count=0):
            inc = increment(counter=PARENT["count"])
            inc["counter"] >> PARENT["total"]
            START >> inc >> END


def test_loop_inside_a_graph_is_a_node_whose_outputs_are_its_state() -> None:
    with GraphOp(name="outer") as graph:
        start = increment(counter=PARENT["start"])
        with GraphOp.loop(until="count >= 10", inputs={"count": start["counter"]}) as loop:
            inc = increment(counter=PARENT["count"])
            inc["counter"] >> PARENT["count"]
            START >> inc >> END
        final = double(value=loop["count"])
        START >> start >> loop >> final >> END
    assert Engine(graph).run_sync({"start": 2}) == {"result": 20}
    assert Engine(graph).run_sync({"start": 20}) == {"result": 44}


def test_loop_runs_once_per_frame_inside_a_stream() -> None:
    with GraphOp(name="outer") as graph:
        gen = each_item(items=PARENT["numbers"])
        with GraphOp.loop(until="count >= 3", inputs={"count": gen["value"]}) as loop:
            inc = increment(counter=PARENT["count"])
            inc["counter"] >> PARENT["count"]
            START >> inc >> END
        START >> gen >> loop >> END
    assert Engine(graph).run_sync({"numbers": [0, 5, 1]}) == {"count": [3, 6, 3]}


def test_subgraph_reads_inputs_and_exposes_end_outputs_and_writebacks() -> None:
    @op
    def add(a: int, b: int) -> dict[str, int]:
        return {"sum": a + b}

    with GraphOp(name="outer") as graph:
        first = double(value=PARENT["x"])
        with GraphOp(name="inner", inputs={"v": first["result"], "k": 100}) as inner:
            d = double(value=PARENT["v"])
            s = add(a=d["result"], b=PARENT["k"])
            s["sum"] >> PARENT["total"]
            START >> d >> s
            d >> END
        last = add(a=inner["result"], b=inner["total"])
        START >> first >> inner >> last >> END
    # x=1: first=2, d=4, s=104; last = 4 + 104
    assert Engine(graph).run_sync({"x": 1}) == {"sum": 108}
    assert set(graph.ir.nodes["inner"].outputs or ()) == {"result", "total"}


def test_subgraph_undeclared_input_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="not an input of sub-graph 'inner'"):
        with GraphOp(name="outer"):
            with GraphOp(name="inner", inputs={"value": 1}) as inner:
                d = double(value=PARENT["valeu"])
                START >> d >> END
            START >> inner >> END


def test_subgraph_streams_become_lists_at_its_boundary() -> None:
    @op
    def count(values: list[int]) -> dict[str, int]:
        return {"n": len(values)}

    with GraphOp(name="outer") as graph:
        with GraphOp(name="inner", inputs={"items": PARENT["numbers"]}) as inner:
            gen = each_item(items=PARENT["items"])
            d = double(value=gen["value"])
            START >> gen >> d >> END
        c = count(values=inner["result"])
        START >> inner >> c >> END
    assert Engine(graph).run_sync({"numbers": [4, 5, 6]}) == {"n": 3}


def test_subgraph_runs_per_frame_of_an_outer_stream() -> None:
    with GraphOp(name="outer") as graph:
        gen = each_item(items=PARENT["numbers"])
        with GraphOp(name="inner", inputs={"v": gen["value"]}) as inner:
            d = double(value=PARENT["v"])
            START >> d >> END
        START >> gen >> inner >> END
    assert Engine(graph).run_sync({"numbers": [1, 2, 3]}) == {"result": [2, 4, 6]}
