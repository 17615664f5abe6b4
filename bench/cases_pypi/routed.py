"""routed for operonx 1.35: generator → per-frame if_/else_ to one of two sync ops."""

from typing import Any


def build(n: int) -> Any:
    from operonx.core.ops import if_

    from operonx.core import END, PARENT, START, GraphOp, op

    @op
    def each_item(items: list):
        for item in items:
            yield {"value": item, "parity": item % 2}

    @op
    def double(value: int):
        return {"even": value * 2}

    @op
    def negate(value: int):
        return {"odd": -value}

    with GraphOp(name="routed") as graph:
        gen = each_item(items=PARENT["numbers"])
        d = double(value=gen["value"])
        neg = negate(value=gen["value"])
        START >> gen >> if_(gen["parity"] == 0, d).else_(neg)
        d >> END
        neg >> END
    return graph


def extract(result: dict[str, Any]) -> dict[str, Any]:
    return {"even": result.get("even"), "odd": result.get("odd")}
