"""Collected-list semantics: ``total`` runs once, after the stream has ended.

    operonx run examples/collect.py --inputs '{"numbers": [1, 2, 3]}'
"""

from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op, ordered


@op
def each_item(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"value": item}


@op
def double(value: int) -> dict[str, int]:
    return {"result": value * 2}


@op
def summarize(values: list[int], in_order: list[int]) -> dict[str, int | list[int]]:
    return {"total": sum(values), "doubled": in_order}


with GraphOp(name="collect") as graph:
    gen = each_item(items=PARENT["numbers"])
    step = double(value=gen["value"])
    summary = summarize(values=step["result"].collect(), in_order=ordered(step["result"]))
    START >> gen >> step >> summary >> END
