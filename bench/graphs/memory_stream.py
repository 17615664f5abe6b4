"""Memory: an N-yield stream through 3 ops, no collect; only a sink with no outputs at END."""

from operonx.core import END, PARENT, START, GraphOp, op


@op
def count_up(n: int):
    for i in range(n):
        yield {"value": i}


@op
def add_one(value: int) -> dict[str, int]:
    return {"value": value + 1}


@op
def square(value: int) -> dict[str, int]:
    return {"value": value * value}


@op
def sink(value: int) -> None:
    return None


with GraphOp(name="memory_stream") as graph:
    gen = count_up(n=PARENT["n"])
    a = add_one(value=gen["value"])
    b = square(value=a["value"])
    c = sink(value=b["value"])
    START >> gen >> a >> b >> c >> END
