"""Hand-written baselines: the limit an engine is measured against.

Each case is the same op bodies as ``bench/graphs/`` (plain functions returning
the same dicts), wired by hand the way a careful user would write it for speed:
plain ``for`` loops for the sync cases, and a pool of 64 worker coroutines pulling
items from the generator for the async fan-out (``run_<case>_gather``, the
``asyncio.gather`` under a ``Semaphore(64)`` that most users write first, is kept
as an extra column). Every function is ``async def run_<case>(inputs)`` and is
awaited on the same uvloop loop as our Engine and compiled module, so all are
timed alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

# ------------------------------------------------------------------ the op bodies


def each_item(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"value": item}


def double(value: int) -> dict[str, int]:
    return {"result": value * 2}


def add_one(value: int) -> dict[str, int]:
    return {"value": value + 1}


def step(x: int) -> dict[str, int]:
    return {"x": x + 1}


def increment(counter: int) -> dict[str, int]:
    return {"counter": counter + 1}


async def work(value: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"result": value + 1}


def rows(n_rows: int, width: int) -> Iterator[dict[str, list[int]]]:
    for r in range(n_rows):
        yield {"row": list(range(r * width, (r + 1) * width))}


def cells(row: list[int]) -> Iterator[dict[str, int]]:
    for value in row:
        yield {"value": value}


def each_index(n: int) -> Iterator[dict[str, int]]:
    for i in range(n):
        yield {"value": i}


def left(value: int) -> dict[str, int]:
    return {"l": value + 1}


def right(value: int) -> dict[str, int]:
    return {"r": value * 3}


def join(l: int, r: int) -> dict[str, int]:  # noqa: E741
    return {"total": l + r}


def count_up(n: int) -> Iterator[dict[str, int]]:
    for i in range(n):
        yield {"value": i}


def square(value: int) -> dict[str, int]:
    return {"value": value * value}


def sink(value: int) -> None:
    return None


def each_with_parity(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"value": item, "parity": item % 2}


def double_even(value: int) -> dict[str, int]:
    return {"even": value * 2}


def negate(value: int) -> dict[str, int]:
    return {"odd": -value}


def record(value: int, into: list[int]) -> None:
    into.append(value)


# ---------------------------------------------------------------------- the cases


async def run_seed_fanout(inputs: dict[str, Any]) -> dict[str, Any]:
    result = []
    for frame in each_item(inputs["numbers"]):
        result.append(double(frame["value"])["result"])
    return {"result": result}


async def run_chain5(inputs: dict[str, Any]) -> dict[str, Any]:
    out = []
    for frame in each_item(inputs["numbers"]):
        v = add_one(frame["value"])["value"]
        v = add_one(v)["value"]
        v = add_one(v)["value"]
        v = add_one(v)["value"]
        v = add_one(v)["value"]
        out.append(v)
    return {"value": out}


async def run_scalar_chain10(inputs: dict[str, Any]) -> dict[str, Any]:
    x = inputs["x"]
    x = step(x)["x"]
    x = step(x)["x"]
    x = step(x)["x"]
    x = step(x)["x"]
    x = step(x)["x"]
    x = step(x)["x"]
    x = step(x)["x"]
    x = step(x)["x"]
    x = step(x)["x"]
    x = step(x)["x"]
    return {"x": x}


async def run_loop(inputs: dict[str, Any]) -> dict[str, Any]:
    count, limit = 0, inputs["limit"]
    while True:
        count = increment(count)["counter"]
        if count >= limit:
            return {"count": count, "limit": limit}


async def run_async_fanout(inputs: dict[str, Any]) -> dict[str, Any]:
    """64 workers, each pulling the next item and awaiting it: no task or semaphore per item.

    The results go to a dict by yield position (the generator's length is not known up
    front), read back in yield order at the end, as the graph's END list is.
    """
    frames = enumerate(each_item(inputs["numbers"]))
    results: dict[int, int] = {}

    async def worker() -> None:
        for position, frame in frames:  # a shared iterator: next() never interleaves
            results[position] = (await work(frame["value"]))["result"]

    async with asyncio.TaskGroup() as group:  # one failure cancels the other workers
        for _ in range(64):
            group.create_task(worker())
    return {"result": [results[i] for i in range(len(results))]}


async def run_async_fanout_gather(inputs: dict[str, Any]) -> dict[str, Any]:
    """The first thing most users write: a coroutine per item, ``gather``, a semaphore."""
    sem = asyncio.Semaphore(64)

    async def one(value: int) -> int:
        async with sem:
            return (await work(value))["result"]

    result = await asyncio.gather(*(one(f["value"]) for f in each_item(inputs["numbers"])))
    return {"result": result}


async def run_nested(inputs: dict[str, Any]) -> dict[str, Any]:
    result = []
    for outer in rows(inputs["n_rows"], inputs["width"]):
        for inner in cells(outer["row"]):
            result.append(double(inner["value"])["result"])
    return {"result": result}


async def run_diamond(inputs: dict[str, Any]) -> dict[str, Any]:
    total = []
    for frame in each_index(inputs["n"]):
        a = left(frame["value"])
        b = right(frame["value"])
        total.append(join(a["l"], b["r"])["total"])
    return {"total": total}


async def run_sink(inputs: dict[str, Any]) -> dict[str, Any]:
    into = inputs["into"]
    for frame in each_item(inputs["numbers"]):
        record(frame["value"], into)
    return {}


async def run_routed(inputs: dict[str, Any]) -> dict[str, Any]:
    even: list[int] = []
    odd: list[int] = []
    for frame in each_with_parity(inputs["numbers"]):
        if frame["parity"] == 0:
            even.append(double_even(frame["value"])["even"])
        else:
            odd.append(negate(frame["value"])["odd"])
    return {"even": even, "odd": odd}


async def run_memory_stream(inputs: dict[str, Any]) -> dict[str, Any]:
    for frame in count_up(inputs["n"]):
        sink(square(add_one(frame["value"])["value"])["value"])
    return {}


async def run_chain_ops(inputs: dict[str, Any], ops: int) -> dict[str, Any]:
    """The scale graph: a chain of ``ops`` copies of ``step``."""
    x = inputs["x"]
    for _ in range(ops):
        x = step(x)["x"]
    return {"x": x}
