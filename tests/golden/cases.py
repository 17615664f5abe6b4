"""The graphs pinned by golden files, and the inputs the differential tests run them with."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPECTED = os.path.join(REPO, "tests", "golden", "expected")


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # relative to the repo
    inputs: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    on_ray: bool = True  # the Ray target compiles it (it refuses branches and policies)

    @property
    def abspath(self) -> str:
        return os.path.join(REPO, self.path)


CASES = (
    Case("streaming", "examples/streaming.py", ({"numbers": [1, 2, 3]}, {"numbers": []})),
    Case("collect", "examples/collect.py", ({"numbers": [1, 2, 3]}, {"numbers": [5]})),
    Case("loop", "examples/loop.py", ({}, {"count": 3}, {"count": 9})),
    Case("branching", "examples/branching.py",
         ({"paths": ["a.wav", "b.png", "c.txt"]}, {"paths": []}), on_ray=False),
    Case("policies", "examples/policies.py", ({"urls": ["a", "b", "a", "c"]}, {"urls": []}),
         on_ray=False),
    Case("async_fanout", "tests/golden/graphs/async_fanout.py",
         ({"numbers": [1, 2, 3, 4, 5]}, {"numbers": []})),
    Case("nested_generators", "tests/golden/graphs/nested_generators.py",
         ({"n": 3, "width": 2}, {"n": 0, "width": 4}, {"n": 2, "width": 0})),
    Case("diamond", "tests/golden/graphs/diamond.py", ({"items": [1, 2, 3]},)),
    Case("subgraph", "tests/golden/graphs/subgraph.py", ({"text": "a bc d"}, {"text": ""})),
    Case("loop_in_graph", "tests/golden/graphs/loop_in_graph.py", ({"base": 1}, {"base": 30})),
    Case("asyncgen", "tests/golden/graphs/asyncgen.py", ({"count": 4}, {"count": 0})),
)
RAY_TARGET_CASES = tuple(case for case in CASES if case.on_ray)
GOLDEN_LEVELS = (0, 2)
RAY_CASES = ("diamond", "loop_in_graph")  # their ``--target ray`` modules are pinned too


def golden_path(case: Case, kind: str) -> str:
    """``kind``: ``O0`` / ``O2`` (generated module), ``ir`` (``operonx explain``) or ``ray``
    (the ``--target ray`` module)."""
    suffix = "ir.txt" if kind == "ir" else f"{kind}.py.txt"
    return os.path.join(EXPECTED, f"{case.name}.{suffix}")


def render(case: Case, kind: str) -> str:
    from compiler import compile_file, explain

    if kind == "ir":
        return explain(case.path)
    if kind == "ray":
        return compile_file(case.path, target="ray").source
    return compile_file(case.path, opt_level=int(kind[1:])).source


def kinds() -> tuple[str, ...]:
    return ("ir", *(f"O{level}" for level in GOLDEN_LEVELS))


def ray_kinds(case: Case) -> tuple[str, ...]:
    return ("ray",) if case.name in RAY_CASES else ()
