"""An OpenTelemetry tracer: every frame becomes an SDK span carrying the frame's own ids.

Needs the ``otel`` extra (``pip install 'operonx[otel]'``); ``operonx.tracing``
imports this module only when ``OpenTelemetryTracer`` is asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

try:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "OpenTelemetryTracer needs OpenTelemetry: pip install 'operonx[otel]'") from exc

from operonx.core.frame import Frame
from operonx.tracing.base import RunInfo

__all__ = ["OpenTelemetryTracer"]

_SCOPE = "operonx"


class _FrameIdGenerator(IdGenerator):
    """Hands the SDK the ids operonx already chose for a span.

    The SDK has no public way to start a span with given ids: ``Tracer.start_span``
    always asks the provider's ``IdGenerator`` (the trace id only for a root
    span). So the tracer stores the frame's ids here right before ``start_span``
    and this generator returns them. Ids are per thread (two runs may trace
    from two threads at once); when none are pending (another tracer of the
    same provider starts a span) it defers to the generator it replaced.
    """

    def __init__(self, fallback: IdGenerator) -> None:
        self.fallback = fallback
        self._pending = threading.local()

    @contextmanager
    def ids(self, trace_id: int, span_id: int) -> Iterator[None]:
        self._pending.trace_id = trace_id
        self._pending.span_id = span_id
        try:
            yield
        finally:
            # Cleared even if start_span did not ask (a disabled provider), so the
            # ids never leak into an unrelated span.
            self._pending.trace_id = self._pending.span_id = None

    def generate_span_id(self) -> int:
        span_id: int | None = getattr(self._pending, "span_id", None)
        if span_id is None:
            return self.fallback.generate_span_id()
        self._pending.span_id = None
        return span_id

    def generate_trace_id(self) -> int:
        trace_id: int | None = getattr(self._pending, "trace_id", None)
        if trace_id is None:
            return self.fallback.generate_trace_id()
        self._pending.trace_id = None
        return trace_id

    def is_trace_id_random(self) -> bool:
        return True  # operonx trace ids are 128 random bits


class OpenTelemetryTracer:
    """Exports a run as OpenTelemetry spans whose ids are exactly the frames' ids.

    The run is a root span named after the graph (``RunInfo.span``), ended when
    the run ends, with status ERROR and the exception recorded if it failed.
    Every frame is a span named by its op, child of the frame's parent span,
    timed by ``start_ns``/``end_ns``, with attributes ``operonx.op``,
    ``operonx.index`` (int list), ``operonx.outputs`` (the output keys),
    ``operonx.attempts`` (op calls: more after retries, 0 for a cache hit) and
    ``operonx.cached`` (a cache hit; SPEC §9). The
    ``END`` frame *is* the root span: its output keys go on the root.

    Give it where spans go::

        OpenTelemetryTracer(BatchSpanProcessor(OTLPSpanExporter()))  # its own provider
        OpenTelemetryTracer(tracer_provider=provider)  # an SDK TracerProvider you set up

    With neither, the global tracer provider is used (it must be the SDK's).
    A provider passed in (or the global one) gets its ``id_generator`` wrapped
    so the spans can carry operonx's ids; its other spans are unaffected.
    """

    def __init__(self, span_processor: SpanProcessor | None = None, *,
                 tracer_provider: TracerProvider | None = None) -> None:
        provider = tracer_provider
        self._owns_provider = False
        if provider is None and span_processor is not None:
            provider = TracerProvider()
            self._owns_provider = True
        if provider is None:
            provider = trace.get_tracer_provider()  # type: ignore[assignment]
        if not isinstance(provider, TracerProvider):
            raise TypeError("OpenTelemetryTracer needs an SDK TracerProvider: pass a "
                            "span_processor or tracer_provider=, or set up the global one")
        if span_processor is not None:
            provider.add_span_processor(span_processor)
        current: IdGenerator = provider.id_generator
        if isinstance(current, _FrameIdGenerator):  # one wrapper per provider, however many tracers
            self._ids = current
        else:
            self._ids = _FrameIdGenerator(current)
            # The SDK infers the attribute's type from its default (RandomIdGenerator).
            provider.id_generator = self._ids  # type: ignore[assignment]
        self.tracer_provider = provider
        # A tracer takes its provider's id generator when created: get it after wrapping.
        self._tracer = provider.get_tracer(_SCOPE)
        self._roots: dict[str, Span] = {}  # trace id -> open root span (a run is one trace)

    # -- Tracer protocol

    def on_run_start(self, run: RunInfo) -> None:
        ctx = run.span
        with self._ids.ids(int(ctx.trace_id, 16), int(ctx.span_id, 16)):
            # An empty Context, not the current one: a span the caller has open must
            # not become the parent (it would also impose its trace id).
            root = self._tracer.start_span(
                run.graph_name, context=Context(), kind=SpanKind.INTERNAL,
                start_time=run.start_ns,
                attributes={"operonx.graph": run.graph_name,
                            "operonx.inputs": _keys(run.inputs)})
        self._roots[ctx.trace_id] = root

    def on_frame(self, frame: Frame) -> None:
        ids = frame.span
        root = self._roots.get(ids.trace_id)
        if root is not None and root.get_span_context().span_id == int(ids.span_id, 16):
            # The END frame is the root span itself.
            root.set_attribute("operonx.outputs", _keys(frame.outputs))
            return
        # Frames are complete when they arrive, possibly after their parent span
        # ended (a generator's frame ends at its yield, before its ops run): so
        # each span is started and ended at once with the frame's own times,
        # under a stand-in for the parent built from its ids.
        with self._ids.ids(int(ids.trace_id, 16), int(ids.span_id, 16)):
            span = self._tracer.start_span(
                frame.op_name, context=_parent(root, ids.trace_id, ids.parent_span_id),
                kind=SpanKind.INTERNAL, start_time=frame.start_ns,
                attributes={"operonx.op": frame.op_name, "operonx.index": list(frame.index),
                            "operonx.outputs": _keys(frame.outputs),
                            "operonx.attempts": frame.attempts,
                            "operonx.cached": frame.cached})
        span.end(end_time=frame.end_ns)

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None:
        root = self._roots.pop(run.span.trace_id, None)
        if root is None:
            return
        if error is not None:
            root.record_exception(error)
            root.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        root.end(end_time=time.time_ns())

    # -- lifecycle

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Push out spans a batching processor still holds."""
        return self.tracer_provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and shut down the provider, if this tracer created it."""
        if self._owns_provider:
            self.tracer_provider.shutdown()


def _parent(root: Span | None, trace_id: str, parent_span_id: str | None) -> Context:
    """A context whose current span stands in for the frame's parent (only its ids matter)."""
    if parent_span_id is None:
        return Context()
    # Children follow the root's sampling decision (ParentBased samplers read
    # these flags); a frame of a run this tracer did not see counts as sampled.
    flags = (root.get_span_context().trace_flags if root is not None
             else trace.TraceFlags(trace.TraceFlags.SAMPLED))
    parent = trace.SpanContext(int(trace_id, 16), int(parent_span_id, 16),
                               is_remote=False, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(parent), Context())


def _keys(mapping: Mapping[str, object]) -> list[str]:
    return [str(k) for k in mapping]
