"""async_fanout for operonx 1.35: generator → async op, ``.parallel(max=64)``."""

import asyncio
from typing import Any


def build(n: int) -> Any:
    from operonx.core import END, PARENT, START, GraphOp, op

    @op
    def each_item(items: list):
        for item in items:
            yield {"value": item}

    @op
    async def work(value: int):
        await asyncio.sleep(0)
        return {"result": value + 1}

    with GraphOp(name="async_fanout") as graph:
        gen = each_item(items=PARENT["numbers"])
        w = work(value=gen["value"].parallel(max=64))
        START >> gen >> w >> END
    return graph


def extract(result: dict[str, Any]) -> dict[str, Any]:
    # .parallel() does not keep yield order in 1.35 (documented); compare as a set.
    values = result.get("result")
    return {"result": sorted(values) if isinstance(values, list) else values}
