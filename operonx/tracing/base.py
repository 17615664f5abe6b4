"""The Tracer protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from operonx.core.frame import Frame, SpanContext


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a tracer learns when a run starts: the graph and the run's root span."""

    graph_name: str
    span: SpanContext
    start_ns: int
    inputs: Mapping[str, object]


@runtime_checkable
class Tracer(Protocol):
    """Gets every frame of a run as it happens, plus the run's start and end.

    Called on the event loop thread, so keep each call short; a tracer that
    raises fails the run with its own exception.
    """

    def on_run_start(self, run: RunInfo) -> None: ...

    def on_frame(self, frame: Frame) -> None: ...

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None: ...
