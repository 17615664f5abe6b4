"""Case loop: GraphOp.loop incrementing a counter until it reaches ``limit`` (SPEC §3)."""

from operonx.core import END, PARENT, START, GraphOp, op


@op
def increment(counter: int) -> dict[str, int]:
    return {"counter": counter + 1}


# ``limit`` is loop state too, so a run overrides it: inputs={"limit": 10_000}.
with GraphOp.loop(until="count >= limit", count=0, limit=10, max_iterations=10_000_000) as graph:
    inc = increment(counter=PARENT["count"])
    inc["counter"] >> PARENT["count"]
    START >> inc >> END
