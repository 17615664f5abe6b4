"""JsonlTracer: run_start, a line per frame, run_end; appends across runs; records failures."""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any

import pytest

from operonx.core import END, PARENT, START, Engine, GraphOp, OpError, op
from operonx.tracing import JsonlTracer, Tracer
from tests.tracing.helpers import ListTracer, each_item, streaming_graph


def read(path: pathlib.Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_writes_run_start_every_frame_and_run_end(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "trace.jsonl"
    jsonl, frames = JsonlTracer(path), ListTracer()
    assert isinstance(jsonl, Tracer)
    Engine(streaming_graph(), tracers=[jsonl, frames]).run_sync({"numbers": [1, 2]})

    lines = read(path)
    run = frames.runs[0]
    assert [line["event"] for line in lines] == (
        ["run_start"] + ["frame"] * len(frames.frames) + ["run_end"])
    start, *frame_lines, end = lines
    assert start["graph"] == "pipeline"
    assert (start["trace_id"], start["span_id"]) == (run.span.trace_id, run.span.span_id)
    assert start["time_ns"] == run.start_ns and start["inputs"] == ["numbers"]
    for line, frame in zip(frame_lines, frames.frames, strict=True):
        assert line["op"] == frame.op_name
        assert line["index"] == list(frame.index)
        assert line["outputs"] == dict(frame.outputs)
        assert (line["trace_id"], line["span_id"], line["parent_span_id"]) == (
            frame.span.trace_id, frame.span.span_id, frame.span.parent_span_id)
        assert (line["start_ns"], line["end_ns"]) == (frame.start_ns, frame.end_ns)
    assert frame_lines[-1]["op"] == "END" and frame_lines[-1]["outputs"] == {"values": [2, 4]}
    assert end["trace_id"] == run.span.trace_id and end["error"] is None


def test_appends_across_runs(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text('{"event": "earlier"}\n', encoding="utf-8")
    jsonl, frames = JsonlTracer(path), ListTracer()
    engine = Engine(streaming_graph(), tracers=[jsonl, frames])
    engine.run_sync({"numbers": [1]})
    engine.run_sync({"numbers": [2, 3]})

    lines = read(path)
    assert lines[0] == {"event": "earlier"}
    starts = [line for line in lines if line["event"] == "run_start"]
    ends = [line for line in lines if line["event"] == "run_end"]
    assert [s["trace_id"] for s in starts] == [r.span.trace_id for r in frames.runs]
    assert [e["trace_id"] for e in ends] == [r.span.trace_id for r in frames.runs]
    assert starts[0]["trace_id"] != starts[1]["trace_id"]
    assert len([line for line in lines if line["event"] == "frame"]) == len(frames.frames)


def test_records_the_error_of_a_failed_run(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "trace.jsonl"
    engine = Engine(streaming_graph(), tracers=[JsonlTracer(path)])
    with pytest.raises(OpError):
        engine.run_sync({"numbers": [1, -2]})

    lines = read(path)
    assert lines[0]["event"] == "run_start" and lines[-1]["event"] == "run_end"
    assert lines[-1]["error"].startswith("OpError: ")
    assert "negative: -2" in lines[-1]["error"]
    ops = [line["op"] for line in lines if line["event"] == "frame"]
    assert "END" not in ops and "prepare" in ops  # frames before the failure are kept


def test_unencodable_values_are_written_as_repr(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "trace.jsonl"
    Engine(streaming_graph(), tracers=[JsonlTracer(path)]).run_sync({"numbers": {3}})
    prepare = next(line for line in read(path) if line.get("op") == "prepare")
    assert prepare["outputs"] == {"items": "{3}"}


async def test_overlapping_runs_keep_every_line(tmp_path: pathlib.Path) -> None:
    @op
    async def slow(value: int) -> dict[str, int]:
        await asyncio.sleep(0.001)  # so the two runs really interleave
        return {"result": value}

    with GraphOp(name="overlap") as g:
        gen = each_item(items=PARENT["numbers"])
        s = slow(value=gen["value"])
        START >> gen >> s >> END

    path = tmp_path / "trace.jsonl"
    jsonl, frames = JsonlTracer(path), ListTracer()
    engine = Engine(g, tracers=[jsonl, frames])
    await asyncio.gather(engine.run({"numbers": [1, 2, 3]}), engine.run({"numbers": [4, 5]}))

    lines = read(path)
    events = [line["event"] for line in lines]
    assert events.index("run_end") > events.index("run_start", 1), "runs did not overlap"
    assert sorted(line["span_id"] for line in lines if line["event"] == "frame") == sorted(
        f.span.span_id for f in frames.frames)
    assert events.count("run_end") == 2
