"""seed_fanout for operonx 1.35: generator → double."""

from typing import Any


def build(n: int) -> Any:
    from operonx.core import END, PARENT, START, GraphOp, op

    @op
    def each_item(items: list):
        for item in items:
            yield {"value": item}

    @op
    def double(value: int):
        return {"result": value * 2}

    with GraphOp(name="seed_fanout") as graph:
        gen = each_item(items=PARENT["numbers"])
        step = double(value=gen["value"])
        START >> gen >> step >> END
    return graph


def extract(result: dict[str, Any]) -> dict[str, Any]:
    return {"result": result.get("result")}
