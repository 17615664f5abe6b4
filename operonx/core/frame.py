"""Frames: one record per op execution, as ``Engine.stream`` yields them and tracers see them."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

_rng = random.Random()


def new_trace_id() -> str:
    """32 lowercase hex digits, never all zero (W3C trace-context)."""
    return f"{_rng.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    """16 lowercase hex digits, never all zero (W3C trace-context)."""
    return f"{_rng.getrandbits(64) or 1:016x}"


@dataclass(frozen=True, slots=True)
class SpanContext:
    """W3C-compatible ids: every frame is a span of the run's trace."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    """One op execution (a generator's yield, or one run of a plain op), or the final ``END``.

    ``index`` is the position in the stream, ``()`` outside one; nested streams
    give ``(i, j)``. ``start_ns``/``end_ns`` are wall-clock nanoseconds
    (``time.time_ns()``), as OpenTelemetry expects.

    ``attempts`` is how many times the op function ran for this execution: 1,
    more after retries (SPEC §9), 0 for a cache hit, which ``cached`` marks
    (a hit on a result another execution was computing at the same time too).
    """

    op_name: str
    outputs: Mapping[str, object]
    index: tuple[int, ...]
    span: SpanContext
    start_ns: int
    end_ns: int
    attempts: int = 1
    cached: bool = False
