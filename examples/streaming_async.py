r"""The seed's streaming example with an async op: yields fan out, at most 4 in flight.

``double`` stands for an I/O call (a web request, a model): it awaits, so the
Engine runs one per yield concurrently, up to ``max_concurrent=4``; the
generator waits when all four are busy (backpressure). The README's timeline
picture is this graph's trace:

    operonx run examples/streaming_async.py --trace run.json \
        --inputs '{"numbers": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}'
    operonx trace run.json -o timeline.png
"""

import asyncio
from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op


@op
def each_item(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"value": item}


@op(max_concurrent=4)
async def double(value: int) -> dict[str, int]:
    await asyncio.sleep(0.01 * (1 + value % 3))  # 10-30 ms of waiting on something else
    return {"result": value * 2}


@op
def total(values: list[int]) -> dict[str, int]:
    return {"total": sum(values)}


with GraphOp(name="streaming_async") as graph:
    gen = each_item(items=PARENT["numbers"])
    step = double(value=gen["value"])
    summed = total(values=step["result"].collect())
    START >> gen >> step >> summed >> END
