"""Async fan-out: every yield spawns ``fetch`` under its semaphore (max 2 in flight)."""

import asyncio
from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op


@op
def each_item(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"value": item}


@op(max_concurrent=2)
async def fetch(value: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"fetched": value + 100}


@op
def label(fetched: int, prefix: str) -> dict[str, str]:
    return {"label": f"{prefix}{fetched}"}


with GraphOp(name="async_fanout") as graph:
    gen = each_item(items=PARENT["numbers"])
    got = fetch(value=gen["value"])
    named = label(fetched=got["fetched"], prefix="item-")
    START >> gen >> got >> named >> END
