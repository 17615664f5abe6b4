"""Tracers: receive every frame of a run, plus its start and end.

``OpenTelemetryTracer`` is loaded on first use, so ``operonx.tracing`` imports
without the optional ``otel`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# operonx.core first: it imports the engine, which imports tracing.base. Entered the
# other way round (``import operonx.tracing`` first), base -> core.frame -> core ->
# engine -> tracing.base would find base half-initialized.
import operonx.core  # noqa: F401
from operonx.tracing.base import RunInfo, Tracer
from operonx.tracing.jsonl import JsonlTracer

if TYPE_CHECKING:
    from operonx.tracing.otel import OpenTelemetryTracer

__all__ = ["JsonlTracer", "OpenTelemetryTracer", "RunInfo", "Tracer"]


def __getattr__(name: str) -> Any:
    if name == "OpenTelemetryTracer":
        from operonx.tracing.otel import OpenTelemetryTracer

        return OpenTelemetryTracer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
