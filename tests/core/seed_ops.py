"""The seed page's two ops, shared by the core tests (the graphs stay in each test)."""

from __future__ import annotations

from collections.abc import Iterator

from operonx.core import op


@op
def each_item(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"value": item}


@op
def double(value: int) -> dict[str, int]:
    return {"result": value * 2}
