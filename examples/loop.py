"""A feedback loop: ``increment`` runs until the state says ``count >= 5``.

    operonx run examples/loop.py
"""

from operonx.core import END, PARENT, START, GraphOp, op


@op
def increment(counter: int) -> dict[str, int]:
    return {"counter": counter + 1}


with GraphOp.loop(until="count >= 5", count=0) as loop:
    inc = increment(counter=PARENT["count"])
    inc["counter"] >> PARENT["count"]
    START >> inc >> END
