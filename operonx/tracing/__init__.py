"""Tracers: receive every frame of a run, plus its start and end.

``OpenTelemetryTracer`` is loaded on first use, so ``operonx.tracing`` imports
without the optional ``otel`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from operonx.tracing.base import RunInfo, Tracer
from operonx.tracing.chrome import ChromeTraceTracer
from operonx.tracing.jsonl import JsonlTracer

if TYPE_CHECKING:
    from operonx.tracing.otel import OpenTelemetryTracer

__all__ = ["ChromeTraceTracer", "JsonlTracer", "OpenTelemetryTracer", "RunInfo", "Tracer"]


def __getattr__(name: str) -> Any:
    if name == "OpenTelemetryTracer":
        from operonx.tracing.otel import OpenTelemetryTracer

        return OpenTelemetryTracer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
