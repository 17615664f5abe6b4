"""ChromeTraceTracer: the Trace Event Format, one event per frame, valid whatever way a run ends."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_file
from operonx.core import END, PARENT, START, Engine, GraphOp, OpError, op
from operonx.core.frame import Frame, SpanContext
from operonx.tracing import ChromeTraceTracer, RunInfo, Tracer
from tests.compiler.helpers import load_source
from tests.tracing.chrome_schema import load, op_events, run_events, track_names
from tests.tracing.helpers import ListTracer, each_item, nested_graph, streaming_graph

REPO = Path(__file__).resolve().parents[2]


@op(max_concurrent=4)
async def slow_double(value: int) -> dict[str, int]:
    await asyncio.sleep(0.002 * (1 + value % 3))
    return {"result": value * 2}


@op(outputs=["items", "text", *(f"k{i}" for i in range(40))])
def huge(value: int) -> dict[str, object]:
    return {"items": list(range(100_000)), "text": "x" * 1_000_000,
            **{f"k{i}": i for i in range(40)}}


def fanout_graph() -> GraphOp:
    with GraphOp(name="fanout") as g:
        gen = each_item(items=PARENT["numbers"])
        d = slow_double(value=gen["value"])
        START >> gen >> d >> END
    return g


def traced(graph: GraphOp, path: Path, inputs: dict[str, Any]) -> tuple[ListTracer, Any]:
    frames = ListTracer()
    result = Engine(graph, tracers=[ChromeTraceTracer(path), frames]).run_sync(inputs)
    return frames, result


# ------------------------------------------------------------------ events = frames


@pytest.mark.parametrize("make", [streaming_graph, nested_graph, fanout_graph])
def test_one_event_per_frame_with_the_frames_ids_and_times(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "run.json"
    frames, _ = traced(make(), path, {"numbers": [1, 2, 3, 4, 5, 6]})
    document = load(path)
    events = op_events(document)
    *ops, end = frames.frames
    assert end.op_name == "END"
    assert len(events) == len(ops)  # END is the run event, not an op event
    origin = document["otherData"]["ts_origin_unix_ns"]
    assert origin == frames.runs[0].start_ns
    by_span = {e["args"]["span_id"]: e for e in events}
    for frame in ops:
        event = by_span[frame.span.span_id]
        assert (event["name"], tuple(event["args"]["index"])) == (frame.op_name, frame.index)
        assert event["args"]["parent_span_id"] == frame.span.parent_span_id
        assert event["args"]["trace_id"] == frame.span.trace_id
        assert event["ts"] == (frame.start_ns - origin) / 1000
        assert event["dur"] == (frame.end_ns - frame.start_ns) / 1000
    (run,) = run_events(document)
    assert run["args"]["span_id"] == end.span.span_id and run["args"]["status"] == "ok"
    assert run["dur"] == (end.end_ns - end.start_ns) / 1000
    summary = run["args"]["outputs"]  # END's outputs, as a bounded repr
    assert summary.keys() == end.outputs.keys()
    assert all(repr(end.outputs[k]).startswith(v.removesuffix("...]")) for k, v in summary.items())


def test_parents_are_events_of_the_same_run_and_index_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    traced(nested_graph(), path, {"numbers": [1, 2, 3]})
    document = load(path)
    (run,) = run_events(document)
    events = {e["args"]["span_id"]: e for e in op_events(document)}
    parents = collections.Counter()
    for event in events.values():
        parent_id = event["args"]["parent_span_id"]
        assert event["args"]["trace_id"] == run["args"]["trace_id"]
        if parent_id == run["args"]["span_id"]:
            parents["run"] += 1
            assert len(event["args"]["index"]) == 1  # each_item's yields
            continue
        parent = events[parent_id]
        parents[parent["name"]] += 1
        # A frame runs inside its parent's frame: the parent's index is a prefix of its own,
        # and it starts after the parent's yield.
        assert event["args"]["index"][:len(parent["args"]["index"])] == parent["args"]["index"]
        assert event["ts"] >= parent["ts"] + parent["dur"] - 1e-3
    assert parents == {"run": 3, "each_item": 6, "upto": 6}


def test_tracks_are_named_ops_in_order_of_first_appearance(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    traced(streaming_graph(), path, {"numbers": [1, 2]})
    document = load(path)
    names = track_names(document)
    first_seen = list(dict.fromkeys((e["pid"], e["tid"]) for e in op_events(document)))
    assert [names[key] for key in first_seen] == ["prepare", "each_item", "double", "listing"]
    assert sorted(tid for _pid, tid in first_seen) == [tid for _pid, tid in first_seen]
    assert {e["tid"] for e in run_events(document)} == {
        tid for (_pid, tid), name in names.items() if name == "run"}


def test_overlapping_executions_of_an_op_get_more_tracks(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    traced(fanout_graph(), path, {"numbers": list(range(12))})
    document = load(path)  # checks that no track has overlapping events
    names = track_names(document)
    double_tracks = {names[e["pid"], e["tid"]] for e in op_events(document)
                     if e["name"] == "slow_double"}
    # max_concurrent=4: up to four at once, hence (at least) the op's own track and #2.
    assert {"slow_double", "slow_double #2"} <= double_tracks
    assert double_tracks <= {"slow_double"} | {f"slow_double #{k}" for k in range(2, 9)}
    sort_index = {(e["pid"], e["tid"]): e["args"]["sort_index"] for e in document["traceEvents"]
                  if e["ph"] == "M" and e["name"] == "thread_sort_index"}
    by_name = {name: sort_index[key] for key, name in names.items()}
    assert by_name["run"] < by_name["each_item"] < by_name["slow_double"] \
        < by_name["slow_double #2"]


def test_outputs_are_summarised_within_bounds(tmp_path: Path) -> None:
    with GraphOp(name="big") as g:
        h = huge(value=PARENT["value"])
        START >> h >> END
    path = tmp_path / "run.json"
    traced(g, path, {"value": 1})
    assert path.stat().st_size < 20_000  # the payload (about 1.6 MB as JSON) is not in it
    document = load(path)  # checks at most 16 keys (+ "…"), 120 characters each
    (event,) = op_events(document)
    outputs = event["args"]["outputs"]
    assert outputs["items"].startswith("[0, 1, 2, 3, 4, 5, ...")
    assert outputs["…"] == "26 more key(s)"


# ------------------------------------------------------------- runs that end badly


def test_a_failing_run_leaves_valid_json_saying_how_it_ended(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    frames = ListTracer()
    engine = Engine(streaming_graph(), tracers=[ChromeTraceTracer(path), frames])
    with pytest.raises(OpError):
        engine.run_sync({"numbers": [1, -2, 3]})
    document = load(path)
    (run,) = run_events(document)
    assert run["args"]["status"] == "error"
    assert run["args"]["error"].startswith("OpError: op 'double' at index (1,) raised ValueError")
    assert run["args"]["outputs"] == {}
    assert len(op_events(document)) == len(frames.frames)  # no END: every frame has its event
    assert document["otherData"]["runs"][0]["status"] == "error"


async def test_a_stream_left_early_leaves_valid_json_marked_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    frames = ListTracer()
    engine = Engine(fanout_graph(), tracers=[ChromeTraceTracer(path), frames])
    async with contextlib.aclosing(engine.stream({"numbers": list(range(50))})) as stream:
        async for _frame in stream:
            break
    document = load(path)
    (run,) = run_events(document)
    assert run["args"]["status"] == "cancelled"
    assert run["args"]["error"].startswith("CancelledError")
    assert len(op_events(document)) == len(frames.frames) < 50


async def test_the_file_grows_while_the_run_goes(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    engine = Engine(fanout_graph(), tracers=[ChromeTraceTracer(path)])
    seen = 0
    sizes = []
    async for _frame in engine.stream({"numbers": list(range(400))}):
        seen += 1
        if seen % 200 == 0:
            sizes.append(path.stat().st_size)
    # Events are written as frames arrive (a file buffer at a time), not held until the end.
    assert 0 < sizes[0] < sizes[1] < sizes[2] < path.stat().st_size
    load(path)


def test_the_tracer_keeps_nothing_per_frame(tmp_path: Path) -> None:
    graph = streaming_graph()
    inputs = {"numbers": list(range(10_000))}  # 20,000 frames, a 2 MB file

    def peak(tracers: list[Tracer]) -> int:
        engine = Engine(graph, tracers=tracers)
        tracemalloc.start()
        try:
            engine.run_sync(inputs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    untraced = peak([])
    traced = peak([ChromeTraceTracer(tmp_path / "run.json")])
    assert (tmp_path / "run.json").stat().st_size > 2_000_000
    assert traced - untraced < 500_000  # a file buffer and per-op tracks, not the frames


# ------------------------------------------------------------------- several runs


def test_later_runs_continue_the_file_one_pid_each(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    tracer = ChromeTraceTracer(path)
    assert isinstance(tracer, Tracer) and not tracer.complete
    engine = Engine(streaming_graph(), tracers=[tracer])
    engine.run_sync({"numbers": [1]})
    assert tracer.complete
    first = load(path)
    with pytest.raises(OpError):
        engine.run_sync({"numbers": [-1]})
    engine.run_sync({"numbers": [1, 2, 3]})
    document = load(path)
    assert [r["pid"] for r in document["otherData"]["runs"]] == [1, 2, 3]
    assert [r["status"] for r in document["otherData"]["runs"]] == ["ok", "error", "ok"]
    assert document["traceEvents"][:len(first["traceEvents"])] == first["traceEvents"]
    events = document["traceEvents"]
    tids = {pid: {e["tid"] for e in events if e["pid"] == pid} for pid in (1, 2, 3)}
    assert not (tids[1] & tids[2]) and not (tids[2] & tids[3])  # tids are unique in the file


def test_concurrent_runs_from_threads_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    engine = Engine(fanout_graph(), tracers=[ChromeTraceTracer(path)])
    threads = [threading.Thread(target=engine.run_sync, args=({"numbers": list(range(8))},))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    document = load(path)
    assert sorted(r["frames"] for r in document["otherData"]["runs"]) == [16, 16, 16]


@pytest.mark.parametrize("change", ["remove", "replace"])
def test_a_file_removed_or_replaced_between_runs_starts_over(tmp_path: Path,
                                                             change: str) -> None:
    path = tmp_path / "run.json"
    engine = Engine(streaming_graph(), tracers=[ChromeTraceTracer(path)])
    engine.run_sync({"numbers": [1]})
    if change == "remove":
        path.unlink()
    else:
        path.write_text('{"someone": "else"}')
    engine.run_sync({"numbers": [2]})
    document = load(path)
    assert [r["pid"] for r in document["otherData"]["runs"]] == [1]


# ------------------------------------------------- the compiled module's own writer


def _synthetic_run(trace: str, root: str) -> list[Frame]:
    """Frames as a run would send them, with overlapping executions of one op."""
    def frame(op_name: str, index: tuple[int, ...], span: str, parent: str | None,
              start: int, end: int, outputs: dict[str, object]) -> Frame:
        return Frame(op_name, outputs, index, SpanContext(trace, span, parent), start, end)

    return [
        frame("gen", (0,), "a" * 16, root, 1_000, 2_000, {"value": "é" * 300}),
        frame("gen", (1,), "b" * 16, root, 2_000, 2_500, {"value": 2}),
        frame("work", (1,), "c" * 16, "b" * 16, 2_600, 9_000, {"out": list(range(50))}),
        frame("work", (0,), "d" * 16, "a" * 16, 2_100, 9_500, {}),
        frame("work", (2,), "e" * 16, "b" * 16, 9_000, 9_700, {f"k{i}": i for i in range(20)}),
        frame("END", (), root, None, 0, 10_000, {"out": [[1], {"a": (2, 3)}]}),
    ]


@pytest.mark.parametrize("error", [None, RuntimeError("boom " * 500), asyncio.CancelledError()])
def test_the_compiled_writer_writes_the_same_bytes(tmp_path: Path,
                                                   error: BaseException | None) -> None:
    module = load_source(compile_file(str(REPO / "examples" / "streaming.py")).source, tmp_path)
    trace, root = "f" * 32, "0" * 15 + "1"
    frames = _synthetic_run(trace, root)
    if error is not None:
        frames = frames[:-1]  # a failed run has no END

    engine_path, compiled_path = tmp_path / "engine.json", tmp_path / "compiled.json"
    tracer = ChromeTraceTracer(engine_path)
    info = RunInfo("g", SpanContext(trace, root, None), 0, {})
    tracer.on_run_start(info)
    writer = module._ChromeTraceWriter(str(compiled_path), "g", 0)
    for frame in frames:
        tracer.on_frame(frame)
        writer.frame(frame)
    tracer.on_run_end(info, error)
    writer.close(error)

    engine_doc, compiled_doc = load(engine_path), load(compiled_path)
    assert engine_doc["otherData"].pop("producer") == "operonx 0.1.0 engine"
    assert compiled_doc["otherData"].pop("producer") == "operonx compiled module"
    if error is not None:  # the end of a run without END is the clock's: not comparable
        for document in (engine_doc, compiled_doc):
            run_events(document)[0]["dur"] = None
    assert compiled_doc == engine_doc
    if error is None:
        engine_bytes = engine_path.read_bytes().replace(b"operonx 0.1.0 engine", b"P")
        assert compiled_path.read_bytes().replace(b"operonx compiled module", b"P") == engine_bytes
    names = set(track_names(engine_doc).values())
    assert names == {"run", "gen", "work", "work #2"}
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_summaries_never_call_a_repr_that_raises_into_the_run(tmp_path: Path) -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    path = tmp_path / "run.json"
    tracer = ChromeTraceTracer(path)
    info = RunInfo("g", SpanContext("f" * 32, "1" * 16, None), 0, {})
    tracer.on_run_start(info)
    tracer.on_frame(Frame("op", {"x": Broken()}, (), SpanContext("f" * 32, "2" * 16, "1" * 16),
                          1, 2))
    tracer.on_run_end(info, None)
    (event,) = op_events(load(path))
    assert event["args"]["outputs"]["x"].startswith("<")
    assert json.loads(path.read_text())["otherData"]["runs"][0]["frames"] == 1
