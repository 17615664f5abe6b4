"""Ops the Ray tests need beyond ``tests/compiler/oplib.py``."""

from __future__ import annotations

from operonx.core import op


@op
def append(items: list[int], v: int) -> dict[str, list[int]]:
    return {"items": [*items, v]}
