"""``@op(resources={...})``: checked when declared, passed to Ray, ignored by local runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_file
from operonx.core import END, PARENT, START, Engine, GraphError, GraphOp, op
from tests.compiler.helpers import load_source

FIXTURE = str(Path(__file__).parent / "fixtures" / "resourced.py")


def test_resources_are_kept_sorted_on_the_op() -> None:
    @op(resources={"num_gpus": 1, "num_cpus": 0.5, "gadget": 2})
    def f(v: int) -> dict[str, int]:
        return {"v": v}

    assert f.definition.resources == (("gadget", 2), ("num_cpus", 0.5), ("num_gpus", 1))


@pytest.mark.parametrize("resources,message", [
    ([("num_cpus", 1)], "must be a dict"),
    ({"": 1}, "non-empty strings"),
    ({"CPU": 1}, "write 'num_cpus', not 'CPU'"),
    ({"GPU": 1}, "write 'num_gpus', not 'GPU'"),
    ({"num_cpus": -1}, "must be a number >= 0"),
    ({"num_cpus": True}, "must be a number >= 0"),
    ({"num_cpus": "2"}, "must be a number >= 0"),
    ({"num_cpus": math.nan}, "must be a number >= 0"),
    ({"num_cpus": 1.5}, "amounts above 1 must be whole"),
])
def test_bad_resources_are_a_located_graph_error(resources: Any, message: str) -> None:
    with pytest.raises(GraphError, match=message) as info:
        @op(resources=resources)
        def f(v: int) -> dict[str, int]:
            return {"v": v}
    assert info.value.file == __file__ and info.value.line is not None


def test_the_engine_ignores_resources() -> None:
    @op(resources={"gadget": 1})  # no such resource anywhere: only Ray would wait for it
    def f(v: int) -> dict[str, int]:
        return {"v": v + 1}

    with GraphOp(name="g") as graph:
        node = f(v=PARENT["v"])
        START >> node >> END
    assert Engine(graph).run_sync({"v": 1}) == {"v": 2}


def test_resources_become_task_options_and_cut_fused_chains() -> None:
    source = compile_file(FIXTURE, target="ray").source
    assert "#   first >> second\n" in source  # fused: same resources
    assert "second >> third" not in source and "third >> fourth" not in source
    assert "num_cpus=0.5," in source
    for option in ("num_cpus=1,", "num_gpus=0,", "memory=10000000,"):
        assert option in source
    assert "resources={'gadget': 0}," in source


def test_resourced_graph_runs_on_the_cluster(ray_workdir: Path) -> None:
    from compiler.frontend.load import find_graphs, load_module, select_graph

    graph = select_graph(find_graphs(load_module(FIXTURE)), None, FIXTURE)[1]
    module = load_source(compile_file(FIXTURE, target="ray").source, ray_workdir, "resourced")
    assert module.run_sync({"v": 4}) == Engine(graph).run_sync({"v": 4}) == {"v": 70}


def test_a_feature_the_ray_target_does_not_know_is_refused_with_its_line() -> None:
    """A new field of the lowered IR (say, a timeout) must not be ignored silently."""
    from dataclasses import dataclass, replace

    from compiler.api import _lower
    from compiler.errors import CompileError
    from compiler.ir.nodes import StageIR
    from compiler.targets.ray.support import check_supported

    @dataclass(frozen=True)
    class TimedStage(StageIR):
        timeout: float | None = None

    _ir, _extraction, module = _lower(_graph_of(FIXTURE), FIXTURE, 2, "ray")
    check_supported(module)  # as lowered today: fine
    stage = module.top.stages[1]
    timed = TimedStage(**{f: getattr(stage, f) for f in stage.__dataclass_fields__},
                       timeout=2.0)
    top = replace(module.top, stages=(module.top.stages[0], timed, *module.top.stages[2:]))
    with pytest.raises(CompileError) as info:
        check_supported(replace(module, top=top))
    assert info.value.line == stage.loc.line and "'second' uses timeout" in str(info.value)
    untimed = TimedStage(**{f: getattr(stage, f) for f in stage.__dataclass_fields__})
    check_supported(replace(module, top=replace(module.top, stages=(
        module.top.stages[0], untimed, *module.top.stages[2:]))))  # left at its default: fine


def _graph_of(path: str) -> Any:
    from compiler.frontend.load import find_graphs, load_module, select_graph

    return select_graph(find_graphs(load_module(path)), None, path)[1]
