"""Case sink: generator → an op that returns None per yield (it appends to a list input).

Nothing reads the sink's outputs (it has none), so an engine has nothing to publish
per yield; the values it saw are checked in the ``into`` list the run was given.
"""

from operonx.core import END, PARENT, START, GraphOp, op


@op
def each_item(items: list[int]):
    for item in items:
        yield {"value": item}


@op
def record(value: int, into: list[int]) -> None:
    into.append(value)


with GraphOp(name="sink") as graph:
    gen = each_item(items=PARENT["numbers"])
    rec = record(value=gen["value"], into=PARENT["into"])
    START >> gen >> rec >> END
