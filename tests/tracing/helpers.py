"""Shared by the tracing tests: a list tracer and small streaming graphs."""

from __future__ import annotations

import re
from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op
from operonx.core.frame import Frame
from operonx.tracing import RunInfo

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
SPAN_ID = re.compile(r"^[0-9a-f]{16}$")


class ListTracer:
    """Keeps everything it is told, in order."""

    def __init__(self) -> None:
        self.runs: list[RunInfo] = []
        self.frames: list[Frame] = []
        self.ends: list[BaseException | None] = []

    def on_run_start(self, run: RunInfo) -> None:
        self.runs.append(run)

    def on_frame(self, frame: Frame) -> None:
        self.frames.append(frame)

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None:
        self.ends.append(error)


@op
def prepare(numbers: list[int]) -> dict[str, list[int]]:
    return {"items": numbers}


@op
def each_item(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"value": item}


@op
def double(value: int) -> dict[str, int]:
    if value < 0:
        raise ValueError(f"negative: {value}")
    return {"result": value * 2}


@op
def upto(value: int) -> Iterator[dict[str, int]]:
    for k in range(value):
        yield {"k": k}


@op
def listing(values: list[int]) -> dict[str, list[int]]:
    return {"values": values}


def streaming_graph() -> GraphOp:
    """prepare (top level) -> each_item (stream) -> double (per yield) -> listing (collect)."""
    with GraphOp(name="pipeline") as g:
        prep = prepare(numbers=PARENT["numbers"])
        gen = each_item(items=prep["items"])
        d = double(value=gen["value"])
        total = listing(values=d["result"].collect(ordered=True))
        START >> prep >> gen >> d >> total >> END
    return g


def nested_graph() -> GraphOp:
    """each_item -> upto (a stream per outer frame) -> double at index (i, j)."""
    with GraphOp(name="nested") as g:
        outer = each_item(items=PARENT["numbers"])
        inner = upto(value=outer["value"])
        d = double(value=inner["k"])
        START >> outer >> inner >> d >> END
    return g
