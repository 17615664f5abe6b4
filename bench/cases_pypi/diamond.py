"""diamond for operonx 1.35: gen >> [left, right] >> join."""

from typing import Any


def build(n: int) -> Any:
    from operonx.core import END, PARENT, START, GraphOp, op

    @op
    def each_index(n: int):
        for i in range(n):
            yield {"value": i}

    @op
    def left(value: int):
        return {"l": value + 1}

    @op
    def right(value: int):
        return {"r": value * 3}

    @op
    def join(l: int, r: int):  # noqa: E741
        return {"total": l + r}

    with GraphOp(name="diamond") as graph:
        gen = each_index(n=PARENT["n"])
        a = left(value=gen["value"])
        b = right(value=gen["value"])
        c = join(l=a["l"], r=b["r"])
        START >> gen >> [a, b]
        [a, b] >> c
        c >> END
    return graph


def extract(result: dict[str, Any]) -> dict[str, Any]:
    return {"total": result.get("total")}
