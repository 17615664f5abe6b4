"""SPEC §6: op failures, cancellation, on_error="collect", the error hierarchy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from operonx.core import (
    END,
    PARENT,
    START,
    Engine,
    GraphError,
    GraphOp,
    InputError,
    LoopLimitExceeded,
    OperonxError,
    OpError,
    op,
)
from tests.core.seed_ops import each_item


@op
def fragile(value: int) -> dict[str, int]:
    if value == 3:
        raise ValueError(f"bad value {value}")
    return {"result": value * 2}


def fragile_graph() -> GraphOp:
    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        f = fragile(value=gen["value"])
        START >> gen >> f >> END
    return g


def test_error_classes_share_one_base() -> None:
    for cls in (GraphError, InputError, OpError, LoopLimitExceeded):
        assert issubclass(cls, OperonxError)


def test_op_raising_mid_stream_raises_op_error_with_name_index_and_cause() -> None:
    with pytest.raises(OpError) as info:
        Engine(fragile_graph()).run_sync({"numbers": [1, 2, 3, 4]})
    err = info.value
    assert err.op_name == "fragile" and err.index == (2,)
    assert isinstance(err.__cause__, ValueError) and str(err.__cause__) == "bad value 3"
    assert str(err) == "op 'fragile' at index (2,) raised ValueError: bad value 3"


async def test_failure_closes_generators_and_cancels_everything_in_flight() -> None:
    closed: list[str] = []
    cancelled: list[int] = []

    @op
    def numbers(n: int) -> Iterator[dict[str, int]]:
        try:
            for i in range(n):
                yield {"value": i}
        finally:
            closed.append("sync")

    @op
    async def ticks(n: int) -> AsyncIterator[dict[str, int]]:
        try:
            for i in range(n):
                await asyncio.sleep(0)
                yield {"tick": i}
        finally:
            closed.append("async")

    @op
    async def work(value: int, tick: int) -> dict[str, int]:
        if value == 5:
            raise RuntimeError("boom")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(value)
            raise
        return {"done": value}

    with GraphOp(name="g2") as g2:
        n = numbers(n=PARENT["n"])
        t = ticks(n=n["value"])
        w = work(value=n["value"], tick=t["tick"])
        START >> n >> t >> w >> END
    before = set(asyncio.all_tasks())
    with pytest.raises(OpError) as info:
        await Engine(g2).run({"n": 20})
    assert info.value.op_name == "work" and isinstance(info.value.__cause__, RuntimeError)
    assert "sync" in closed and "async" in closed
    assert cancelled  # the sleeping work items were cancelled, not left running
    assert set(asyncio.all_tasks()) == before


def test_on_error_collect_skips_the_failed_frame_and_reports_it() -> None:
    @op
    def after(result: int) -> dict[str, int]:
        return {"after": result + 1}

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        f = fragile(value=gen["value"])
        a = after(result=f["result"])
        START >> gen >> f >> a >> END
    result = Engine(g, on_error="collect").run_sync({"numbers": [1, 2, 3, 4]})
    assert result == {
        "after": [3, 5, 9],
        "$errors": [{"op": "fragile", "index": [2], "type": "ValueError",
                     "message": "bad value 3"}],
    }


def test_on_error_collect_with_no_failure_has_empty_errors() -> None:
    result = Engine(fragile_graph(), on_error="collect").run_sync({"numbers": [1]})
    assert result == {"result": [2], "$errors": []}


def test_on_error_collect_failed_plain_op_leaves_its_key_out() -> None:
    with GraphOp(name="g") as g:
        f = fragile(value=PARENT["x"])
        START >> f >> END
    assert Engine(g, on_error="collect").run_sync({"x": 3}) == {
        "$errors": [{"op": "fragile", "index": [], "type": "ValueError",
                     "message": "bad value 3"}]}


def test_failing_generator_ends_its_stream_in_collect_mode() -> None:
    @op
    def flaky(n: int) -> Iterator[dict[str, int]]:
        for i in range(n):
            if i == 2:
                raise KeyError("gone")
            yield {"value": i}

    with GraphOp(name="g") as g:
        f = flaky(n=5)
        START >> f >> END
    result = Engine(g, on_error="collect").run_sync()
    assert result["value"] == [0, 1]
    assert result["$errors"][0]["op"] == "flaky" and result["$errors"][0]["index"] == [2]
    with pytest.raises(OpError, match="'flaky' at index \\(2,\\)"):
        Engine(g).run_sync()


def test_missing_output_key_is_an_op_error_naming_producer_and_key() -> None:
    @op(outputs=["result"])
    def sometimes(value: int) -> dict[str, Any]:
        return {"result": value} if value != 2 else {"other": value}

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        s = sometimes(value=gen["value"])
        START >> gen >> s >> END
    with pytest.raises(OpError, match="'sometimes' returned no output 'result'") as info:
        Engine(g).run_sync({"numbers": [1, 2]})
    assert isinstance(info.value.__cause__, KeyError) and info.value.index == (1,)


def test_errors_inside_subgraphs_name_the_qualified_op() -> None:
    with GraphOp(name="outer") as g:
        with GraphOp(name="inner", inputs={"v": PARENT["x"]}) as inner:
            f = fragile(value=PARENT["v"])
            START >> f >> END
        START >> inner >> END
    with pytest.raises(OpError) as info:
        Engine(g).run_sync({"x": 3})
    assert info.value.op_name == "inner.fragile"


def test_graph_errors_name_file_and_line() -> None:
    with pytest.raises(GraphError) as info, GraphOp(name="g"):
        gen = each_item(items=PARENT["numbers"])
        gen >> gen
    assert info.value.file == __file__
    assert str(info.value).startswith(f"{__file__}:{info.value.line}: ")


def test_loop_limit_in_collect_mode_is_reported() -> None:
    @op
    def same(c: int) -> dict[str, int]:
        return {"c": c}

    with GraphOp(name="g") as g:
        with GraphOp.loop(until="c > 0", c=0, max_iterations=3, name="stuck") as loop:
            s = same(c=PARENT["c"])
            s["c"] >> PARENT["c"]
            START >> s >> END
        START >> loop >> END
    result = Engine(g, on_error="collect").run_sync()
    assert result == {"$errors": [{"op": "stuck", "index": [], "type": "LoopLimitExceeded",
                                   "message": "loop 'stuck' reached max_iterations=3 without "
                                              "until becoming true"}]}
    with pytest.raises(LoopLimitExceeded):
        Engine(g).run_sync()
