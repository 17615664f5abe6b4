"""Case cpu_fanout: generator → a pure-Python CPU-bound op (``bound="cpu"``), per yield.

``burn`` is plain Python arithmetic that holds the GIL the whole time, so only
processes can run two at once. ``bench/cpu_bench.py`` imports this file as the
module ``cpu_fanout`` (worker processes import it by that name) and times the
same ``burn`` sequentially, in threads, in a hand-written ``ProcessPoolExecutor``
and through the Engine.
"""

from operonx.core import END, PARENT, START, GraphOp, op


def burn(value: int, loops: int) -> int:
    """About ``loops`` iterations of integer arithmetic; deterministic in its inputs."""
    acc = value
    for i in range(loops):
        acc = (acc * 31 + i) % 1_000_003
    return acc


@op
def each_item(items: list[int]):
    for item in items:
        yield {"value": item}


@op(bound="cpu")
def crunch(value: int, loops: int) -> dict[str, int]:
    return {"result": burn(value, loops)}


with GraphOp(name="cpu_fanout") as graph:
    gen = each_item(items=PARENT["numbers"])
    work = crunch(value=gen["value"], loops=PARENT["loops"])
    START >> gen >> work >> END
