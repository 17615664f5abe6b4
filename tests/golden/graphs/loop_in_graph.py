"""A loop node inside a graph: state from an upstream op, write-backs, then a consumer."""

from operonx.core import END, PARENT, START, GraphOp, op


@op
def start_at(base: int) -> dict[str, int]:
    return {"start": base * 2}


@op
def step(value: int, total: int) -> dict[str, int]:
    return {"value": value + 3, "total": total + value}


@op
def report(value: int, total: int) -> dict[str, str]:
    return {"summary": f"value={value} total={total}"}


with GraphOp(name="looping") as graph:
    first = start_at(base=PARENT["base"])
    with GraphOp.loop(until="value >= limit", inputs={"value": first["start"]}, total=0,
                      limit=20, max_iterations=50) as loop:
        s = step(value=PARENT["value"], total=PARENT["total"])
        s["value"] >> PARENT["value"]
        s["total"] >> PARENT["total"]
        START >> s >> END
    done = report(value=loop["value"], total=loop["total"])
    START >> first >> loop >> done >> END
