"""A diamond per frame: ``gen >> [left, right] >> join``, joined by frame index."""

from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op


@op
def numbers(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"n": item}


@op
def plus_one(n: int) -> dict[str, int]:
    return {"plus": n + 1}


@op
def times_two(n: int) -> dict[str, int]:
    return {"times": n * 2}


@op
def join(plus: int, times: int) -> dict[str, int]:
    return {"joined": plus * 1000 + times}


@op
def inc(x: int) -> dict[str, int]:
    return {"y": x + 1}


@op
def inc_again(y: int) -> dict[str, int]:
    return {"z": y + 1}


with GraphOp(name="diamond") as graph:
    gen = numbers(items=PARENT["items"])
    left = plus_one(n=gen["n"])
    right = times_two(n=gen["n"])
    both = join(plus=left["plus"], times=right["times"])
    a = inc(x=both["joined"])
    b = inc_again(y=a["y"])
    START >> gen >> [left, right] >> both >> a >> b >> END
