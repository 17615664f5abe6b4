"""Case diamond: gen >> [left, right] >> join, the two branches joined per frame."""

from operonx.core import END, PARENT, START, GraphOp, op


@op
def each_index(n: int):
    for i in range(n):
        yield {"value": i}


@op
def left(value: int) -> dict[str, int]:
    return {"l": value + 1}


@op
def right(value: int) -> dict[str, int]:
    return {"r": value * 3}


@op
def join(l: int, r: int) -> dict[str, int]:  # noqa: E741
    return {"total": l + r}


with GraphOp(name="diamond") as graph:
    gen = each_index(n=PARENT["n"])
    a = left(value=gen["value"])
    b = right(value=gen["value"])
    c = join(l=a["l"], r=b["r"])
    START >> gen >> [a, b]
    [a, b] >> c
    c >> END
