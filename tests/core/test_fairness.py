"""A run of sync ops only still lets the event loop in: timeouts, cancellation, Ctrl-C.

Without it a long sync stream never awaits, so ``asyncio.wait_for`` and ``task.cancel()``
wait for the whole run and every other coroutine stalls. These tests assert on how many
items ran before the run stopped, never on wall time: a run that ignores the timeout
runs all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from operonx.core import END, PARENT, START, Engine, GraphOp, op

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LONG = 2_000_000  # items: seconds of Engine work, far more than any timeout below allows


class Probe:
    """What a run did: items its sink saw, whether its generators were closed."""

    def __init__(self) -> None:
        self.seen = 0
        self.closed: list[str] = []


def _counting_graph(probe: Probe) -> Any:
    """A long sync stream: ``numbers`` → ``count`` (no awaits anywhere)."""

    @op
    def numbers(n: int) -> Iterator[dict[str, int]]:
        try:
            for i in range(n):
                yield {"value": i}
        finally:
            probe.closed.append("numbers")

    @op
    def count(value: int) -> dict[str, int]:
        probe.seen += 1
        return {"seen": value}

    with GraphOp(name="long") as graph:
        gen = numbers(n=PARENT["n"])
        c = count(value=gen["value"])
        START >> gen >> c >> END
    return graph


def _nested_graph(probe: Probe) -> Any:
    """One outer frame holding the whole long stream: the inner loop must pause too."""

    @op
    def rows(n_rows: int) -> Iterator[dict[str, int]]:
        try:
            for r in range(n_rows):
                yield {"row": r}
        finally:
            probe.closed.append("rows")

    @op
    def cells(row: int, width: int) -> Iterator[dict[str, int]]:
        try:
            for c in range(width):
                yield {"cell": row * width + c}
        finally:
            probe.closed.append("cells")

    @op
    def count(cell: int) -> dict[str, int]:
        probe.seen += 1
        return {"seen": cell}

    with GraphOp(name="nested") as graph:
        r = rows(n_rows=PARENT["n_rows"])
        c = cells(row=r["row"], width=PARENT["width"])
        k = count(cell=c["cell"])
        START >> r >> c >> k >> END
    return graph


def _loop_graph(probe: Probe) -> Any:
    @op
    def increment(counter: int) -> dict[str, int]:
        probe.seen += 1
        return {"counter": counter + 1}

    with GraphOp.loop(until="count >= limit", count=0, limit=LONG,
                      max_iterations=LONG + 1) as loop:
        inc = increment(counter=PARENT["count"])
        inc["counter"] >> PARENT["count"]
        START >> inc >> END
    return loop


def _others() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


@pytest.mark.parametrize(("make", "inputs", "generators"), [
    (_counting_graph, {"n": LONG}, ["numbers"]),
    (_nested_graph, {"n_rows": 1, "width": LONG}, ["cells", "rows"]),
    (_loop_graph, {}, []),
], ids=["stream", "nested", "loop"])
async def test_wait_for_cancels_a_long_sync_run(make: Any, inputs: dict[str, Any],
                                                generators: list[str]) -> None:
    probe = Probe()
    engine = Engine(make(probe))
    before = _others()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(engine.run(inputs), 0.05)
    assert 0 < probe.seen < LONG // 10, probe.seen  # stopped long before the end
    assert sorted(probe.closed) == generators
    assert _others() == before  # nothing of the run is left running


async def test_other_coroutines_keep_running_during_a_long_sync_run() -> None:
    probe = Probe()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        result = await Engine(_counting_graph(probe)).run({"n": 200_000})
    finally:
        ticking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking
    assert len(result["seen"]) == 200_000
    assert ticks >= 3, ticks  # without pauses the ticker would not run at all until the end


async def test_task_cancel_reaches_a_long_sync_run() -> None:
    probe = Probe()
    task = asyncio.create_task(Engine(_counting_graph(probe)).run({"n": LONG}))
    while probe.seen == 0:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert probe.seen < LONG // 10
    assert probe.closed == ["numbers"]


async def test_a_stream_consumer_under_wait_for_is_cancelled_promptly() -> None:
    probe = Probe()
    engine = Engine(_counting_graph(probe))
    frames = 0
    before = _others()

    async def consume() -> None:
        nonlocal frames
        async with contextlib.aclosing(engine.stream({"n": LONG})) as stream:
            async for _frame in stream:
                frames += 1

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(consume(), 0.05)
    assert 0 < frames < LONG // 10 and probe.seen < LONG // 10, (frames, probe.seen)
    assert probe.closed == ["numbers"]
    assert _others() == before


async def test_a_long_loop_in_a_stream_consumer_waits_for_the_consumer() -> None:
    # Loops pause for a slow stream consumer like generators do (bounded frame backlog).
    probe = Probe()
    seen_when_slow = []
    async with contextlib.aclosing(Engine(_loop_graph(probe)).stream({})) as stream:
        async for _frame in stream:
            await asyncio.sleep(0.01)
            seen_when_slow.append(probe.seen)
            if len(seen_when_slow) == 3:
                break
    assert seen_when_slow[-1] < 2_000, seen_when_slow


_INTERRUPTIBLE = """
from operonx.core import END, PARENT, START, GraphOp, op

@op
def numbers(n: int):
    for i in range(n):
        if i == 1000:
            print("started", flush=True)  # the parent sends SIGINT once it reads this
        yield {"value": i}

@op
def record(value: int) -> dict[str, int]:
    if value % 10_000 == 0:
        with open(__file__ + ".progress", "w") as fh:
            fh.write(str(value))
    return {"value": value}

with GraphOp(name="long") as graph:
    gen = numbers(n=PARENT["n"])
    r = record(value=gen["value"])
    START >> gen >> r
"""


def test_ctrl_c_interrupts_operonx_run_promptly(tmp_path: pathlib.Path) -> None:
    graph = tmp_path / "long_graph.py"
    graph.write_text(_INTERRUPTIBLE)
    total = 50_000_000  # minutes of work: only an interrupt ends this run early
    proc = subprocess.Popen(
        [sys.executable, "-m", "operonx", "run", str(graph), "--inputs", f'{{"n": {total}}}'],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "operonx: interrupted" in err
    progress = pathlib.Path(str(graph) + ".progress")
    done = int(progress.read_text()) if progress.exists() else 0
    assert done < total // 10, done  # it stopped, it did not finish the stream
