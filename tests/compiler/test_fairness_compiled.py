"""A compiled module's long sync run lets the event loop in, as the Engine's does.

The same contract as tests/core/test_fairness.py, on the run path (``run``), the traced
path (``on_error="collect"``, ``stream``) and ``python out.py`` under Ctrl-C, at every
optimisation level. The tests count the items a run got through before it stopped,
never wall time: a run that ignores the timeout runs all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests.compiler.projects import LEVELS, compiled, write_project

LONG = 20_000_000  # items: seconds of work even compiled, far more than any timeout allows

GRAPHS = """\
from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op

SEEN = [0]  # items the counting ops have seen
CLOSED: list[str] = []  # generators closed, in order


@op
def numbers(n: int) -> Iterator[dict[str, int]]:
    try:
        for i in range(n):
            yield {"value": i}
    finally:
        CLOSED.append("numbers")


@op
def count(value: int) -> dict[str, int]:
    SEEN[0] += 1
    return {"seen": value}


@op
def rows(n_rows: int) -> Iterator[dict[str, int]]:
    try:
        for r in range(n_rows):
            yield {"row": r}
    finally:
        CLOSED.append("rows")


@op
def cells(row: int, width: int) -> Iterator[dict[str, int]]:
    try:
        for c in range(width):
            yield {"value": row * width + c}
    finally:
        CLOSED.append("cells")


@op
def increment(counter: int) -> dict[str, int]:
    SEEN[0] += 1
    return {"counter": counter + 1}


@op
async def touch(value: int) -> dict[str, int]:  # an async op that never suspends
    SEEN[0] += 1
    return {"seen": value}


"""

STREAM = """
with GraphOp(name="stream") as graph:
    gen = numbers(n=PARENT["n"])
    c = count(value=gen["value"])
    START >> gen >> c >> END
"""

NESTED = """
with GraphOp(name="nested") as graph:
    r = rows(n_rows=PARENT["n_rows"])
    c = cells(row=r["row"], width=PARENT["width"])
    k = count(value=c["value"])
    START >> r >> c >> k >> END
"""

LOOP = f"""
with GraphOp.loop(until="count >= limit", count=0, limit={LONG},
                  max_iterations={LONG + 1}, name="loop") as graph:
    inc = increment(counter=PARENT["count"])
    inc["counter"] >> PARENT["count"]
    START >> inc >> END
"""

ASYNC_FANOUT = """
with GraphOp(name="fanout") as graph:
    gen = numbers(n=PARENT["n"])
    t = touch(value=gen["value"])
    START >> gen >> t >> END
"""

CASES = {  # graph, inputs, the generators a cancelled run must have closed
    "stream": (STREAM, {"n": LONG}, ["numbers"]),
    "nested": (NESTED, {"n_rows": 1, "width": LONG}, ["cells", "rows"]),
    "loop": (LOOP, {}, []),
    "async_fanout": (ASYNC_FANOUT, {"n": LONG}, ["numbers"]),
}


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Any]:
    """Each case compiled at each level, imported from its own directory."""
    out: dict[tuple[str, int], Any] = {}
    for case, (graph, _inputs, _closed) in CASES.items():
        directory = tmp_path_factory.mktemp(case)
        path = write_project(directory, {f"{case}_graph.py": GRAPHS + graph})
        for level in LEVELS:
            out[case, level] = compiled(path, level, directory)
    return out


def _fresh(module: types.ModuleType) -> None:
    """The counters of ``module``'s own copy of the ops, reset."""
    module.SEEN[0] = 0
    if hasattr(module, "CLOSED"):  # copied only where a generator uses it
        module.CLOSED.clear()


def _others() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


@pytest.mark.parametrize("on_error", ["raise", "collect"])
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", sorted(CASES))
async def test_wait_for_cancels_a_long_sync_run(modules: dict[tuple[str, int], Any], case: str,
                                                level: int, on_error: str) -> None:
    module = modules[case, level]
    _fresh(module)
    before = _others()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(module.run(CASES[case][1], on_error=on_error), 0.05)
    assert 0 < module.SEEN[0] < LONG // 10, module.SEEN[0]  # stopped long before the end
    assert sorted(getattr(module, "CLOSED", [])) == CASES[case][2]
    assert _others() == before  # nothing of the run is left running


@pytest.mark.parametrize("level", LEVELS)
async def test_other_coroutines_keep_running(modules: dict[tuple[str, int], Any],
                                             level: int) -> None:
    module = modules["stream", level]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        result = await module.run({"n": 300_000})
    finally:
        ticking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking
    assert result["seen"] == list(range(300_000))
    assert ticks >= 3, ticks  # without pauses the ticker would not run until the end


@pytest.mark.parametrize("level", LEVELS)
async def test_a_stream_consumer_under_wait_for_is_cancelled_promptly(
        modules: dict[tuple[str, int], Any], level: int) -> None:
    module = modules["stream", level]
    _fresh(module)
    frames = 0
    before = _others()

    async def consume() -> None:
        nonlocal frames
        async with contextlib.aclosing(module.stream({"n": LONG})) as stream:
            async for _frame in stream:
                frames += 1

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(consume(), 0.05)
    assert 0 < frames < LONG // 10 and module.SEEN[0] < LONG // 10, (frames, module.SEEN[0])
    assert module.CLOSED == ["numbers"]
    assert _others() == before


def test_ctrl_c_interrupts_a_compiled_module_promptly(modules: dict[tuple[str, int], Any],
                                                      tmp_path: Path) -> None:
    out = modules["stream", 2].__file__
    total = 50_000_000  # minutes of work: only an interrupt ends this run early
    proc = subprocess.Popen([sys.executable, out, "--inputs", f'{{"n": {total}}}'],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)  # well into the run (it would take minutes)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
