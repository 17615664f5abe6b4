"""Frame indexes on the run path's batched generator loops (``_Batch`` in codegen/scopes.py).

A sync generator's loop takes frames in batches between pauses and computes a frame's
index only where an error needs it, from the batch's first index and the ticks it has
left. These hold it to the Engine where that arithmetic can slip: failures (of the
generator, or of an op in the frame) on the first and last frame of a batch and just
after, a generator that ends exactly on a batch's last tick, batches of one tick, and
nested generators whose outer index is read inside the inner loop.
"""

from __future__ import annotations

import asyncio
import types
from pathlib import Path
from typing import Any

import pytest

from tests.compiler.helpers import outcome
from tests.compiler.projects import LEVELS, compiled, engine_graph, write_project

GRAPH = """\
from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op


@op
def items(n: int, fail_at: int) -> Iterator[dict[str, int]]:
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"generator fails at {i}")
        yield {"value": i}


@op
def check(value: int, fail_at: int) -> dict[str, int]:
    if value == fail_at:
        raise KeyError(value)
    return {"value": value}


@op
def rows(n: int) -> Iterator[dict[str, int]]:
    for r in range(n):
        yield {"row": r}


@op
def cells(row: int, width: int, fail_at: int) -> Iterator[dict[str, int]]:
    for c in range(width):
        if row * width + c == fail_at:
            raise ValueError("cell")
        yield {"value": row * width + c}

"""
FLAT = """
with GraphOp(name="flat") as flat:
    gen = items(n=PARENT["n"], fail_at=PARENT["gen_fails"])
    ok = check(value=gen["value"], fail_at=PARENT["op_fails"])
    START >> gen >> ok >> END
"""
NESTED = """
with GraphOp(name="nested") as nested:
    r = rows(n=PARENT["n"])
    c = cells(row=r["row"], width=PARENT["width"], fail_at=PARENT["cell_fails"])
    k = check(value=c["value"], fail_at=PARENT["op_fails"])
    START >> r >> c >> k >> END
"""

BATCH = 1024  # the pace's largest batch: a run's first batch
EDGES = (0, 1, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH - 1, 2 * BATCH)
NEVER = -1


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The flat graph's file and the nested graph's."""
    directory = tmp_path_factory.mktemp("batch_index")
    return (write_project(directory, {"flat_graph.py": GRAPH + FLAT}),
            write_project(directory, {"nested_graph.py": GRAPH + NESTED}))


def _run_both(graph: Any, module: types.ModuleType, inputs: dict[str, Any],
              ticks: int | None) -> None:
    from operonx.core import Engine

    want = outcome(lambda: Engine(graph).run_sync(inputs))
    if ticks is not None and hasattr(module, "_PACE"):
        module._PACE.ticks = ticks  # the first batch: this many frames
    got = outcome(lambda: module.run_sync(inputs))
    assert got == want


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("ticks", [None, 1, 2, 3])
def test_failures_at_batch_edges_carry_the_engines_index(
        project: tuple[str, str], level: int, ticks: int | None, tmp_path: Path) -> None:
    path, _nested = project
    module = compiled(path, level, tmp_path)
    graph = engine_graph(path)
    for at in EDGES:
        _run_both(graph, module, {"n": 3 * BATCH, "gen_fails": at, "op_fails": NEVER}, ticks)
        _run_both(graph, module, {"n": 3 * BATCH, "gen_fails": NEVER, "op_fails": at}, ticks)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("ticks", [None, 1, 2])
def test_streams_ending_on_a_batch_edge_lose_and_repeat_nothing(
        project: tuple[str, str], level: int, ticks: int | None, tmp_path: Path) -> None:
    path, _nested = project
    module = compiled(path, level, tmp_path)
    graph = engine_graph(path)
    for n in (0, 1, 2, 3, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH):
        inputs = {"n": n, "gen_fails": NEVER, "op_fails": NEVER}
        _run_both(graph, module, inputs, ticks)
        if ticks is not None and hasattr(module, "_PACE"):
            module._PACE.ticks = ticks
        assert module.run_sync(inputs) == {"value": list(range(n))}


@pytest.mark.parametrize("level", LEVELS)
def test_nested_generators_read_the_outer_index_inside_the_inner_loop(
        project: tuple[str, str], level: int, tmp_path: Path) -> None:
    _flat, nested = project
    module = compiled(nested, level, tmp_path)
    graph = engine_graph(nested)
    width = 700  # rows straddle the batch edges
    for at in (0, width - 1, width, BATCH - 1, BATCH, 2 * width + 5):
        _run_both(graph, module, {"n": 4, "width": width, "cell_fails": at,
                                  "op_fails": NEVER}, None)
        _run_both(graph, module, {"n": 4, "width": width, "cell_fails": NEVER,
                                  "op_fails": at}, 1)


class _OneTickPace:
    """A pace that gives every batch one frame (what the module's pace gives a loop back
    from another's pause), and lets the event loop in at each check."""

    ticks = 1

    async def checkpoint(self) -> int:
        await asyncio.sleep(0)
        return 1


@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_one_frame_batches_still_see_the_stream_end(
        project: tuple[str, str], n: int, tmp_path: Path) -> None:
    """A batch that ends with no tick left cannot tell a full batch from a stream that
    ended on its last tick; the loop must not ask that of one-tick batches forever."""
    path, _nested = project
    module = compiled(path, 2, tmp_path)
    module._PACE = _OneTickPace()
    inputs = {"n": n, "gen_fails": NEVER, "op_fails": NEVER}

    async def bounded() -> Any:
        return await asyncio.wait_for(module.run(inputs), timeout=10)

    assert asyncio.run(bounded()) == {"value": list(range(n))}
