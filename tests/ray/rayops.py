"""Ops the Ray tests need beyond ``tests/compiler/oplib.py``.

Ops run in Ray worker processes, so what a test observes comes back in their outputs
(wall-clock times of this machine, shared by every worker of a local cluster) or in
files, never in a module-level dict.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from operonx.core import op


@op
def append(items: list[int], v: int) -> dict[str, list[int]]:
    return {"items": [*items, v]}


@op
def ticking(n: int, pause: float) -> Iterator[dict[str, Any]]:
    """Yields ``n`` frames, ``pause`` seconds apart, each stamped with when it was yielded."""
    for i in range(n):
        if i:
            time.sleep(pause)
        yield {"i": i, "yielded": time.time()}


@op(max_concurrent=2, resources={"num_cpus": 0.25})
def bounded(i: int, hold: float) -> dict[str, float]:
    """At most 2 at once by ``max_concurrent``, though the cluster would fit 8 (0.25 CPU each)."""
    start = time.time()
    time.sleep(hold)
    return {"start": start, "end": time.time()}


@op(max_concurrent=4, resources={"num_cpus": 2})
def greedy(i: int, hold: float) -> dict[str, float]:
    """Two CPUs each: on a 2-CPU cluster one at a time, though max_concurrent allows 4."""
    start = time.time()
    time.sleep(hold)
    return {"start": start, "end": time.time()}


@op(max_concurrent=2)
def slow(i: int, hold: float) -> dict[str, float]:
    start = time.time()
    time.sleep(hold)
    return {"start": start, "end": time.time()}


@op
def flood(n: int) -> Iterator[dict[str, Any]]:
    """Yields as fast as it is allowed to: how far it runs ahead shows the backpressure."""
    for i in range(n):
        yield {"i": i, "yielded": time.time()}


@op
def closing(items: list[int], marker: str) -> Iterator[dict[str, int]]:
    """Writes ``marker`` when it is closed (a failed run must close it, on its worker)."""
    try:
        for item in items:
            yield {"v": item}
    finally:
        with open(marker, "a", encoding="utf-8") as f:
            f.write(f"closed {os.getpid()}\n")


@op
def fail_at(v: int, bad: int) -> dict[str, int]:
    if v == bad:
        raise ValueError(f"bad value {v}")
    time.sleep(0.05)
    return {"v": v}


class Unpicklable(Exception):
    """An exception that cannot be rebuilt from its pickle (its __init__ takes two args)."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} ({code})")


@op
def raise_unpicklable(v: int) -> dict[str, int]:
    raise Unpicklable("cannot go back", v)
