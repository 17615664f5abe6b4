"""scalar_chain10 for operonx 1.35: ten sync ops in a chain, no stream."""

from typing import Any


def build(n: int) -> Any:
    from operonx.core import END, PARENT, START, GraphOp, op

    @op
    def step(x: int):
        return {"x": x + 1}

    with GraphOp(name="scalar_chain10") as graph:
        s1 = step(x=PARENT["x"])
        s2 = step(x=s1["x"])
        s3 = step(x=s2["x"])
        s4 = step(x=s3["x"])
        s5 = step(x=s4["x"])
        s6 = step(x=s5["x"])
        s7 = step(x=s6["x"])
        s8 = step(x=s7["x"])
        s9 = step(x=s8["x"])
        s10 = step(x=s9["x"])
        START >> s1 >> s2 >> s3 >> s4 >> s5 >> s6 >> s7 >> s8 >> s9 >> s10 >> END
    return graph


def extract(result: dict[str, Any]) -> dict[str, Any]:
    return {"x": result.get("x")}
