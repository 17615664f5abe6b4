"""loop for operonx 1.35: no GraphOp.loop there (removed in 1.0.0); a back-edge loop instead."""

from typing import Any


def build(n: int) -> Any:
    from operonx.core.ops import if_

    from operonx.core import END, PARENT, START, GraphOp, op

    @op
    def increment(counter: int):
        return {"counter": counter + 1}

    with GraphOp(name="loop") as graph:
        PARENT.declare(count=0)
        inc = increment(counter=PARENT["count"])
        inc["counter"] >> PARENT["count"]
        START >> inc >> if_(inc["counter"] >= n, END, max_iterations=n + 1).else_(inc)
    return graph


def extract(result: dict[str, Any]) -> dict[str, Any]:
    # 1.35 returns the written value of every iteration; the last one is the final count.
    values = result.get("counter")
    cells = result.get("$cells") or {}
    if "count" in cells:
        return {"count": cells["count"]}
    return {"count": values[-1] if isinstance(values, list) and values else values}
