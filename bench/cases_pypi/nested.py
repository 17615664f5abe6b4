"""nested for operonx 1.35: rows → cells → double (a generator per frame of a generator)."""

from typing import Any


def build(n: int) -> Any:
    from operonx.core import END, PARENT, START, GraphOp, op

    @op
    def rows(n_rows: int, width: int):
        for r in range(n_rows):
            yield {"row": list(range(r * width, (r + 1) * width))}

    @op
    def cells(row: list):
        for value in row:
            yield {"value": value}

    @op
    def double(value: int):
        return {"result": value * 2}

    with GraphOp(name="nested") as graph:
        outer = rows(n_rows=PARENT["n_rows"], width=PARENT["width"])
        inner = cells(row=outer["row"])
        step = double(value=inner["value"])
        START >> outer >> inner >> step >> END
    return graph


def extract(result: dict[str, Any]) -> dict[str, Any]:
    return {"result": result.get("result")}
