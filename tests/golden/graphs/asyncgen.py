"""An async generator feeding a cpu-bound op and an unordered collect."""

import asyncio
from collections.abc import AsyncIterator

from operonx.core import END, PARENT, START, GraphOp, op


@op(max_concurrent=3)
async def ticks(count: int) -> AsyncIterator[dict[str, int]]:
    for i in range(count):
        await asyncio.sleep(0)
        yield {"tick": i}


@op(bound="cpu", max_concurrent=2)
def crunch(tick: int) -> dict[str, int]:
    return {"crunched": sum(range(tick * 100))}


@op
def total(values: list[int]) -> dict[str, int]:
    return {"total": sum(values)}


with GraphOp(name="asyncgen") as graph:
    t = ticks(count=PARENT["count"])
    c = crunch(tick=t["tick"])
    s = total(values=c["crunched"].collect())
    START >> t >> c >> s >> END
