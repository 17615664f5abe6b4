"""SPEC §9: @op(timeout=, retry=, cache=) on the Engine, their frames and tracers."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import pathlib
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from operonx.core import (
    END,
    PARENT,
    START,
    Engine,
    Frame,
    GraphError,
    GraphOp,
    OpError,
    Retry,
    op,
)
from operonx.tracing import JsonlTracer
from tests.core.seed_ops import each_item
from tests.tracing.helpers import ListTracer


def _line() -> int:
    return sys._getframe(1).f_lineno


def single(op_node: Any) -> GraphOp:
    """``START >> op(value=PARENT["value"]) >> END``."""
    with GraphOp(name="g") as g:
        node = op_node(value=PARENT["value"])
        START >> node >> END
    return g


def per_item(op_node: Any) -> GraphOp:
    """``op`` once per item of ``PARENT["numbers"]``."""
    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        node = op_node(value=gen["value"])
        START >> gen >> node >> END
    return g


async def frames_of(graph: GraphOp, inputs: dict[str, Any], **kw: Any) -> list[Frame]:
    return [f async for f in Engine(graph, **kw).stream(inputs)]


class Flaky:
    """Fails the first ``failures`` calls (per value) with ``error``; records call times."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls: dict[int, list[float]] = {}

    def __call__(self, value: int) -> dict[str, int]:
        times = self.calls.setdefault(value, [])
        times.append(time.monotonic())
        if len(times) <= self.failures:
            raise self.error(f"call {len(times)} of {value} failed")
        return {"result": value * 10}


# ------------------------------------------------------------------------- timeout


async def test_timeout_cancels_the_execution_and_fails_with_timeout_error() -> None:
    cancelled: list[int] = []

    @op(timeout=0.05)
    async def hang(value: int) -> dict[str, int]:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(value)
            raise
        return {"result": value}

    started = time.monotonic()
    with pytest.raises(OpError) as info:
        await Engine(single(hang)).run({"value": 7})
    assert time.monotonic() - started < 5  # not the 10 s the op would have taken
    err = info.value
    assert err.op_name == "hang" and isinstance(err.__cause__, TimeoutError)
    assert str(err) == "op 'hang' raised TimeoutError: no result within 0.05 s"
    assert cancelled == [7]


def test_timeout_on_a_cpu_bound_op_kills_its_worker(tmp_path: pathlib.Path) -> None:
    from tests.core.cpu_ops import crunch_too_long

    pid_file = tmp_path / "pid"
    with GraphOp(name="g") as graph:
        node = crunch_too_long(value=PARENT["value"], pid_file=str(pid_file))
        START >> node >> END
    with pytest.raises(OpError) as info:
        Engine(graph).run_sync({"value": 1})
    assert isinstance(info.value.__cause__, TimeoutError)
    assert info.value.op_name == "crunch_too_long"
    pid = int(pid_file.read_text())
    for _ in range(200):  # the worker is killed at the deadline, not left to finish its minute
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"worker {pid} still runs after its op timed out")


async def test_a_timeout_the_op_raises_itself_is_passed_through() -> None:
    @op(timeout=5)
    async def own(value: int) -> dict[str, int]:
        raise TimeoutError("upstream said so")

    with pytest.raises(OpError, match="upstream said so"):
        await Engine(single(own)).run({"value": 1})


async def test_an_async_generator_timeout_applies_to_each_step() -> None:
    @op(timeout=0.2)
    async def ticks(n: int) -> AsyncIterator[dict[str, int]]:
        for i in range(n):
            # Each step is well within its 0.2 s until the third; the whole stream is not.
            await asyncio.sleep(0.12 if i < 2 else 10)
            yield {"tick": i}

    with GraphOp(name="g") as g:
        t = ticks(n=PARENT["n"])
        START >> t >> END
    with pytest.raises(OpError) as info:
        await Engine(g).run({"n": 5})
    assert info.value.index == (2,) and isinstance(info.value.__cause__, TimeoutError)
    result = await Engine(g, on_error="collect").run({"n": 5})
    assert result["tick"] == [0, 1]  # the frames yielded before the timeout count
    assert [(e["index"], e["type"]) for e in result["$errors"]] == [([2], "TimeoutError")]


def test_timeout_on_a_plain_sync_op_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="plain def running on the event loop") as info:
        line = _line() + 2

        @op(timeout=1.0)
        def blocking(value: int) -> dict[str, int]:
            return {"result": value}
    assert info.value.file == __file__ and info.value.line in (line, line + 1)
    assert "bound='cpu'" in str(info.value)


# --------------------------------------------------------------------------- retry


def test_retry_runs_again_until_it_succeeds_and_emits_one_frame() -> None:
    flaky = Flaky(failures=2)
    fetch = op(name="fetch", outputs=["result"], retry=3)(flaky)  # type: ignore[arg-type]
    tracer = ListTracer()
    assert Engine(single(fetch), tracers=[tracer]).run_sync({"value": 4}) == {"result": 40}
    assert len(flaky.calls[4]) == 3
    fetch_frames = [f for f in tracer.frames if f.op_name == "fetch"]
    assert len(fetch_frames) == 1 and fetch_frames[0].attempts == 3
    assert not fetch_frames[0].cached


async def test_retry_backs_off_by_delay_times_backoff_capped_at_max_delay() -> None:
    policy = Retry(attempts=5, delay=0.01, backoff=2.0, max_delay=0.03, on=ConnectionError)
    assert [policy.delay_before(k) for k in (2, 3, 4, 5)] == [0.01, 0.02, 0.03, 0.03]
    flaky = Flaky(failures=4)

    @op(retry=policy, outputs=["result"])
    async def fetch(value: int) -> dict[str, int]:
        return flaky(value)

    assert await Engine(single(fetch)).run({"value": 1}) == {"result": 10}
    times = flaky.calls[1]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, wanted in zip(gaps, [0.01, 0.02, 0.03, 0.03], strict=True):
        assert gap >= wanted - 0.002  # waits at least the backoff (timer granularity aside)


def test_only_exceptions_in_on_are_retried() -> None:
    flaky = Flaky(failures=1, error=ValueError)
    policy = Retry(3, on=(ConnectionError, TimeoutError))
    fetch = op(name="fetch", outputs=["result"], retry=policy)(flaky)  # type: ignore[arg-type]
    with pytest.raises(OpError) as info:
        Engine(single(fetch)).run_sync({"value": 1})
    assert len(flaky.calls[1]) == 1
    assert str(info.value) == "op 'fetch' raised ValueError: call 1 of 1 failed (after 1 attempt)"


def test_the_last_failure_is_the_op_error_and_says_how_many_attempts() -> None:
    flaky = Flaky(failures=10)
    fetch = op(name="fetch", outputs=["result"], retry=3)(flaky)  # type: ignore[arg-type]
    with pytest.raises(OpError) as info:
        Engine(per_item(fetch)).run_sync({"numbers": [1]})
    err = info.value
    assert str(err) == ("op 'fetch' at index (0,) raised ConnectionError: call 3 of 1 failed "
                        "(after 3 attempts)")
    assert isinstance(err.__cause__, ConnectionError) and str(err.__cause__) == "call 3 of 1 failed"


def test_in_collect_mode_an_exhausted_retry_is_one_errors_entry() -> None:
    flaky = Flaky(failures=3)
    fetch = op(name="fetch", outputs=["result"], retry=2)(flaky)  # type: ignore[arg-type]
    result = Engine(per_item(fetch), on_error="collect").run_sync({"numbers": [1, 2]})
    # Per value: two calls fail (exhausted); the next run would succeed on the third.
    assert result == {"result": [], "$errors": [
        {"op": "fetch", "index": [0], "type": "ConnectionError",
         "message": "call 2 of 1 failed (after 2 attempts)"},
        {"op": "fetch", "index": [1], "type": "ConnectionError",
         "message": "call 2 of 2 failed (after 2 attempts)"}]}


async def test_with_a_timeout_each_attempt_has_its_own() -> None:
    calls: list[int] = []

    @op(timeout=0.05, retry=3)
    async def slow_then_fast(value: int) -> dict[str, int]:
        calls.append(value)
        if len(calls) < 3:
            await asyncio.sleep(10)
        return {"result": value}

    frames = await frames_of(single(slow_then_fast), {"value": 5})
    assert frames[-1].outputs == {"result": 5}
    assert frames[0].attempts == 3 and len(calls) == 3


def test_a_generator_cannot_retry() -> None:
    with pytest.raises(GraphError, match="would repeat the frames"):
        @op(retry=2)
        def gen(items: list[int]) -> Iterator[dict[str, int]]:
            yield from ({"value": i} for i in items)


async def test_a_sync_op_whose_retries_wait_does_not_block_the_event_loop() -> None:
    events: list[str] = []
    flaky = Flaky(failures=1)

    @op(retry=Retry(2, delay=0.05), outputs=["result"])
    def sync_fetch(value: int) -> dict[str, int]:
        events.append(f"attempt {len(flaky.calls.get(value, [])) + 1}")
        return flaky(value)

    @op
    async def meanwhile(value: int) -> dict[str, int]:
        await asyncio.sleep(0.01)
        events.append("meanwhile")
        return {"other": value}

    with GraphOp(name="g") as g:
        a, b = sync_fetch(value=PARENT["value"]), meanwhile(value=PARENT["value"])
        START >> [a, b] >> END
    assert await Engine(g).run({"value": 1}) == {"result": 10, "other": 1}
    assert events == ["attempt 1", "meanwhile", "attempt 2"]


# --------------------------------------------------------------------------- cache


async def test_a_cache_hit_skips_the_call_and_still_emits_a_marked_frame() -> None:
    calls: list[int] = []

    @op(cache=True)
    def embed(value: int) -> dict[str, int]:
        calls.append(value)
        return {"result": value * 2}

    frames = await frames_of(per_item(embed), {"numbers": [1, 2, 1, 1]})
    assert frames[-1].outputs == {"result": [2, 4, 2, 2]}
    assert calls == [1, 2]
    embeds = sorted((f for f in frames if f.op_name == "embed"), key=lambda f: f.index)
    assert [(f.index, f.cached, f.attempts) for f in embeds] == [
        ((0,), False, 1), ((1,), False, 1), ((2,), True, 0), ((3,), True, 0)]


def test_each_node_has_its_own_cache_living_as_long_as_the_engine() -> None:
    calls: list[str] = []

    @op(cache=True)
    def embed(value: int, who: str) -> dict[str, int]:
        calls.append(who)
        return {"result": value}

    with GraphOp(name="g") as g:
        a = embed(value=PARENT["value"], who="a")
        b = embed(value=PARENT["value"], who="b", name="again")
        START >> [a, b]
        a >> END
    engine = Engine(g)
    engine.run_sync({"value": 1})
    engine.run_sync({"value": 1})
    assert sorted(calls) == ["a", "b"]  # one call per node, then hits in the second run
    Engine(g).run_sync({"value": 1})
    assert sorted(calls) == ["a", "a", "b", "b"]  # a new Engine starts empty


async def test_concurrent_identical_executions_share_one_run() -> None:
    calls: list[int] = []

    @op(cache=True, max_concurrent=8)
    async def lookup(value: int) -> dict[str, int]:
        calls.append(value)
        await asyncio.sleep(0.02)
        return {"result": value + 100}

    frames = await frames_of(per_item(lookup), {"numbers": [3, 3, 3, 4, 3]})
    assert frames[-1].outputs == {"result": [103, 103, 103, 104, 103]}
    assert sorted(calls) == [3, 4]
    hits = [f.cached for f in frames if f.op_name == "lookup"]
    assert sorted(hits) == [False, False, True, True, True]


async def test_a_shared_failure_fails_every_waiter_and_is_not_cached() -> None:
    calls: list[int] = []

    @op(cache=True)
    async def doomed(value: int) -> dict[str, int]:
        calls.append(value)
        await asyncio.sleep(0.02)
        raise RuntimeError("down")

    graph = per_item(doomed)
    engine = Engine(graph, on_error="collect")
    result = await engine.run({"numbers": [1, 1, 1]})
    assert calls == [1]
    assert sorted(e["index"][0] for e in result["$errors"]) == [0, 1, 2]
    await engine.run({"numbers": [1]})
    assert calls == [1, 1]  # a failure is not cached


def test_unhashable_arguments_are_not_cached() -> None:
    calls: list[list[int]] = []

    @op(cache=True)
    def total(value: list[int]) -> dict[str, int]:
        calls.append(value)
        return {"result": sum(value)}

    engine = Engine(single(total))
    assert engine.run_sync({"value": [1, 2]}) == {"result": 3}
    assert engine.run_sync({"value": [1, 2]}) == {"result": 3}
    assert len(calls) == 2


def test_cache_is_an_lru_of_the_given_size() -> None:
    calls: list[int] = []

    @op(cache=2)
    def square(value: int) -> dict[str, int]:
        calls.append(value)
        return {"result": value * value}

    engine = Engine(single(square))
    for value in [1, 2, 1, 3, 1, 2]:  # 3 evicts 2 (least recently used), not 1
        engine.run_sync({"value": value})
    assert calls == [1, 2, 3, 2]


# ------------------------------------------------------ interactions, validation


def test_policies_apply_per_frame_in_streams_loops_and_subgraphs() -> None:
    flaky = Flaky(failures=1)
    fetch = op(name="fetch", outputs=["result"], retry=2, cache=True)(flaky)  # type: ignore[arg-type]

    @op
    def increment(count: int) -> dict[str, int]:
        return {"count": count + 1}

    with GraphOp(name="g") as g:
        with GraphOp.loop(until="count >= 3", count=0, name="again") as loop:
            inc = increment(count=PARENT["count"])
            with GraphOp(name="inner", inputs={"value": inc["count"]}) as inner:
                f = fetch(value=PARENT["value"])
                START >> f >> END
            inc["count"] >> PARENT["count"]
            START >> inc >> inner >> END
        START >> loop >> END
    assert Engine(g).run_sync() == {"count": 3}
    assert {v: len(t) for v, t in flaky.calls.items()} == {1: 2, 2: 2, 3: 2}

    doomed = Flaky(failures=9)
    fetch2 = op(name="fetch", outputs=["result"], retry=2)(doomed)  # type: ignore[arg-type]
    with GraphOp(name="g2") as g2:
        with GraphOp(name="inner", inputs={"value": PARENT["value"]}) as inner2:
            f2 = fetch2(value=PARENT["value"])
            START >> f2 >> END
        START >> inner2 >> END
    with pytest.raises(OpError, match=r"op 'inner.fetch' raised .* \(after 2 attempts\)"):
        Engine(g2).run_sync({"value": 1})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"timeout": -1}, "timeout=-1 must be a number of seconds > 0"),
    ({"timeout": 0}, "timeout=0 must be"),
    ({"timeout": "1"}, "timeout='1' must be"),
    ({"timeout": float("inf")}, "timeout=inf must be"),
    ({"retry": 0}, "attempts must be an int >= 1"),
    ({"retry": "3"}, "retry='3' must be a number of attempts"),
    ({"retry": Retry(attempts=0)}, "attempts must be an int >= 1"),
    ({"retry": Retry(2, delay=-0.5)}, "delay must be a finite number >= 0"),
    ({"retry": Retry(2, backoff=0)}, "backoff must be a finite number > 0"),
    ({"retry": Retry(2, max_delay=-1)}, "max_delay must be a finite number >= 0"),
    ({"retry": Retry(2, on=KeyboardInterrupt)}, "is not an Exception subclass"),  # type: ignore[arg-type]
    ({"retry": Retry(2, on=(ValueError, 3))}, "3 is not an Exception subclass"),  # type: ignore[arg-type]
    ({"retry": Retry(2, on=())}, "name at least one exception class"),
    ({"cache": 0}, "cache=0 must be True or an LRU size >= 1"),
    ({"cache": -3}, "cache=-3 must be"),
    ({"cache": "yes"}, "cache='yes' must be"),
])
def test_invalid_policy_values_are_located_build_errors(kwargs: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(GraphError, match=message.replace("(", r"\(").replace(")", r"\)")) \
            as info:
        line = _line() + 2

        @op(**kwargs)
        async def fetch(value: int) -> dict[str, int]:
            return {"result": value}
    assert info.value.file == __file__ and info.value.line in (line, line + 1)


def test_a_generator_cannot_be_cached() -> None:
    with pytest.raises(GraphError, match="a generator cannot be cached"):
        @op(cache=True)
        async def stream(n: int) -> AsyncIterator[dict[str, int]]:
            yield {"n": n}


def test_jsonl_tracer_records_attempts_and_cache_hits(tmp_path: pathlib.Path) -> None:
    flaky = Flaky(failures=1)
    fetch = op(name="fetch", outputs=["result"], retry=2, cache=True)(flaky)  # type: ignore[arg-type]
    path = tmp_path / "trace.jsonl"
    Engine(per_item(fetch), tracers=[JsonlTracer(path)]).run_sync({"numbers": [5, 5]})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    fetches = sorted((r for r in lines if r.get("op") == "fetch"), key=lambda r: r["index"])
    assert [(r["index"], r["attempts"], r["cached"]) for r in fetches] == [
        ([0], 2, False), ([1], 0, True)]
    assert next(r for r in lines if r.get("op") == "each_item")["attempts"] == 1


# --------------------------------------------- policies on the fan-out pool's direct path


def test_a_fan_out_into_an_async_op_with_policies_runs_them_per_execution() -> None:
    """``run()`` drives ``gen -> async op`` on its worker pool, calling the op itself;
    an op with a policy goes through it there too: retries, a timeout, a cache."""
    flaky = Flaky(failures=1)
    calls: list[int] = []

    @op(retry=Retry(attempts=2, delay=0), timeout=5.0, max_concurrent=4, outputs=["result"])
    async def fetch(value: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return flaky(value)

    @op(cache=True)
    async def embed(value: int) -> dict[str, int]:
        calls.append(value)
        return {"result": value + 1}

    numbers = [1, 2, 3, 2, 1, 4]
    assert Engine(per_item(fetch)).run_sync({"numbers": numbers}) == {
        "result": [n * 10 for n in numbers]}
    # Per value, the first call fails and is retried: one more call than occurrences.
    assert {n: len(times) for n, times in flaky.calls.items()} == {1: 3, 2: 3, 3: 2, 4: 2}
    assert Engine(per_item(embed)).run_sync({"numbers": numbers}) == {
        "result": [n + 1 for n in numbers]}
    assert sorted(calls) == [1, 2, 3, 4]  # a repeated value is a cache hit


def test_a_fan_out_into_an_async_op_fails_with_the_policys_error_and_index() -> None:
    @op(retry=Retry(attempts=3, delay=0, on=(ConnectionError,)))
    async def always_fails(value: int) -> dict[str, int]:
        if value == 3:
            raise ConnectionError(f"down for {value}")
        return {"result": value}

    @op(timeout=0.05)
    async def stalls(value: int) -> dict[str, int]:
        if value == 2:
            await asyncio.sleep(10)
        return {"result": value}

    with pytest.raises(OpError) as failed:
        Engine(per_item(always_fails)).run_sync({"numbers": [1, 2, 3, 4]})
    assert failed.value.index == (2,) and "3 attempts" in str(failed.value)
    assert isinstance(failed.value.__cause__, ConnectionError)
    with pytest.raises(OpError) as timed_out:
        Engine(per_item(stalls)).run_sync({"numbers": [1, 2, 3]})
    assert timed_out.value.index == (1,) and isinstance(timed_out.value.__cause__, TimeoutError)
    collected = Engine(per_item(stalls), on_error="collect").run_sync({"numbers": [1, 2, 3]})
    assert collected["result"] == [1, 3]
    assert [e["index"] for e in collected["$errors"]] == [[1]]
