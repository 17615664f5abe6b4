"""Ray bench case cpu_fanout: a generator fans out pure-Python CPU-bound work (SPEC §10).

``crunch`` holds the GIL for all of its work, so threads cannot overlap it; worker
processes (a process pool, or Ray's workers) can.
"""

from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op


def spin(rounds: int) -> int:
    """About 20 ns a round on the bench machine; nothing here releases the GIL."""
    total = 0
    for i in range(rounds):
        total = (total + i * i) % 1_000_003
    return total


@op
def items(n: int) -> Iterator[dict[str, int]]:
    for i in range(n):
        yield {"i": i}


@op(bound="cpu")
def crunch(i: int, rounds: int) -> dict[str, int]:
    return {"value": spin(rounds) + i}


with GraphOp(name="cpu_fanout") as graph:
    gen = items(n=PARENT["n"])
    work = crunch(i=gen["i"], rounds=PARENT["rounds"])
    START >> gen >> work >> END
