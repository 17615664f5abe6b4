"""The seed's streaming example: every yield dispatches ``double`` at once.

    operonx run examples/streaming.py --inputs '{"numbers": [1, 2, 3]}'
    operonx compile examples/streaming.py -o out/streaming.py
"""

from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op


@op
def each_item(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"value": item}


@op
def double(value: int) -> dict[str, int]:
    return {"result": value * 2}


with GraphOp(name="iterate") as graph:
    gen = each_item(items=PARENT["numbers"])
    step = double(value=gen["value"])
    START >> gen >> step >> END
