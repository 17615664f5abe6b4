"""The Ray module ≡ the Engine: every golden graph, errors, loops, inputs (SPEC §10).

Results, ``on_error="collect"`` results, frames as a multiset of
``(op_name, index, outputs)``, and error types, op names, indexes, messages and
causes — the same comparison the local target's differential tests make
(``tests/compiler/helpers.py``), here against modules running on a real cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compiler import compile_graph
from compiler.frontend.load import find_graphs, load_module, select_graph
from operonx.core import END, PARENT, START, Engine, GraphOp
from tests.compiler import oplib
from tests.compiler.helpers import assert_equivalent, load_source, normalise_collect, outcome
from tests.golden.cases import RAY_TARGET_CASES, Case
from tests.ray import rayops


def compile_ray(graph: Any, directory: Path, level: int = 2, path: str = oplib.__file__) -> Any:
    result = compile_graph(graph, source_path=path, graph_name="graph", opt_level=level,
                           target="ray")
    return load_source(result.source, directory, f"ray_O{level}")


def golden_graph(case: Case) -> Any:
    return select_graph(find_graphs(load_module(case.abspath)), None, case.abspath)[1]


@pytest.mark.parametrize("case", RAY_TARGET_CASES, ids=lambda c: c.name)
def test_golden_graph_equivalence(case: Case, ray_workdir: Path) -> None:
    graph = golden_graph(case)
    module = compile_ray(graph, ray_workdir, 2, case.abspath)
    for inputs in case.inputs:
        assert_equivalent(graph, module, inputs)


def test_unfused_module_is_equivalent_too(ray_workdir: Path) -> None:
    """-O0: no fused chains, one task per op execution."""
    case = next(c for c in RAY_TARGET_CASES if c.name == "diamond")
    graph = golden_graph(case)
    module = compile_ray(graph, ray_workdir, 0, case.abspath)
    assert "fused sync chains: none" in Path(module.__file__).read_text()
    for inputs in case.inputs:
        assert_equivalent(graph, module, inputs)


def test_input_errors_match(ray_workdir: Path) -> None:
    graph = golden_graph(RAY_TARGET_CASES[0])
    module = compile_ray(graph, ray_workdir, 2, RAY_TARGET_CASES[0].abspath)
    for bad in ({}, {"numbers": [1], "extra": 2}, {"nums": [1]}):
        want = outcome(lambda b=bad: Engine(graph).run_sync(b))
        got = outcome(lambda b=bad: module.run_sync(b))
        assert got == want and want[1][0] == "InputError"


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


@pytest.mark.parametrize("step,fail", [("add", 2), ("aadd", 3), ("source", 2),
                                       ("expand", 21), ("not_a_dict", -1),
                                       ("missing_key", -1), ("add", 99)])
def test_op_errors_match(step: str, fail: int, ray_workdir: Path) -> None:
    graph = _stream_graph(step, fail)
    module = compile_ray(graph, ray_workdir)
    if step in ("not_a_dict", "missing_key"):
        # Every frame fails. Frames run in parallel on the cluster, so which failure reaches
        # the driver first (the one raise mode reports) is a race: one failing frame for
        # raise mode, all of them for collect mode.
        assert_equivalent(graph, module, {"items": [1]})
        want = normalise_collect(Engine(graph, on_error="collect").run_sync({"items": [1, 2, 3]}))
        assert normalise_collect(module.run_sync({"items": [1, 2, 3]}, on_error="collect")) == want
    else:
        assert_equivalent(graph, module, {"items": [1, 2, 3]})


def test_op_error_names_the_op_and_index_and_keeps_the_cause(ray_workdir: Path) -> None:
    module = compile_ray(_stream_graph("add", 2), ray_workdir)
    with pytest.raises(module.OpError) as info:
        module.run_sync({"items": [1, 2, 3]})
    assert info.value.op_name == "add"
    assert info.value.index == (1,)
    assert type(info.value.__cause__) is ValueError  # the op's own exception, not Ray's
    assert str(info.value) == "op 'add' at index (1,) raised ValueError: bad value 2"
    assert any("(in the Ray worker)" in note for note in info.value.__cause__.__notes__)


def test_loop_limit_matches(ray_workdir: Path) -> None:
    with GraphOp.loop(until="counter >= 100", counter=0, max_iterations=5) as graph:
        inc = oplib.incr(counter=PARENT["counter"], step=1)
        inc["counter"] >> PARENT["counter"]
        START >> inc >> END
    module = compile_ray(graph, ray_workdir)
    assert_equivalent(graph, module, {})
    with pytest.raises(module.LoopLimitExceeded) as info:
        module.run_sync({})
    assert info.value.loop_name == "loop" and info.value.max_iterations == 5


def test_until_with_a_call_and_a_failing_until(ray_workdir: Path) -> None:
    with GraphOp.loop(until="len(seen) >= 3 or counter >= seen[5]", counter=0,
                      seen=[]) as graph:
        inc = oplib.incr(counter=PARENT["counter"], step=1)
        grow = rayops.append(items=PARENT["seen"], v=inc["counter"])
        inc["counter"] >> PARENT["counter"]
        grow["items"] >> PARENT["seen"]
        START >> inc >> grow >> END
    module = compile_ray(graph, ray_workdir)
    assert_equivalent(graph, module, {})
    assert_equivalent(graph, module, {"seen": [1, 2, 3, 4, 5, 6]})


def test_top_level_input_defaults_and_routes(ray_workdir: Path) -> None:
    with GraphOp(name="defaults", inputs={"k": 10, "start": PARENT["first"]}) as graph:
        node = oplib.add(v=PARENT["start"], k=PARENT["k"])
        START >> node >> END
    module = compile_ray(graph, ray_workdir)
    for inputs in ({"first": 1}, {"first": 1, "k": 5}, {}, {"first": 1, "other": 2}):
        assert_equivalent(graph, module, inputs)


def _loop_with_stream(make: str) -> GraphOp:
    with GraphOp(name="outer") as graph:
        first = oplib.add(v=PARENT["v"], k=0)
        with GraphOp.loop(until="total >= 100", inputs={"seed": first["v"]}, total=0, seen=[],
                          max_iterations=20) as loop:
            gen = getattr(oplib, make)(v=PARENT["seed"], n=3)
            summed = oplib.total(vs=gen["v"].collect())
            grown = oplib.add(v=summed["v"], k=1)
            grown["v"] >> PARENT["total"]
            grown["v"] >> PARENT["seed"]
            seeds = oplib.add(v=gen["v"], k=0)
            seeds["v"] >> PARENT["seen"]
            START >> gen >> summed >> grown >> END
            gen >> seeds
        after = oplib.total(vs=loop["seen"])
        START >> first >> loop >> after >> END
    return graph


@pytest.mark.parametrize("make", ["expand", "aexpand"])
def test_loop_with_a_stream_in_its_body(make: str, ray_workdir: Path) -> None:
    graph = _loop_with_stream(make)
    module = compile_ray(graph, ray_workdir)
    for inputs in ({"v": 1}, {"v": 0}):
        assert_equivalent(graph, module, inputs)
    assert module.run_sync({"v": 1}) == {"v": 1023}


def test_user_names_that_the_module_uses_itself(ray_workdir: Path) -> None:
    """``want``, ``flat``, ``calls``: the copied code is renamed, the module still runs."""
    path = str(Path(__file__).parent / "fixtures" / "clashing.py")
    graph = select_graph(find_graphs(load_module(path)), None, path)[1]
    module = compile_ray(graph, ray_workdir, 2, path)
    assert_equivalent(graph, module, {"v": 3})


def test_a_failure_outside_a_loop_body_does_not_fail_the_loop(ray_workdir: Path) -> None:
    """docs/semantics.md: "An error inside a loop body fails the loop node as a whole".

    Frame 1's ``add`` fails; frame 0's and frame 1's loops have nothing failing in their
    bodies, so both finish — on every path (the Engine and the local module once counted the
    run's errors, not the body's).
    """
    with GraphOp(name="apart") as graph:
        gen = oplib.source(items=PARENT["items"])
        with GraphOp.loop(until="counter >= 3", inputs={"v": gen["v"]}, counter=0) as loop:
            inc = oplib.incr(counter=PARENT["counter"], step=1)
            bump = oplib.aadd(v=PARENT["v"], k=1)
            inc["counter"] >> PARENT["counter"]
            bump["v"] >> PARENT["v"]
            START >> inc >> END
            START >> bump >> END
        bad = oplib.add(v=gen["v"], k=0, fail=1)
        START >> gen >> [loop, bad]
        loop >> END
    module = compile_ray(graph, ray_workdir)
    got = module.run_sync({"items": [0, 1]}, on_error="collect")
    assert got == {"counter": [3, 3], "v": [3, 4], "$errors": [
        {"op": "add", "index": [1], "type": "ValueError", "message": "bad value 1"}]}
    assert Engine(graph, on_error="collect").run_sync({"items": [0, 1]}) == got
    for level in (0, 2):
        local = load_source(compile_graph(graph, source_path=oplib.__file__, graph_name="g",
                                          opt_level=level).source, ray_workdir, f"apart{level}")
        assert local.run_sync({"items": [0, 1]}, on_error="collect") == got
    with GraphOp.loop(until="counter >= 3", counter=0, v=0) as failing:  # inside: it fails
        inc = oplib.incr(counter=PARENT["counter"], step=1)
        bump = oplib.aadd(v=PARENT["v"], k=1, fail=2)
        inc["counter"] >> PARENT["counter"]
        bump["v"] >> PARENT["v"]
        START >> inc >> END
        START >> bump >> END
    assert_equivalent(failing, compile_ray(failing, ray_workdir), {})
