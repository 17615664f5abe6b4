"""The scale chain for operonx 1.35: ``n`` copies of ``step`` in a chain."""

import itertools
from typing import Any


def build(n: int) -> Any:
    from operonx.core import END, PARENT, START, GraphOp, op

    @op
    def step(x: int):
        return {"x": x + 1}

    with GraphOp(name="chain_ops") as graph:
        nodes = [step(x=PARENT["x"])]
        for _ in range(n - 1):
            nodes.append(step(x=nodes[-1]["x"]))
        START >> nodes[0]
        for a, b in itertools.pairwise(nodes):
            a >> b
        nodes[-1] >> END
    return graph


def extract(result: dict[str, Any]) -> dict[str, Any]:
    return {"x": result.get("x")}
