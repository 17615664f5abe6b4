"""Small ops shared by the branching tests (the graphs stay in each test)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from operonx.core import op


@op
def classify(text: str) -> dict[str, str]:
    return {"kind": "audio" if text.endswith(".wav") else "plain"}


@op
def transcribe(text: str) -> dict[str, str]:
    return {"text": f"transcript of {text}"}


@op
def passthrough(text: str) -> dict[str, str]:
    return {"text": text}


@op
def publish(text: str) -> dict[str, str]:
    return {"published": text}


@op
def numbers(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"n": item}


@op
def measure(n: int) -> dict[str, int]:
    return {"size": n}


@op
def small(n: int) -> dict[str, str]:
    return {"label": f"small {n}"}


@op
def large(n: int) -> dict[str, str]:
    return {"label": f"large {n}"}


@op
async def slow_large(n: int) -> dict[str, str]:
    await asyncio.sleep(0.001 * (10 - n % 10))  # later items finish first
    return {"big": f"large {n}"}


@op
def labels(values: list[str]) -> dict[str, list[str]]:
    return {"all": values}


@op
def tag(label: str) -> dict[str, str]:
    return {"tagged": f"<{label}>"}


@op
def note(text: str) -> dict[str, str]:
    return {"note": text}
