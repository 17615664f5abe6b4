"""SPEC §2: per-yield dispatch, joins, bounds, backpressure, collect, END lists."""

from __future__ import annotations

import asyncio
import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from operonx.core import END, PARENT, START, Engine, GraphOp, op, ordered
from tests.core.seed_ops import double, each_item

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@op
async def slow_double(value: int) -> dict[str, int]:
    # Later items finish first: completion order is the reverse of yield order.
    await asyncio.sleep(0.002 * (10 - value))
    return {"result": value * 2}


@op
def listing(values: list[int]) -> dict[str, list[int]]:
    return {"values": values}


async def test_each_yield_dispatches_downstream_before_the_generator_finishes() -> None:
    events: list[str] = []

    @op
    def announce(items: list[int]) -> Iterator[dict[str, int]]:
        for item in items:
            events.append(f"yield {item}")
            yield {"value": item}
        events.append("generator done")

    @op
    def consume(value: int) -> dict[str, int]:
        events.append(f"consume {value}")
        return {"seen": value}

    with GraphOp(name="g") as g:
        gen = announce(items=PARENT["numbers"])
        c = consume(value=gen["value"])
        START >> gen >> c >> END
    assert await Engine(g).run({"numbers": [1, 2]}) == {"seen": [1, 2]}
    assert events.index("consume 1") < events.index("yield 2")
    assert events[-1] == "generator done"


async def test_async_consumers_run_concurrently_and_end_keeps_yield_order() -> None:
    finished: list[int] = []

    @op
    async def record(value: int) -> dict[str, int]:
        await asyncio.sleep(0.002 * (10 - value))
        finished.append(value)
        return {"result": value * 2}

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        r = record(value=gen["value"])
        START >> gen >> r >> END
    result = await Engine(g).run({"numbers": list(range(1, 8))})
    assert result == {"result": [2, 4, 6, 8, 10, 12, 14]}
    assert finished == sorted(finished, reverse=True)  # they overlapped: the last finished first


async def test_collect_is_completion_order_and_ordered_is_yield_order() -> None:
    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        d = slow_double(value=gen["value"])
        by_completion = listing(values=d["result"].collect())
        by_yield = listing(values=d["result"].collect(ordered=True), name="by_yield")
        START >> gen >> d >> [by_completion, by_yield]
        by_completion >> END
    engine = Engine(g)
    assert await engine.run({"numbers": [1, 2, 3, 4]}) == {"values": [8, 6, 4, 2]}

    with GraphOp(name="g2") as g2:
        gen = each_item(items=PARENT["numbers"])
        d = slow_double(value=gen["value"])
        helper = listing(values=ordered(d["result"]))
        START >> gen >> d >> helper >> END
    assert await Engine(g2).run({"numbers": [1, 2, 3, 4]}) == {"values": [2, 4, 6, 8]}


@pytest.mark.parametrize("numbers", [[], [7]])
async def test_empty_and_single_streams_are_always_lists(numbers: list[int]) -> None:
    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        d = double(value=gen["value"])
        total = listing(values=d["result"].collect())
        START >> gen >> d >> total >> END
        d >> END
    result = await Engine(g).run({"numbers": numbers})
    assert result == {"result": [n * 2 for n in numbers], "values": [n * 2 for n in numbers]}


async def test_nested_generators_have_two_level_indexes_and_flatten_in_order() -> None:
    @op
    def repeat(value: int) -> Iterator[dict[str, int]]:
        for k in range(value):
            yield {"copy": value * 10 + k}

    with GraphOp(name="g") as g:
        outer = each_item(items=PARENT["numbers"])
        inner = repeat(value=outer["value"])
        d = double(value=inner["copy"])
        START >> outer >> inner >> d >> END
    engine = Engine(g)
    assert await engine.run({"numbers": [1, 2, 3]}) == {
        "result": [20, 40, 42, 60, 62, 64]}
    indexes = {f.index for f in [f async for f in engine.stream({"numbers": [1, 2]})]
               if f.op_name == "double"}
    assert indexes == {(0, 0), (1, 0), (1, 1)}


async def test_nested_collect_removes_one_level() -> None:
    @op
    def upto(value: int) -> Iterator[dict[str, int]]:
        for k in range(value):
            yield {"k": k}

    with GraphOp(name="g") as g:
        outer = each_item(items=PARENT["numbers"])
        inner = upto(value=outer["value"])
        per_outer = listing(values=inner["k"].collect(ordered=True))
        START >> outer >> inner >> per_outer >> END
    assert await Engine(g).run({"numbers": [2, 0, 3]}) == {
        "values": [[0, 1], [], [0, 1, 2]]}


async def test_diamond_is_joined_by_frame_index() -> None:
    @op
    async def plus_one(value: int) -> dict[str, int]:
        await asyncio.sleep(0.001 * (5 - value))
        return {"p": value + 1}

    @op
    def times_ten(value: int) -> dict[str, int]:
        return {"t": value * 10}

    @op
    def join(p: int, t: int, value: int) -> dict[str, tuple[int, int, int]]:
        return {"joined": (value, p, t)}

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        a = plus_one(value=gen["value"])
        b = times_ten(value=gen["value"])
        c = join(p=a["p"], t=b["t"], value=gen["value"])
        START >> gen >> [a, b] >> c >> END
    result = await Engine(g).run({"numbers": [1, 2, 3, 4]})
    assert result == {"joined": [(v, v + 1, v * 10) for v in [1, 2, 3, 4]]}


async def test_values_from_outside_the_stream_are_the_same_for_every_frame() -> None:
    @op
    def prepare(base: int) -> dict[str, int]:
        return {"offset": base * 100}

    @op
    def shift(value: int, offset: int, scale: int) -> dict[str, int]:
        return {"shifted": value * scale + offset}

    with GraphOp(name="g") as g:
        p = prepare(base=PARENT["base"])
        gen = each_item(items=PARENT["numbers"])
        s = shift(value=gen["value"], offset=p["offset"], scale=3)
        START >> [p, gen]
        [p, gen] >> s >> END
    assert await Engine(g).run({"numbers": [1, 2], "base": 1}) == {"shifted": [103, 106]}


@pytest.mark.parametrize(("graph_limit", "op_limit", "expected"), [(3, None, 3), (64, 2, 2)])
async def test_per_op_bound_is_reached_and_never_exceeded(
        graph_limit: int, op_limit: int | None, expected: int) -> None:
    in_flight = peak = 0

    async def track(value: int) -> dict[str, int]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return {"result": value}

    tracked = op(max_concurrent=op_limit)(track) if op_limit else op(track)
    with GraphOp(name="g", max_stream_concurrent=graph_limit) as g:
        gen = each_item(items=PARENT["numbers"])
        t = tracked(value=gen["value"])
        START >> gen >> t >> END
    result = await Engine(g).run({"numbers": list(range(40))})
    assert result == {"result": list(range(40))}
    assert peak == expected


_STREAM_SCRIPT = """
import resource, sys
from operonx.core import END, PARENT, START, Engine, GraphOp, op

@op
def numbers(n: int):
    for i in range(n):
        yield {"i": i}

@op
async def step_async(i: int):
    return {"j": i + 1}

@op
def step_sync(i: int):
    return {"j": i + 1}

count = 0

@op
def sink(j: int) -> None:
    global count
    count += 1

first = step_async if sys.argv[2] == "async" else step_sync
with GraphOp(name="g", max_stream_concurrent=16) as g:
    gen = numbers(n=PARENT["n"])
    a = first(i=gen["i"])
    b = sink(j=a["j"])
    START >> gen >> a >> b
n = int(sys.argv[1])
assert Engine(g).run_sync({"n": n}) == {} and count == n, count
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kib(script: pathlib.Path, n: int, kind: str) -> int:
    done = subprocess.run([sys.executable, str(script), str(n), kind],
                          capture_output=True, text=True, check=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": ROOT})
    return int(done.stdout.strip())


@pytest.mark.parametrize(("kind", "large"), [("sync", 1_000_000), ("async", 200_000)])
def test_backpressure_keeps_memory_flat_whatever_the_stream_length(
        kind: str, large: int, tmp_path: pathlib.Path) -> None:
    script = tmp_path / "stream_graph.py"
    script.write_text(_STREAM_SCRIPT)
    small_rss = _peak_rss_kib(script, 5_000, kind)
    large_rss = _peak_rss_kib(script, large, kind)
    # Bounded by the concurrency, not by N: a leak of even 20 bytes per frame would show.
    assert large_rss - small_rss < 4 * 1024, (small_rss, large_rss)


@op(bound="cpu")
def in_worker(value: int) -> dict[str, int]:
    return {"c": value, "pid": os.getpid()}


async def test_sync_ops_run_inline_async_ops_as_tasks_cpu_ops_in_processes() -> None:
    threads: dict[str, int] = {}
    main_thread = threading.get_ident()

    @op
    def inline(value: int) -> dict[str, int]:
        threads["inline"] = threading.get_ident()
        return {"a": value}

    @op
    async def as_task(value: int) -> dict[str, int]:
        threads["task"] = threading.get_ident()
        assert asyncio.current_task() is not None
        return {"b": value}

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        x = inline(value=gen["value"])
        y = as_task(value=gen["value"])
        z = in_worker(value=gen["value"])
        START >> gen >> [x, y, z] >> END
    result = await Engine(g).run({"numbers": [1, 2]})
    assert {k: result[k] for k in "abc"} == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}
    assert threads["inline"] == main_thread == threads["task"]
    assert os.getpid() not in result["pid"]  # SPEC §10; more in test_cpu_processes.py


async def test_async_generator_streams_into_sync_consumer() -> None:
    @op
    async def ticks(n: int) -> AsyncIterator[dict[str, int]]:
        for i in range(n):
            await asyncio.sleep(0)
            yield {"value": i}

    with GraphOp(name="g") as g:
        t = ticks(n=PARENT["n"])
        d = double(value=t["value"])
        START >> t >> d >> END
    assert await Engine(g).run({"n": 4}) == {"result": [0, 2, 4, 6]}


async def test_generator_output_wired_to_end_is_a_list() -> None:
    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        START >> gen >> END
    assert await Engine(g).run({"numbers": [5, 6]}) == {"value": [5, 6]}


async def test_control_edge_from_a_stream_waits_for_the_whole_stream() -> None:
    seen: list[Any] = []

    @op
    def record(value: int) -> None:
        seen.append(value)

    @op
    def after() -> dict[str, int]:
        seen.append("after")
        return {"n": len(seen)}

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        r = record(value=gen["value"])
        a = after()
        START >> gen >> r >> a >> END
    assert await Engine(g).run({"numbers": [1, 2, 3]}) == {"n": 4}
    assert seen == [1, 2, 3, "after"]
