"""Case seed_fanout: the seed's example, generator → double (SPEC §1)."""

from operonx.core import END, PARENT, START, GraphOp, op


@op
def each_item(items: list[int]):
    for item in items:
        yield {"value": item}


@op
def double(value: int) -> dict[str, int]:
    return {"result": value * 2}


with GraphOp(name="seed_fanout") as graph:
    gen = each_item(items=PARENT["numbers"])
    step = double(value=gen["value"])
    START >> gen >> step >> END
