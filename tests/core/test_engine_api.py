"""SPEC §5: Engine.run / run_sync / stream, inputs, frames."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator

import pytest

from operonx.core import (
    END,
    PARENT,
    START,
    Engine,
    Frame,
    GraphOp,
    InputError,
    Operon,
    SpanContext,
    op,
)
from operonx.tracing import JsonlTracer, RunInfo
from tests.core.seed_ops import double, each_item


def seed_graph() -> GraphOp:
    with GraphOp(name="iterate") as graph:
        gen = each_item(items=PARENT["numbers"])
        step = double(value=gen["value"])
        START >> gen >> step >> END
    return graph


async def test_run_and_run_sync_return_the_final_state() -> None:
    engine = Engine(seed_graph())
    assert await engine.run(inputs={"numbers": [1, 2, 3]}) == {"result": [2, 4, 6]}
    assert Operon is Engine


def test_run_sync_uses_a_fresh_uvloop_loop() -> None:
    import uvloop

    seen: list[type] = []

    @op
    async def probe(value: int) -> dict[str, int]:
        seen.append(type(asyncio.get_running_loop()))
        return {"v": value}

    with GraphOp(name="g") as g:
        p = probe(value=1)
        START >> p >> END
    assert Engine(g).run_sync() == {"v": 1}
    assert seen == [uvloop.Loop]


def test_engine_can_run_many_times_and_concurrently() -> None:
    engine = Engine(seed_graph())

    async def both() -> list[dict[str, list[int]]]:
        return await asyncio.gather(engine.run({"numbers": [1]}), engine.run({"numbers": [2, 3]}))

    assert asyncio.run(both()) == [{"result": [2]}, {"result": [4, 6]}]


@pytest.mark.parametrize(("inputs", "words"), [
    ({}, ["missing", "'numbers'"]),
    ({"numbers": [1], "extra": 2}, ["unknown", "'extra'"]),
    ({"numbrs": [1]}, ["missing", "'numbers'", "unknown", "'numbrs'"]),
])
def test_missing_and_unknown_inputs_raise_before_any_op_runs(inputs: dict[str, object],
                                                              words: list[str]) -> None:
    calls: list[int] = []

    @op
    def spy(items: list[int]) -> Iterator[dict[str, int]]:
        calls.append(1)
        yield {"value": 1}

    with GraphOp(name="g") as g:
        s = spy(items=PARENT["numbers"])
        START >> s >> END
    with pytest.raises(InputError) as info:
        Engine(g).run_sync(inputs)
    for word in words:
        assert word in str(info.value)
    assert calls == []


async def test_stream_yields_a_frame_per_execution_then_end() -> None:
    frames = [f async for f in Engine(seed_graph()).stream({"numbers": [1, 2, 3]})]
    assert frames[-1].op_name == "END"
    assert frames[-1].outputs == {"result": [2, 4, 6]}
    counted = Counter((f.op_name, f.index) for f in frames[:-1])
    assert counted == Counter({("each_item", (0,)): 1, ("each_item", (1,)): 1,
                               ("each_item", (2,)): 1, ("double", (0,)): 1,
                               ("double", (1,)): 1, ("double", (2,)): 1})
    by_key = {(f.op_name, f.index): f for f in frames}
    assert by_key[("double", (1,))].outputs == {"result": 4}
    assert by_key[("each_item", (2,))].outputs == {"value": 3}


async def test_frames_carry_w3c_span_context_and_timing() -> None:
    frames = [f async for f in Engine(seed_graph()).stream({"numbers": [1, 2]})]
    end = frames[-1]
    trace_ids = {f.span.trace_id for f in frames}
    assert len(trace_ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", trace_ids.pop())
    assert all(re.fullmatch(r"[0-9a-f]{16}", f.span.span_id) for f in frames)
    assert end.span.parent_span_id is None
    gens = {f.index: f for f in frames if f.op_name == "each_item"}
    for f in frames:
        assert f.start_ns <= f.end_ns
        if f.op_name == "each_item":
            assert f.span.parent_span_id == end.span.span_id  # the run's root span
        elif f.op_name == "double":
            assert f.span.parent_span_id == gens[f.index].span.span_id
    assert len({f.span.span_id for f in frames[:-1]}) == len(frames) - 1


async def test_frame_is_frozen() -> None:
    frame = Frame("x", {}, (), SpanContext("0" * 31 + "1", "0" * 15 + "1"), 0, 0)
    with pytest.raises(AttributeError):
        frame.op_name = "y"  # type: ignore[misc]


async def test_breaking_out_of_stream_cancels_the_run() -> None:
    finished: list[int] = []

    @op
    async def slow(value: int) -> dict[str, int]:
        await asyncio.sleep(0.05)
        finished.append(value)
        return {"v": value}

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        s = slow(value=gen["value"])
        START >> gen >> s >> END
    stream = Engine(g).stream({"numbers": list(range(100))})
    async for frame in stream:
        if frame.op_name == "each_item":
            break
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0.1)
    assert finished == []
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_slow_stream_consumer_applies_backpressure() -> None:
    yielded = 0

    @op
    def many(n: int) -> Iterator[dict[str, int]]:
        nonlocal yielded
        for i in range(n):
            yielded += 1
            yield {"value": i}

    with GraphOp(name="g") as g:
        m = many(n=PARENT["n"])
        d = double(value=m["value"])
        START >> m >> d
    seen = 0
    async for _frame in Engine(g).stream({"n": 100_000}):
        seen += 1
        if seen == 10:
            await asyncio.sleep(0.01)
            assert yielded < 2_000  # the producer paused instead of buffering everything
    assert seen == 200_001


class ListTracer:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.frames: list[Frame] = []

    def on_run_start(self, run: RunInfo) -> None:
        self.events.append(f"start {run.graph_name}")

    def on_frame(self, frame: Frame) -> None:
        self.frames.append(frame)

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None:
        self.events.append(f"end {type(error).__name__ if error else None}")


def test_tracers_get_run_start_every_frame_and_run_end() -> None:
    tracer = ListTracer()
    assert Engine(seed_graph(), tracers=[tracer]).run_sync({"numbers": [1, 2]}) == {
        "result": [2, 4]}
    assert tracer.events == ["start iterate", "end None"]
    assert sorted(f.op_name for f in tracer.frames) == [
        "END", "double", "double", "each_item", "each_item"]


def test_jsonl_tracer_writes_one_line_per_frame(tmp_path: object) -> None:
    import json
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "trace.jsonl"
    Engine(seed_graph(), tracers=[JsonlTracer(path)]).run_sync({"numbers": [1, 2]})
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0]["event"] == "run_start" and records[-1]["event"] == "run_end"
    ops = sorted(r["op"] for r in records if r["event"] == "frame")
    assert ops == ["END", "double", "double", "each_item", "each_item"]


class FailingTracer(ListTracer):
    def __init__(self, fail_in: str) -> None:
        super().__init__()
        self.fail_in = fail_in

    def on_run_start(self, run: RunInfo) -> None:
        super().on_run_start(run)
        if self.fail_in == "start":
            raise RuntimeError("tracer start failed")

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None:
        super().on_run_end(run, error)
        if self.fail_in == "end":
            raise RuntimeError("tracer end failed")


def test_a_failing_tracer_fails_the_run_but_every_started_tracer_hears_the_end() -> None:
    first, broken = ListTracer(), FailingTracer("start")
    with pytest.raises(RuntimeError, match="tracer start failed"):
        Engine(seed_graph(), tracers=[first, broken]).run_sync({"numbers": [1]})
    assert first.events == ["start iterate", "end RuntimeError"]

    broken_end, last = FailingTracer("end"), ListTracer()
    with pytest.raises(RuntimeError, match="tracer end failed"):
        Engine(seed_graph(), tracers=[broken_end, last]).run_sync({"numbers": [1]})
    assert last.events == ["start iterate", "end None"]


def test_a_tracer_failing_at_the_end_does_not_hide_the_run_error() -> None:
    @op
    def boom(value: int) -> dict[str, int]:
        raise ValueError("real problem")

    with GraphOp(name="g") as g:
        b = boom(value=1)
        START >> b >> END
    from operonx.core import OpError

    with pytest.raises(OpError, match="real problem"):
        Engine(g, tracers=[FailingTracer("end")]).run_sync()


async def test_run_sync_inside_a_running_loop_says_to_await_run() -> None:
    with pytest.raises(RuntimeError, match=r"await engine\.run"):
        Engine(seed_graph()).run_sync({"numbers": [1]})
