"""SPEC §9 on the compiled path: timeout, retry and cache, Engine ≡ compiled at every level.

The ops keep their call counts in module state; the Engine and the compiled
module each have their own copy, so both see the same sequence of calls.
"""

from __future__ import annotations

import asyncio
import collections
import textwrap
from pathlib import Path
from typing import Any

import pytest

from compiler import CompileError, compile_file
from tests.compiler.helpers import compiled_stream, engine_stream
from tests.compiler.projects import compiled, each_level, engine_graph, mypy_strict, write_project

OPS = """\
import asyncio
from collections.abc import AsyncIterator, Iterator

from operonx.core import END, PARENT, START, GraphOp, Retry, op

CALLS: dict[int, int] = {}


class Flaky(Exception):
    pass


def called(v: int) -> int:
    CALLS[v] = CALLS.get(v, 0) + 1
    return CALLS[v]


@op
def each(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"v": item}


@op(retry=3)
def sync_retry(v: int) -> dict[str, int]:
    if called(v) % 3 != 0 and v % 2 == 0:  # even values fail twice, then answer
        raise Flaky(f"flaky {v}")
    return {"out": v * 10}


@op(retry=Retry(attempts=2, delay=0.001, backoff=2.0, on=(ConnectionError,)))
async def async_retry(v: int) -> dict[str, int]:
    n = called(v)
    if v == 3:
        raise ValueError("not retried")  # not in `on`: fails at once
    if v % 2 == 1 and n % 2 == 1:
        raise ConnectionError("reset")
    return {"out": v + 100}


@op(timeout=0.05, retry=Retry(attempts=2, on=(TimeoutError,)))
async def stalls(v: int) -> dict[str, int]:
    if called(v) == 1 and v == 2:
        await asyncio.sleep(5)  # the first attempt times out, the second answers
    if v == 4:
        await asyncio.sleep(5)  # always times out
    return {"out": v}


@op(cache=True)
def cached_square(v: int) -> dict[str, int]:
    called(v)
    return {"out": v * v}


@op(cache=2)
async def acached(v: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"out": -v}


@op(timeout=0.05)
async def slow_stream(n: int) -> AsyncIterator[dict[str, int]]:
    for i in range(n):
        if i == 2:
            await asyncio.sleep(5)
        yield {"v": i}


@op(bound="cpu", timeout=5.0, retry=2)
def cpu_retry(v: int) -> dict[str, int]:
    return {"out": v * 3}
"""


def check(tmp_path: Path, graph: str, *inputs: dict[str, Any]) -> list[Any]:
    return each_level(tmp_path, OPS + textwrap.dedent(graph), *inputs)


@pytest.mark.parametrize("op_name", ["sync_retry", "async_retry", "cached_square", "acached",
                                     "cpu_retry"])
def test_policies_per_frame(op_name: str, tmp_path: Path) -> None:
    check(tmp_path, f"""
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            node = {op_name}(v=gen["v"])
            START >> gen >> node >> END
    """, {"items": [1, 2, 2, 4, 1]}, {"items": [3]}, {"items": []})


def test_timeouts_cancel_each_attempt(tmp_path: Path) -> None:
    modules = check(tmp_path, """
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            node = stalls(v=gen["v"])
            START >> gen >> node >> END
    """, {"items": [1, 2]}, {"items": [4]})
    with pytest.raises(modules[-1].OpError) as info:
        modules[-1].run_sync({"items": [4]})
    assert isinstance(info.value.__cause__, TimeoutError)
    assert str(info.value).endswith("(after 2 attempts)")


def test_an_async_generator_step_timeout(tmp_path: Path) -> None:
    modules = check(tmp_path, """
        with GraphOp(name="g") as graph:
            gen = slow_stream(n=PARENT["n"])
            START >> gen >> END
    """, {"n": 2}, {"n": 4})
    with pytest.raises(modules[-1].OpError) as info:
        modules[-1].run_sync({"n": 4})
    assert info.value.op_name == "slow_stream" and info.value.index == (2,)


def test_frames_count_attempts_and_mark_cache_hits_as_the_engine_does(tmp_path: Path) -> None:
    source = OPS + textwrap.dedent("""
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            a = sync_retry(v=gen["v"])
            b = cached_square(v=gen["v"])
            START >> gen >> [a, b]
            a >> END
    """)
    inputs = {"items": [2, 1, 2, 3, 2]}
    for level in (0, 2):
        directory = tmp_path / f"O{level}"
        path = write_project(directory, {"g.py": source})
        graph, module = engine_graph(path), compiled(path, level, directory)

        def seen(frames: list[Any]) -> collections.Counter[tuple[str, int, bool]]:
            return collections.Counter((f.op_name, f.attempts, f.cached) for f in frames)

        want = seen(engine_stream(graph, inputs))
        got = seen(compiled_stream(module, inputs))
        assert got == want
        assert want[("sync_retry", 3, False)] >= 1 and want[("cached_square", 0, True)] >= 1


def test_the_cache_lives_as_long_as_the_compiled_module(tmp_path: Path) -> None:
    path = write_project(tmp_path, {"g.py": OPS + textwrap.dedent("""
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            node = cached_square(v=gen["v"])
            START >> gen >> node >> END
    """)})
    module = compiled(path, 2, tmp_path)
    assert module.run_sync({"items": [5, 6]}) == {"out": [25, 36]}
    assert module.run_sync({"items": [5, 6]}) == {"out": [25, 36]}
    assert module.CALLS == {5: 1, 6: 1}  # the second run was all cache hits

    async def concurrent() -> list[Any]:
        return await asyncio.gather(*(module.run({"items": [7]}) for _ in range(5)))

    assert asyncio.run(concurrent()) == [{"out": [49]}] * 5
    assert module.CALLS[7] == 1


def test_a_user_exception_the_op_does_not_use_is_refused(tmp_path: Path) -> None:
    path = write_project(tmp_path, {"g.py": OPS + textwrap.dedent("""
        class Unused(Exception):
            pass


        @op(retry=Retry(attempts=2, on=(Unused,)))
        def plain(v: int) -> dict[str, int]:
            return {"out": v}


        with GraphOp(name="g") as graph:
            node = plain(v=PARENT["v"])
            START >> node >> END
    """)})
    with pytest.raises(CompileError) as info:
        compile_file(path)
    assert "retries on Unused" in str(info.value) and info.value.line is not None


def test_retry_on_a_user_exception_the_op_raises(tmp_path: Path) -> None:
    check(tmp_path, """
        @op(retry=Retry(attempts=3, on=(Flaky,)))
        def uses(v: int) -> dict[str, int]:
            if called(v) < 2:
                raise Flaky("once")
            return {"out": v}


        with GraphOp(name="g") as graph:
            node = uses(v=PARENT["v"])
            START >> node >> END
    """, {"v": 1})


def test_compiled_policies_pass_mypy_strict(tmp_path: Path) -> None:
    path = write_project(tmp_path, {"g.py": OPS + textwrap.dedent("""
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            a = sync_retry(v=gen["v"])
            b = async_retry(v=gen["v"])
            c = stalls(v=gen["v"])
            d = acached(v=gen["v"])
            e = cpu_retry(v=gen["v"])
            s = slow_stream(n=PARENT["n"])
            START >> gen >> [a, b, c, d, e]
            START >> s
            [a, s] >> END
    """)})
    for level in (0, 2):
        out = tmp_path / f"out_O{level}.py"
        out.write_text(compile_file(path, opt_level=level).source, encoding="utf-8")
        checked = mypy_strict(str(out), tmp_path)
        assert checked.returncode == 0, checked.stdout
