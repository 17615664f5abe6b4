"""A generator per frame of a generator: two-level indexes, a collect per outer frame."""

from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op


@op
def rows(n: int) -> Iterator[dict[str, int]]:
    for i in range(n):
        yield {"row": i}


@op
def cells(row: int, width: int) -> Iterator[dict[str, int]]:
    for j in range(width):
        yield {"cell": row * 10 + j}


@op
def square(cell: int) -> dict[str, int]:
    return {"squared": cell * cell}


@op
def row_sum(values: list[int]) -> dict[str, int]:
    return {"row_total": sum(values)}


with GraphOp(name="nested") as graph:
    r = rows(n=PARENT["n"])
    c = cells(row=r["row"], width=PARENT["width"])
    sq = square(cell=c["cell"])
    total = row_sum(values=sq["squared"].collect(ordered=True))
    START >> r >> c >> sq >> total >> END
    sq >> END
