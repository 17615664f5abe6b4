"""A small typed op library for differential and property-based tests of the compiler.

Every op fails with ``ValueError`` when its value equals ``fail``, so tests can
inject errors anywhere. ``TRACK`` records concurrency as the ops observe it
(the compiled module gets its own copy, read back as ``module.TRACK``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from operonx.core import op

TRACK: dict[str, int] = {"now": 0, "peak": 0, "produced": 0, "finished": 0, "backlog": 0,
                         "closed": 0}


def _check(v: int, fail: int) -> None:
    if v == fail:
        raise ValueError(f"bad value {v}")


@op
def source(items: list[int], fail: int = -1) -> Iterator[dict[str, int]]:
    for item in items:
        _check(item, fail)
        yield {"v": item}


@op
def add(v: int, k: int, fail: int = -1) -> dict[str, int]:
    _check(v, fail)
    return {"v": v + k}


@op(max_concurrent=3)
async def aadd(v: int, k: int, fail: int = -1) -> dict[str, int]:
    await asyncio.sleep(0)
    _check(v, fail)
    return {"v": v + k}


@op
def expand(v: int, n: int, fail: int = -1) -> Iterator[dict[str, int]]:
    for j in range(n):
        _check(v * 10 + j, fail)
        yield {"v": v * 10 + j}


@op
async def aexpand(v: int, n: int, fail: int = -1) -> AsyncIterator[dict[str, int]]:
    for j in range(n):
        await asyncio.sleep(0)
        _check(v * 10 + j, fail)
        yield {"v": v * 10 + j}


@op
def total(vs: list[int]) -> dict[str, int]:
    return {"v": sum(vs)}


@op
def weighted(vs: list[int]) -> dict[str, int]:
    """Order-sensitive: for ordered collects."""
    return {"v": sum((i + 1) * x for i, x in enumerate(vs))}


@op
def combine(a: int, b: int) -> dict[str, int]:
    return {"v": a * 3 + b}


@op
def incr(counter: int, step: int) -> dict[str, int]:
    return {"counter": counter + step}


@op(outputs=["v"])
def not_a_dict(v: int) -> dict[str, int]:
    return v  # type: ignore[return-value]


@op(outputs=["v"])
def missing_key(v: int) -> dict[str, int]:
    return dict(w=v)


@op
def counted(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        TRACK["produced"] += 1
        TRACK["backlog"] = max(TRACK["backlog"], TRACK["produced"] - TRACK["finished"])
        yield {"v": item}


@op(max_concurrent=2)
async def tracked(v: int) -> dict[str, int]:
    TRACK["now"] += 1
    TRACK["peak"] = max(TRACK["peak"], TRACK["now"])
    await asyncio.sleep(0.001)
    TRACK["now"] -= 1
    TRACK["finished"] += 1
    return {"v": v}


@op
def guarded(items: list[int]) -> Iterator[dict[str, int]]:
    """Counts its own closing: a failed run must close it."""
    try:
        for item in items:
            yield {"v": item}
    finally:
        TRACK["closed"] += 1
