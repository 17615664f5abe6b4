"""Case chain5: generator → five sync ops in a chain, per yield."""

from operonx.core import END, PARENT, START, GraphOp, op


@op
def each_item(items: list[int]):
    for item in items:
        yield {"value": item}


@op
def add_one(value: int) -> dict[str, int]:
    return {"value": value + 1}


with GraphOp(name="chain5") as graph:
    gen = each_item(items=PARENT["numbers"])
    s1 = add_one(value=gen["value"])
    s2 = add_one(value=s1["value"])
    s3 = add_one(value=s2["value"])
    s4 = add_one(value=s3["value"])
    s5 = add_one(value=s4["value"])
    START >> gen >> s1 >> s2 >> s3 >> s4 >> s5 >> END
