"""sink for operonx 1.35: generator → an op returning None that appends to a list input."""

from typing import Any


def build(n: int) -> Any:
    from operonx.core import END, PARENT, START, GraphOp, op

    @op
    def each_item(items: list):
        for item in items:
            yield {"value": item}

    @op
    def record(value: int, into: list):
        into.append(value)
        return {}  # 1.35 fails on an op returning None ("argument of type 'NoneType'...")

    with GraphOp(name="sink") as graph:
        gen = each_item(items=PARENT["numbers"])
        rec = record(value=gen["value"], into=PARENT["into"])
        START >> gen >> rec >> END
    return graph


def extract(result: dict[str, Any]) -> dict[str, Any]:
    return {}  # no outputs; cases.check reads the ``into`` input
