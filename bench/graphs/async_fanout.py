"""Case async_fanout: generator → async op awaiting asyncio.sleep(0), at most 64 in flight."""

import asyncio

from operonx.core import END, PARENT, START, GraphOp, op


@op
def each_item(items: list[int]):
    for item in items:
        yield {"value": item}


@op(max_concurrent=64)
async def work(value: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"result": value + 1}


with GraphOp(name="async_fanout", max_stream_concurrent=64) as graph:
    gen = each_item(items=PARENT["numbers"])
    w = work(value=gen["value"])
    START >> gen >> w >> END
