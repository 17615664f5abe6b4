"""The async fan-out's worker pool (operonx.engine.fanout): same behaviour, no task per frame.

A generator whose frames await runs them on at most ``window`` worker coroutines. The
common shape (``gen -> one async op``) takes a direct path; frames with tracers, async
generators, several ops or ``.collect()`` arguments take the general one. Both must keep
the semantics of SPEC §2 and §6: bounds, backpressure, frames, errors, cancellation.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from operonx.core import END, PARENT, START, Engine, GraphOp, OpError, op
from tests.core.seed_ops import each_item


class FrameList:
    """A tracer keeping every frame: with one, every frame takes the general path."""

    def __init__(self) -> None:
        self.frames: list[Any] = []

    def on_run_start(self, run: Any) -> None:
        pass

    def on_frame(self, frame: Any) -> None:
        self.frames.append(frame)

    def on_run_end(self, run: Any, error: BaseException | None) -> None:
        pass


@op
async def shift(value: int, by: int) -> dict[str, int]:
    await asyncio.sleep(0.001 * (value % 3))  # completion order differs from yield order
    return {"shifted": value + by}


@op
def offset(base: int) -> dict[str, int]:
    return {"by": base * 10}


@op
def listing(values: list[int]) -> dict[str, list[int]]:
    return {"values": values}


def _shift_graph() -> Any:
    """gen -> shift(value per frame, by from an outer node); collected both ways and at END."""
    with GraphOp(name="g") as g:
        o = offset(base=PARENT["base"])
        gen = each_item(items=PARENT["numbers"])
        s = shift(value=gen["value"], by=o["by"])
        done = listing(values=s["shifted"].collect())
        START >> o >> gen >> s >> done >> END
        s >> END
    return g


@pytest.mark.parametrize("traced", [False, True], ids=["direct", "general"])
async def test_both_paths_give_the_same_results(traced: bool) -> None:
    tracer = FrameList()
    engine = Engine(_shift_graph(), tracers=[tracer] if traced else [])
    result = await engine.run({"numbers": list(range(30)), "base": 1})
    assert result["shifted"] == [v + 10 for v in range(30)]  # END: yield order
    assert sorted(result["values"]) == result["shifted"]
    assert result["values"] != result["shifted"]  # .collect(): completion order
    if traced:
        names = sorted({f.op_name for f in tracer.frames})
        assert names == ["END", "each_item", "listing", "offset", "shift"]
        assert sorted(f.index for f in tracer.frames if f.op_name == "shift") == [
            (i,) for i in range(30)]


@pytest.mark.parametrize("traced", [False, True], ids=["direct", "general"])
async def test_several_outputs_and_constant_arguments_reach_every_frame(traced: bool) -> None:
    @op
    async def split(value: int, scale: int, label: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"scaled": value * scale, "tag": f"{label}{value}"}

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        s = split(value=gen["value"], scale=PARENT["scale"], label="n")
        START >> gen >> s >> END
    engine = Engine(g, tracers=[FrameList()] if traced else [])
    result = await engine.run({"numbers": [3, 1, 2], "scale": 10})
    assert result == {"scaled": [30, 10, 20], "tag": ["n3", "n1", "n2"]}


def _keywords_only(fn: Any) -> Any:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        assert not args, "called positionally"
        return await fn(**kwargs)
    return wrapper


async def test_ops_are_called_as_their_own_signature_binds() -> None:
    # A one-argument op may be called positionally, a wrapper's (*args, **kwargs) never.
    @op
    async def plain(value: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"plain": value}

    @op
    @_keywords_only
    async def wrapped(value: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"wrapped": value}

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        p = plain(value=gen["value"])
        w = wrapped(value=gen["value"])
        START >> gen >> [p, w] >> END
    assert await Engine(g).run({"numbers": [1, 2]}) == {"plain": [1, 2], "wrapped": [1, 2]}

    with GraphOp(name="g2") as g2:  # a frame of one op each: the direct path
        gen = each_item(items=PARENT["numbers"])
        w = wrapped(value=gen["value"])
        START >> gen >> w >> END
    assert await Engine(g2).run({"numbers": [1, 2]}) == {"wrapped": [1, 2]}


async def test_a_frame_is_no_task_of_its_own() -> None:
    created = 0
    loop = asyncio.get_running_loop()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop)

    loop.set_task_factory(counting)  # type: ignore[arg-type]
    try:
        result = await Engine(_shift_graph()).run({"numbers": list(range(1000)), "base": 0})
    finally:
        loop.set_task_factory(None)
    assert result["shifted"] == list(range(1000))
    assert created <= 64, created  # the workers, not one task per frame


@pytest.mark.parametrize("traced", [False, True], ids=["direct", "general"])
async def test_the_generator_runs_at_most_window_frames_ahead(traced: bool) -> None:
    yielded = finished = ahead = 0

    @op
    def numbers(n: int) -> Iterator[dict[str, int]]:
        nonlocal yielded, ahead
        for i in range(n):
            yielded += 1
            ahead = max(ahead, yielded - finished)
            yield {"value": i}

    @op
    async def slow(value: int) -> dict[str, int]:
        nonlocal finished
        await asyncio.sleep(0.001)
        finished += 1
        return {"v": value}

    with GraphOp(name="g", max_stream_concurrent=8) as g:
        gen = numbers(n=PARENT["n"])
        s = slow(value=gen["value"])
        START >> gen >> s >> END
    result = await Engine(g, tracers=[FrameList()] if traced else []).run({"n": 100})
    assert result == {"v": list(range(100))}
    assert ahead <= 8 + 1, ahead  # the window, plus the yield a free worker is pulling


async def test_the_op_bound_holds_across_instances_of_a_nested_stream() -> None:
    in_flight = peak = 0

    @op
    def rows(n: int) -> Iterator[dict[str, int]]:
        for r in range(n):
            yield {"row": r}

    @op
    def cells(row: int) -> Iterator[dict[str, int]]:
        for c in range(10):
            yield {"cell": row * 10 + c}

    @op(max_concurrent=3)
    async def track(cell: int) -> dict[str, int]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return {"cell": cell}

    with GraphOp(name="g", max_stream_concurrent=8) as g:
        r = rows(n=PARENT["n"])
        c = cells(row=r["row"])
        t = track(cell=c["cell"])
        START >> r >> c >> t >> END
    result = await Engine(g).run({"n": 6})
    assert result == {"cell": list(range(60))}
    assert peak == 3  # several `cells` streams at once, one bound for `track`


async def test_async_generator_frames_still_run_concurrently() -> None:
    in_flight = peak = 0

    @op
    async def ticks(n: int) -> AsyncIterator[dict[str, int]]:
        for i in range(n):
            await asyncio.sleep(0)
            yield {"value": i}

    @op
    async def wait(value: int) -> dict[str, int]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.002)
        in_flight -= 1
        return {"v": value}

    with GraphOp(name="g", max_stream_concurrent=5) as g:
        t = ticks(n=PARENT["n"])
        w = wait(value=t["value"])
        START >> t >> w >> END
    assert await Engine(g).run({"n": 40}) == {"v": list(range(40))}
    assert peak == 5


async def test_each_execution_gets_its_own_collected_list() -> None:
    # A .collect() argument is a fresh list per execution (not one shared by the stream).
    @op
    def numbers(n: int) -> Iterator[dict[str, int]]:
        for i in range(n):
            yield {"value": i}

    @op
    async def take(values: list[int], value: int) -> dict[str, int]:
        values.append(-1)  # mutates its own list only
        await asyncio.sleep(0)
        return {"size": len(values)}

    with GraphOp(name="g") as g:
        first = numbers(n=PARENT["n"])
        second = each_item(items=PARENT["numbers"])
        t = take(values=first["value"].collect(), value=second["value"])
        START >> first >> second >> t >> END
    result = await Engine(g).run({"n": 3, "numbers": [7, 8, 9, 10]})
    assert result == {"size": [4, 4, 4, 4]}


def _fragile_graph() -> Any:
    @op(outputs=["result"])
    async def fragile(value: int) -> dict[str, int]:
        await asyncio.sleep(0)
        if value == 3:
            raise ValueError("bad value 3")
        if value == 5:
            return "not a dict"  # type: ignore[return-value]
        return {"result": value}

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        f = fragile(value=gen["value"])
        START >> gen >> f >> END
    return g


@pytest.mark.parametrize("traced", [False, True], ids=["direct", "general"])
def test_failures_are_op_errors_with_the_frame_index(traced: bool) -> None:
    tracers = [FrameList()] if traced else []
    with pytest.raises(OpError) as info:
        Engine(_fragile_graph(), tracers=tracers).run_sync({"numbers": [1, 2, 3, 4]})
    assert info.value.op_name == "fragile" and info.value.index == (2,)
    assert isinstance(info.value.__cause__, ValueError)
    collected = Engine(_fragile_graph(), on_error="collect", tracers=tracers).run_sync(
        {"numbers": [1, 2, 3, 4, 5, 6]})
    assert collected["result"] == [1, 2, 4, 6]
    assert [(e["op"], e["index"], e["type"]) for e in collected["$errors"]] == [
        ("fragile", [2], "ValueError"), ("fragile", [4], "TypeError")]


@pytest.mark.parametrize("traced", [False, True], ids=["direct", "general"])
def test_a_malformed_yield_and_a_failing_generator(traced: bool) -> None:
    @op
    def shaky(n: int) -> Iterator[dict[str, int]]:
        for i in range(n):
            if i == 1:
                yield {"wrong": i}
                continue
            if i == 3:
                raise RuntimeError("generator broke")
            yield {"value": i}

    @op
    async def bump(value: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"bumped": value + 1}

    with GraphOp(name="g") as g:
        gen = shaky(n=PARENT["n"])
        b = bump(value=gen["value"])
        START >> gen >> b >> END
    tracers = [FrameList()] if traced else []
    with pytest.raises(OpError) as info:
        Engine(g, tracers=tracers).run_sync({"n": 10})
    assert (info.value.op_name, info.value.index) == ("shaky", (1,))
    assert isinstance(info.value.__cause__, KeyError)
    result = Engine(g, on_error="collect", tracers=tracers).run_sync({"n": 10})
    assert result["bumped"] == [1, 3]
    assert [(e["op"], e["index"], e["type"]) for e in result["$errors"]] == [
        ("shaky", [1], "KeyError"), ("shaky", [3], "RuntimeError")]


@pytest.mark.parametrize("traced", [False, True], ids=["direct", "general"])
async def test_cancelling_the_run_stops_every_worker_and_closes_the_generator(
        traced: bool) -> None:
    closed: list[str] = []
    started = 0

    @op
    def numbers(n: int) -> Iterator[dict[str, int]]:
        try:
            for i in range(n):
                yield {"value": i}
        finally:
            closed.append("numbers")

    @op
    async def forever(value: int) -> dict[str, int]:
        nonlocal started
        started += 1
        await asyncio.sleep(3600)
        return {"v": value}

    with GraphOp(name="g", max_stream_concurrent=16) as g:
        gen = numbers(n=PARENT["n"])
        f = forever(value=gen["value"])
        START >> gen >> f >> END
    before = set(asyncio.all_tasks())
    engine = Engine(g, tracers=[FrameList()] if traced else [])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(engine.run({"n": 1000}), 0.05)
    assert started == 16  # the window filled, and the generator was not run further
    assert closed == ["numbers"]
    assert set(asyncio.all_tasks()) == before


async def test_an_async_op_that_never_suspends_runs_on_one_worker_and_stays_fair() -> None:
    ticks = 0
    seen = 0

    @op
    async def instant(value: int) -> dict[str, int]:
        nonlocal seen
        seen += 1
        return {"v": value}

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        i = instant(value=gen["value"])
        START >> gen >> i >> END
    created = 0
    loop = asyncio.get_running_loop()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop)

    ticking = asyncio.create_task(ticker())
    loop.set_task_factory(counting)  # type: ignore[arg-type]
    try:
        result = await Engine(g).run({"numbers": list(range(200_000))})
    finally:
        loop.set_task_factory(None)
        ticking.cancel()
    assert result == {"v": list(range(200_000))}
    assert created <= 1, created  # the driver, plus one helper at most: never a full pool
    assert ticks >= 3, ticks  # and the event loop still got its turns
