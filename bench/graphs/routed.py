"""Case routed: each frame goes to one of two sync ops by a per-frame condition (SPEC §8)."""

from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, if_, op


@op
def each_item(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"value": item, "parity": item % 2}


@op
def double(value: int) -> dict[str, int]:
    return {"even": value * 2}


@op
def negate(value: int) -> dict[str, int]:
    return {"odd": -value}


with GraphOp(name="routed") as graph:
    gen = each_item(items=PARENT["numbers"])
    d = double(value=gen["value"])
    neg = negate(value=gen["value"])
    START >> gen >> if_(gen["parity"] == 0, d).else_(neg)
    [d, neg] >> END
