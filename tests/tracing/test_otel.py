"""OpenTelemetryTracer: exported spans carry exactly the frames' ids, parents and times."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from operonx.core import END, PARENT, START, Engine, GraphOp, OpError, op
from operonx.core.frame import Frame
from operonx.tracing import OpenTelemetryTracer, Tracer
from tests.tracing.helpers import (
    SPAN_ID,
    TRACE_ID,
    ListTracer,
    each_item,
    nested_graph,
    streaming_graph,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    yield exp
    exp.shutdown()


@pytest.fixture
def otel(exporter: InMemorySpanExporter) -> OpenTelemetryTracer:
    return OpenTelemetryTracer(SimpleSpanProcessor(exporter))


def by_id(spans: Sequence[ReadableSpan]) -> dict[int, ReadableSpan]:
    out = {}
    for span in spans:
        assert span.context is not None
        out[span.context.span_id] = span
    assert len(out) == len(spans), "two spans share a span id"
    return out


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def check_spans_match_frames(frames: list[Frame], spans: Sequence[ReadableSpan],
                             graph_name: str) -> ReadableSpan:
    """Every non-END frame is one span with its ids and times; END is the root span."""
    spans_by_id = by_id(spans)
    end = frames[-1]
    assert end.op_name == "END"
    assert len(spans) == len(frames)  # one span per op frame, plus the root (= END)
    for frame in frames:
        span = spans_by_id[int(frame.span.span_id, 16)]
        assert span.context is not None
        assert span.context.trace_id == int(frame.span.trace_id, 16)
        expected_parent = (None if frame.span.parent_span_id is None
                           else int(frame.span.parent_span_id, 16))
        assert parent_id(span) == expected_parent
        if frame is end:
            assert span.name == graph_name
            continue
        assert span.name == frame.op_name
        assert (span.start_time, span.end_time) == (frame.start_ns, frame.end_ns)
        assert span.attributes is not None
        assert span.attributes["operonx.op"] == frame.op_name
        assert tuple(span.attributes["operonx.index"]) == frame.index  # type: ignore[arg-type]
        assert tuple(span.attributes["operonx.outputs"]) == tuple(frame.outputs)  # type: ignore[arg-type]
    return spans_by_id[int(end.span.span_id, 16)]


def test_is_a_tracer(otel: OpenTelemetryTracer) -> None:
    assert isinstance(otel, Tracer)


def test_spans_carry_the_frames_ids(otel: OpenTelemetryTracer,
                                    exporter: InMemorySpanExporter) -> None:
    frames = ListTracer()
    result = Engine(streaming_graph(), tracers=[otel, frames]).run_sync({"numbers": [1, 2, 3]})
    assert result == {"values": [2, 4, 6]}

    root = check_spans_match_frames(frames.frames, exporter.get_finished_spans(), "pipeline")
    run = frames.runs[0]
    assert root.context is not None and root.parent is None
    assert root.context.trace_id == int(run.span.trace_id, 16)
    assert root.context.span_id == int(run.span.span_id, 16)
    assert root.start_time == run.start_ns
    assert root.end_time is not None and root.end_time >= frames.frames[-1].end_ns
    assert root.status.status_code is not StatusCode.ERROR
    assert root.attributes is not None
    assert tuple(root.attributes["operonx.outputs"]) == ("values",)  # type: ignore[arg-type]
    assert tuple(root.attributes["operonx.inputs"]) == ("numbers",)  # type: ignore[arg-type]
    # A single trace for the run.
    assert {s.context.trace_id for s in exporter.get_finished_spans()
            } == {int(run.span.trace_id, 16)}


def test_frame_ids_are_w3c_and_parents_follow_the_stream() -> None:
    frames = ListTracer()
    Engine(streaming_graph(), tracers=[frames]).run_sync({"numbers": [1, 2, 3]})
    run = frames.runs[0]
    root = run.span
    assert TRACE_ID.match(root.trace_id) and int(root.trace_id, 16) != 0
    assert SPAN_ID.match(root.span_id) and int(root.span_id, 16) != 0
    assert root.parent_span_id is None
    for frame in frames.frames:
        assert frame.span.trace_id == root.trace_id
        assert SPAN_ID.match(frame.span.span_id) and int(frame.span.span_id, 16) != 0
        assert frame.start_ns <= frame.end_ns
    assert len({f.span.span_id for f in frames.frames}) == len(frames.frames)

    gen = {f.index: f for f in frames.frames if f.op_name == "each_item"}
    assert sorted(gen) == [(0,), (1,), (2,)]
    doubles = [f for f in frames.frames if f.op_name == "double"]
    assert len(doubles) == 3
    for frame in doubles:  # an op in a stream: child of the yield it ran in
        assert frame.span.parent_span_id == gen[frame.index].span.span_id
    for frame in frames.frames:  # top-level ops and generator yields: children of the root
        if frame.op_name in ("prepare", "each_item", "listing"):
            assert frame.span.parent_span_id == root.span_id, frame.op_name
    end = frames.frames[-1]
    assert end.op_name == "END" and end.span == root  # END's span is the root span


def test_nested_streams(otel: OpenTelemetryTracer, exporter: InMemorySpanExporter) -> None:
    frames = ListTracer()
    Engine(nested_graph(), tracers=[otel, frames]).run_sync({"numbers": [2, 1]})
    check_spans_match_frames(frames.frames, exporter.get_finished_spans(), "nested")
    outer = {f.index: f for f in frames.frames if f.op_name == "each_item"}
    inner = {f.index: f for f in frames.frames if f.op_name == "upto"}
    assert sorted(inner) == [(0, 0), (0, 1), (1, 0)]
    for index, frame in inner.items():
        assert frame.span.parent_span_id == outer[index[:1]].span.span_id
    for frame in frames.frames:
        if frame.op_name == "double":
            assert frame.span.parent_span_id == inner[frame.index].span.span_id


def test_failed_run_ends_the_root_span_with_error(otel: OpenTelemetryTracer,
                                                  exporter: InMemorySpanExporter) -> None:
    frames = ListTracer()
    engine = Engine(streaming_graph(), tracers=[otel, frames])
    with pytest.raises(OpError, match="negative: -2"):
        engine.run_sync({"numbers": [1, -2, 3]})
    assert isinstance(frames.ends[0], OpError)

    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1
    root = roots[0]
    assert root.context is not None
    assert root.context.span_id == int(frames.runs[0].span.span_id, 16)
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description is not None and "negative: -2" in root.status.description
    exceptions = [e for e in root.events if e.name == "exception"]
    assert len(exceptions) == 1
    assert exceptions[0].attributes is not None
    assert str(exceptions[0].attributes["exception.type"]).endswith("OpError")
    # The frames emitted before the failure are still spans with their ids.
    assert frames.frames and frames.frames[-1].op_name != "END"
    spans_by_id = by_id(spans)
    for frame in frames.frames:
        assert parent_id(spans_by_id[int(frame.span.span_id, 16)]) == int(
            frame.span.parent_span_id or "0", 16)


async def test_stream_and_tracers_see_the_same_frames(otel: OpenTelemetryTracer,
                                                      exporter: InMemorySpanExporter) -> None:
    traced = ListTracer()
    engine = Engine(streaming_graph(), tracers=[otel, traced])
    streamed = [f async for f in engine.stream({"numbers": [4, 5]})]
    assert streamed == traced.frames
    assert [f.span.span_id for f in streamed] == [f.span.span_id for f in traced.frames]
    check_spans_match_frames(streamed, exporter.get_finished_spans(), "pipeline")


def test_runs_are_separate_traces(otel: OpenTelemetryTracer,
                                  exporter: InMemorySpanExporter) -> None:
    frames = ListTracer()
    engine = Engine(streaming_graph(), tracers=[otel, frames])
    engine.run_sync({"numbers": [1]})
    engine.run_sync({"numbers": [2]})
    first, second = frames.runs
    assert first.span.trace_id != second.span.trace_id
    roots = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert sorted(r.context.trace_id for r in roots) == sorted(
        int(r.span.trace_id, 16) for r in frames.runs)


def test_callers_current_span_is_not_the_parent(exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = OpenTelemetryTracer(tracer_provider=provider)
    frames = ListTracer()
    with provider.get_tracer("app").start_as_current_span("request"):
        Engine(streaming_graph(), tracers=[otel, frames]).run_sync({"numbers": [1]})
    spans = [s for s in exporter.get_finished_spans() if s.name != "request"]
    check_spans_match_frames(frames.frames, spans, "pipeline")


def test_other_spans_of_the_provider_keep_random_ids(exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = OpenTelemetryTracer(tracer_provider=provider)
    again = OpenTelemetryTracer(tracer_provider=provider)  # reuses the provider's wrapper
    frames = ListTracer()
    Engine(streaming_graph(), tracers=[otel, again, frames]).run_sync({"numbers": [1]})
    used = {int(f.span.span_id, 16) for f in frames.frames}
    with provider.get_tracer("app").start_as_current_span("other") as other:
        ctx = other.get_span_context()
    assert ctx.span_id not in used
    assert ctx.trace_id != int(frames.runs[0].span.trace_id, 16)


def test_needs_an_sdk_provider() -> None:
    from opentelemetry.trace import NoOpTracerProvider

    with pytest.raises(TypeError, match="SDK TracerProvider"):
        OpenTelemetryTracer(tracer_provider=NoOpTracerProvider())  # type: ignore[arg-type]


def test_import_is_lazy_and_missing_extra_says_how_to_install() -> None:
    code = (
        "import sys\n"
        "import operonx, operonx.tracing, operonx.core\n"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules), 'eager import'\n"
        "sys.modules['opentelemetry'] = None  # as if the extra were not installed\n"
        "try:\n"
        "    from operonx.tracing import OpenTelemetryTracer\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ROOT}, check=True)
    assert "pip install 'operonx[otel]'" in out.stdout


async def test_overlapping_runs(otel: OpenTelemetryTracer, exporter: InMemorySpanExporter) -> None:
    @op
    async def slow(value: int) -> dict[str, int]:
        await asyncio.sleep(0.001)  # so the two runs really interleave
        return {"result": value}

    with GraphOp(name="overlap") as g:
        gen = each_item(items=PARENT["numbers"])
        s = slow(value=gen["value"])
        START >> gen >> s >> END

    frames = ListTracer()
    engine = Engine(g, tracers=[otel, frames])
    await asyncio.gather(engine.run({"numbers": [1, 2, 3]}), engine.run({"numbers": [4, 5]}))
    spans = exporter.get_finished_spans()
    for run in frames.runs:
        trace_id = run.span.trace_id
        check_spans_match_frames(
            [f for f in frames.frames if f.span.trace_id == trace_id],
            [s for s in spans if s.context is not None and s.context.trace_id == int(trace_id, 16)],
            "overlap")


def test_spans_record_attempts_and_cache_hits(otel: OpenTelemetryTracer,
                                              exporter: InMemorySpanExporter) -> None:
    """SPEC §9: a retried execution is one span with its attempt count; a hit is marked."""
    from operonx.core import Retry

    failed: set[int] = set()

    @op(retry=Retry(2), cache=True)
    def once_flaky(value: int) -> dict[str, int]:
        if value not in failed:
            failed.add(value)
            raise ConnectionError("first call fails")
        return {"doubled": value * 2}

    with GraphOp(name="policies") as g:
        gen = each_item(items=PARENT["items"])
        f = once_flaky(value=gen["value"])
        START >> gen >> f >> END
    assert Engine(g, tracers=[otel]).run_sync({"items": [4, 4]}) == {"doubled": [8, 8]}
    spans = sorted((s for s in exporter.get_finished_spans() if s.name == "once_flaky"),
                   key=lambda s: tuple(s.attributes["operonx.index"]))  # type: ignore[arg-type,index]
    assert [(s.attributes["operonx.attempts"], s.attributes["operonx.cached"])  # type: ignore[index]
            for s in spans] == [(2, False), (0, True)]
