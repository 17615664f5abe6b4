"""Tracers: receive every frame of a run, plus its start and end."""

from operonx.tracing.base import RunInfo, Tracer
from operonx.tracing.jsonl import JsonlTracer

__all__ = ["JsonlTracer", "RunInfo", "Tracer"]
