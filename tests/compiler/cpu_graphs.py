"""Graphs with ``bound="cpu"`` ops, for the Engine and their compiled modules (SPEC §10).

The Engine's workers import this module by name; a compiled module's workers import
the compiled module, which holds its own copies of these ops. Work sizes are tiny.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterator
from typing import Any

from operonx.core import END, PARENT, START, GraphOp, op


@op
def each(values: list[int]) -> Iterator[dict[str, int]]:
    for value in values:
        yield {"value": value}


@op(bound="cpu")
def square(value: int) -> dict[str, int]:
    return {"square": value * value}


@op(bound="cpu")
def fail_on(value: int, bad: int) -> dict[str, int]:
    if value == bad:
        raise ValueError(f"bad {value}")
    return {"value": value}


@op(bound="cpu")
def whoami(value: int) -> dict[str, int]:
    return {"value": value, "pid": os.getpid()}


@op(bound="cpu")
def first_fails_others_hang(value: int, markers: str) -> dict[str, int]:
    """Item 0 fails after a moment; every other item records its pid and sleeps a minute."""
    if value == 0:
        time.sleep(0.3)
        raise ValueError("item 0 failed")
    pathlib.Path(markers, str(value)).write_text(str(os.getpid()))
    time.sleep(60)
    return {"value": value}


@op(bound="cpu", timeout=0.3)
def too_long(value: int, pid_file: str) -> dict[str, int]:
    """Records its worker's pid, then takes a minute: only its timeout ends it."""
    pathlib.Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)
    return {"value": value}


@op(bound="cpu", retry=2)
def fails_once(value: int, marks: str) -> dict[str, int]:
    """Fails the first attempt at each value (a file remembers it: attempts may run in
    different workers), answers the second."""
    mark = pathlib.Path(marks, str(value))
    if not mark.exists():
        mark.write_text(str(os.getpid()))
        raise ConnectionError(f"first attempt at {value}")
    return {"value": value, "pid": os.getpid()}


def _nap(seconds: float) -> dict[str, Any]:
    start = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes on one machine
    time.sleep(seconds)
    return {"span": [start, time.monotonic()], "pid": os.getpid()}


@op(bound="cpu", max_concurrent=1, outputs=["span", "pid"])
def nap_alone(value: int, seconds: float) -> dict[str, Any]:
    return _nap(seconds)


@op(bound="cpu", max_concurrent=2, outputs=["span", "pid"])
def nap_in_pairs(value: int, seconds: float) -> dict[str, Any]:
    return _nap(seconds)


@op
def total(values: list[int]) -> dict[str, int]:
    return {"total": sum(values), "count": len(values)}


with GraphOp(name="squares") as squares:
    gen = each(values=PARENT["values"])
    START >> gen >> square(value=gen["value"]) >> END

with GraphOp(name="failing") as failing:
    gen = each(values=PARENT["values"])
    START >> gen >> fail_on(value=gen["value"], bad=PARENT["bad"]) >> END

with GraphOp(name="pids") as pids:
    gen = each(values=PARENT["values"])
    START >> gen >> whoami(value=gen["value"]) >> END

with GraphOp(name="sibling_fails") as sibling_fails:
    gen = each(values=PARENT["values"])
    START >> gen >> first_fails_others_hang(value=gen["value"], markers=PARENT["markers"]) >> END

with GraphOp(name="times_out") as times_out:
    START >> too_long(value=PARENT["value"], pid_file=PARENT["pid_file"]) >> END

with GraphOp(name="retried") as retried:
    gen = each(values=PARENT["values"])
    START >> gen >> fails_once(value=gen["value"], marks=PARENT["marks"]) >> END

with GraphOp(name="alone") as alone:
    gen = each(values=PARENT["values"])
    START >> gen >> nap_alone(value=gen["value"], seconds=PARENT["seconds"]) >> END

with GraphOp(name="pairs") as pairs:
    gen = each(values=PARENT["values"])
    START >> gen >> nap_in_pairs(value=gen["value"], seconds=PARENT["seconds"]) >> END

with GraphOp(name="collected") as collected:
    gen = each(values=PARENT["values"])
    step = square(value=gen["value"])
    START >> gen >> step >> total(values=step["square"].collect()) >> END
