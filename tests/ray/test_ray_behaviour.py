"""What only a real cluster shows: bounds, streaming dispatch, backpressure, resources, cleanup.

The ops run in worker processes, so they report what they saw in their outputs
(wall-clock times: one machine, one clock) or in files.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from operonx.core import END, PARENT, START, Engine, GraphOp
from tests.ray import rayops
from tests.ray.test_ray_differential import compile_ray


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(start, 1) for start, _end in spans] + [(end, -1) for _start, end in spans])
    now = peak = 0
    for _when, step in events:  # at equal times the -1 sorts first: touching is not overlap
        now += step
        peak = max(peak, now)
    return peak


def fan_out(make: Any, hold: float) -> GraphOp:
    with GraphOp(name="fan_out") as graph:
        gen = rayops.ticking(n=PARENT["n"], pause=0.0)
        work = make(i=gen["i"], hold=hold)
        START >> gen >> work >> END
    return graph


def test_max_concurrent_bounds_tasks_in_flight(ray_workdir: Path) -> None:
    module = compile_ray(fan_out(rayops.bounded, 0.25), ray_workdir)
    module.run_sync({"n": 2})  # worker processes started: the bound is what limits the next run
    result = module.run_sync({"n": 8})
    assert peak_overlap(list(zip(result["start"], result["end"], strict=True))) == 2


def test_resources_reach_the_scheduler(ray_workdir: Path) -> None:
    module = compile_ray(fan_out(rayops.greedy, 0.2), ray_workdir)
    assert "num_cpus=2" in Path(module.__file__).read_text()
    result = module.run_sync({"n": 4})
    # Two CPUs each on a two-CPU cluster: one at a time, whatever max_concurrent allows.
    assert peak_overlap(list(zip(result["start"], result["end"], strict=True))) == 1


def test_downstream_tasks_start_before_the_generator_ends(ray_workdir: Path) -> None:
    with GraphOp(name="early") as graph:
        gen = rayops.ticking(n=PARENT["n"], pause=0.5)
        work = rayops.slow(i=gen["i"], hold=0.0)
        START >> gen >> [work]
        gen >> END
        work >> END
    module = compile_ray(graph, ray_workdir)
    result = module.run_sync({"n": 4})
    assert result["start"][0] < result["yielded"][-1]  # frame 0 ran before the last yield


def test_a_generator_that_runs_ahead_is_held(ray_workdir: Path) -> None:
    with GraphOp(name="held") as graph:
        gen = rayops.flood(n=PARENT["n"])
        work = rayops.slow(i=gen["i"], hold=0.05)
        START >> gen >> [work]
        gen >> END
        work >> END
    module = compile_ray(graph, ray_workdir)
    n = 24
    result = module.run_sync({"n": n})
    # Before the generator makes frame j, frame j - 1 was handed over, so the driver had taken
    # all but Ray's backpressure threshold (`window` frames) of it: it had dispatched frame
    # j - 4, for which one of the `window` (slow's max_concurrent, 2) slots had to come free.
    # So at least j - 5 frames had finished: causality, whatever order Ray ran them in.
    # One frame of slack for Ray counting the threshold inclusively.
    for j, when in enumerate(result["yielded"]):
        finished = sum(1 for end in result["end"] if end <= when)
        assert finished >= j - 6, f"frame {j} was made with only {finished} frames finished"
    assert result["yielded"][-1] - result["yielded"][0] > 0.3  # paced: >= 18 frames at 2 x 50 ms


def test_errors_cancel_the_run_and_close_the_generator(ray_workdir: Path) -> None:
    marker = ray_workdir / "closed.txt"
    with GraphOp(name="failing") as graph:
        gen = rayops.closing(items=PARENT["items"], marker=PARENT["marker"])
        work = rayops.fail_at(v=gen["v"], bad=PARENT["bad"])
        START >> gen >> work >> END
    module = compile_ray(graph, ray_workdir)

    async def go() -> int:
        with pytest.raises(module.OpError) as info:
            await module.run({"items": list(range(1000)), "marker": str(marker), "bad": 5})
        assert info.value.op_name == "fail_at" and info.value.index == (5,)
        assert type(info.value.__cause__) is ValueError
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    assert asyncio.run(go()) == 0  # no driver task outlives the run
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:  # cancelling is asynchronous
        time.sleep(0.1)
    assert marker.read_text().startswith("closed")


def test_an_exception_that_does_not_pickle_keeps_its_message(ray_workdir: Path) -> None:
    with GraphOp(name="unpicklable") as graph:
        node = rayops.raise_unpicklable(v=PARENT["v"])
        START >> node >> END
    module = compile_ray(graph, ray_workdir)
    with pytest.raises(Exception) as want:
        Engine(graph).run_sync({"v": 1})
    with pytest.raises(module.OpError) as got:
        module.run_sync({"v": 1})
    assert str(got.value) == str(want.value)
    assert got.value.op_name == "raise_unpicklable"
    assert "Unpicklable: cannot go back (1)" in str(got.value.__cause__)
    assert module.run_sync({"v": 1}, on_error="collect")["$errors"] == \
        Engine(graph, on_error="collect").run_sync({"v": 1})["$errors"]


def test_stream_frames_and_span_structure(ray_workdir: Path) -> None:
    with GraphOp(name="spans") as graph:
        gen = rayops.ticking(n=PARENT["n"], pause=0.0)
        work = rayops.slow(i=gen["i"], hold=0.0)
        START >> gen >> work >> END
    module = compile_ray(graph, ray_workdir)

    async def frames() -> list[Any]:
        return [f async for f in module.stream({"n": 3})]

    got = asyncio.run(frames())
    end = got[-1]
    assert end.op_name == "END" and end.span.parent_span_id is None
    assert sorted((f.op_name, f.index) for f in got[:-1]) == [
        ("slow", (0,)), ("slow", (1,)), ("slow", (2,)),
        ("ticking", (0,)), ("ticking", (1,)), ("ticking", (2,))]
    trace = end.span.trace_id
    assert len(trace) == 32 and all(f.span.trace_id == trace for f in got)
    yields = {f.index: f.span.span_id for f in got if f.op_name == "ticking"}
    for f in got[:-1]:
        parent = yields[f.index] if f.op_name == "slow" else end.span.span_id
        assert f.span.parent_span_id == parent
        assert f.start_ns <= f.end_ns


def test_leaving_a_stream_early_cancels_the_run(ray_workdir: Path) -> None:
    with GraphOp(name="leave") as graph:
        gen = rayops.flood(n=PARENT["n"])
        work = rayops.slow(i=gen["i"], hold=0.05)
        START >> gen >> work >> END
    module = compile_ray(graph, ray_workdir)

    async def first_then_leave() -> int:
        agen = module.stream({"n": 10_000})
        await agen.__anext__()
        await agen.aclose()
        await asyncio.sleep(0)
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    assert asyncio.run(first_then_leave()) == 0
