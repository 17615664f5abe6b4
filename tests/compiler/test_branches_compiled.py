"""SPEC §8 on the compiled path: every shape of branching, Engine ≡ compiled at -O0/-O1/-O2.

Each test is a small graph file with the ops at module level (as a user writes
them); ``each_level`` compiles it, imports the module, and holds it equal to
the Engine on results, collect-mode results, errors and frames.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.compiler.projects import each_level, mypy_strict, write_project

OPS = """\
import asyncio
from collections.abc import Iterator
from typing import Any

from operonx.core import END, PARENT, START, GraphOp, coalesce, if_, op


@op
def each(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"v": item}


@op
def classify(v: int) -> dict[str, Any]:
    return {"kind": "even" if v % 2 == 0 else "odd", "size": v, "maybe": v if v > 2 else None}


@op
def double(v: int) -> dict[str, int]:
    return {"out": v * 2}


@op
def negate(v: int) -> dict[str, int]:
    return {"out": -v}


@op
async def slow_square(v: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"out": v * v}


@op
async def slow_cube(v: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"out": v * v * v}


@op
def show(out: int) -> dict[str, str]:
    return {"shown": f"<{out}>"}


@op
def total(vs: list[int]) -> dict[str, int]:
    return {"total": sum(vs)}


@op
def fan(v: int) -> Iterator[dict[str, int]]:
    for j in range(2):
        yield {"v": v * 10 + j}
"""


def check(tmp_path: Path, graph: str, *inputs: dict[str, Any]) -> list[Any]:
    return each_level(tmp_path, OPS + textwrap.dedent(graph), *inputs)


def test_depth_zero_branch_leaves_the_skipped_key_out(tmp_path: Path) -> None:
    modules = check(tmp_path, """
        with GraphOp(name="g") as graph:
            kind = classify(v=PARENT["v"])
            d = double(v=PARENT["v"])
            n = negate(v=PARENT["v"])
            START >> kind >> if_(kind["kind"] == "even", d).else_(n)
            d >> END
    """, {"v": 4}, {"v": 3})
    assert modules[-1].run_sync({"v": 3}) == {}  # the key is absent, not None
    assert modules[-1].run_sync({"v": 4}) == {"out": 8}


def test_per_frame_routing_filters_streams_and_collects(tmp_path: Path) -> None:
    check(tmp_path, """
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            kind = classify(v=gen["v"])
            d = double(v=gen["v"])
            n = negate(v=gen["v"])
            joined = show(out=coalesce(d["out"], n["out"]))
            evens = total(vs=d["out"].collect())
            START >> gen >> kind >> if_(kind["kind"] == "even", d).else_(n)
            [d, n] >> joined >> END
            d >> evens >> END
    """, {"items": [1, 2, 3, 4]}, {"items": []}, {"items": [1]})


def test_branch_without_else_skips_what_follows(tmp_path: Path) -> None:
    check(tmp_path, """
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            kind = classify(v=gen["v"])
            d = double(v=gen["v"])
            after = show(out=d["out"])
            START >> gen >> kind >> if_(kind["size"] > 2, d)
            d >> after >> END
    """, {"items": [1, 2, 3, 4]})


@pytest.mark.parametrize("condition", [
    'kind["kind"] == "even"', 'kind["size"].isin([1, 3])', '(kind["size"] >= 2) & '
    '(kind["size"] < 4)', '(kind["size"] == 1) | (kind["size"] == 4)',
    '~(kind["kind"] == "even")', 'kind["maybe"].is_none()', 'kind["maybe"] > 3',
    'kind["size"] == PARENT["pick"]'])
def test_every_condition_form(condition: str, tmp_path: Path) -> None:
    check(tmp_path, f"""
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            kind = classify(v=gen["v"])
            d = double(v=gen["v"])
            n = negate(v=gen["v"])
            joined = show(out=coalesce(d["out"], n["out"], -1))
            START >> gen >> kind >> if_({condition}, d).elif_(kind["size"] == 2, n)
            [d, n] >> joined >> END
    """, {"items": [1, 2, 3, 4], "pick": 3})


def test_a_condition_that_raises_fails_the_branch(tmp_path: Path) -> None:
    modules = check(tmp_path, """
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            kind = classify(v=gen["v"])
            d = double(v=gen["v"])
            n = negate(v=gen["v"])
            joined = show(out=coalesce(d["out"], n["out"]))
            START >> gen >> kind >> if_(kind["maybe"] < 3, d).else_(n)
            [d, n] >> joined >> END
    """, {"items": [3, 1, 4]}, {"items": [4]})
    with pytest.raises(modules[-1].OpError) as info:
        modules[-1].run_sync({"items": [3, 1, 4]})
    assert info.value.op_name == "branch" and info.value.index == (1,)


def test_async_targets_in_one_level_run_as_tasks(tmp_path: Path) -> None:
    check(tmp_path, """
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            kind = classify(v=gen["v"])
            sq = slow_square(v=gen["v"])
            cu = slow_cube(v=gen["v"])
            d = double(v=gen["v"])
            joined = show(out=coalesce(sq["out"], cu["out"], d["out"]))
            START >> gen >> kind
            kind >> if_(kind["size"] == 1, [sq, cu]).elif_(kind["size"] == 2, d)
            [sq, cu, d] >> joined >> END
    """, {"items": [1, 2, 3]})


def test_a_branch_decided_once_for_targets_in_a_deeper_stream(tmp_path: Path) -> None:
    check(tmp_path, """
        with GraphOp(name="g") as graph:
            kind = classify(v=PARENT["v"])
            gen = each(items=PARENT["items"])
            d = double(v=gen["v"])
            n = negate(v=gen["v"])
            joined = show(out=coalesce(d["out"], n["out"]))
            START >> [kind, gen]
            [kind, gen] >> if_(kind["kind"] == "even", d).else_(n)
            [d, n] >> joined >> END
    """, {"v": 2, "items": [1, 2]}, {"v": 1, "items": [5]}, {"v": 1, "items": []})


def test_a_skipped_generator_leaves_its_stream_out(tmp_path: Path) -> None:
    modules = check(tmp_path, """
        with GraphOp(name="g") as graph:
            kind = classify(v=PARENT["v"])
            f = fan(v=PARENT["v"])
            d = double(v=f["v"])
            t = total(vs=d["out"].collect())
            START >> kind >> if_(kind["kind"] == "even", f)
            f >> d >> [t, END]
            t >> END
    """, {"v": 2}, {"v": 3})
    assert modules[-1].run_sync({"v": 3}) == {}


def test_a_routed_generator_whose_frames_await_runs_them_all(tmp_path: Path) -> None:
    """A generator behind a branch whose frames await runs on the worker pool (run path):
    the ops in its frames wait on it having run, and must see that it did."""
    modules = check(tmp_path, """
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            kind = classify(v=gen["v"])
            d = double(v=gen["v"])
            f = fan(v=d["out"])
            sq = slow_square(v=f["v"])
            START >> gen >> kind >> if_(kind["kind"] == "even", d)
            d >> f >> sq >> END
    """, {"items": [1, 2, 4]}, {"items": [1]})
    assert modules[-1].run_sync({"items": [2]}) == {"out": [1600, 1681]}


def test_branches_in_a_subgraph_and_in_a_loop_body(tmp_path: Path) -> None:
    check(tmp_path, """
        with GraphOp(name="g") as graph:
            with GraphOp(name="inner", inputs={"x": PARENT["v"]}) as inner:
                kind = classify(v=PARENT["x"])
                d = double(v=PARENT["x"])
                START >> kind >> if_(kind["kind"] == "even", d)
                d >> END
            after = show(out=inner["out"])
            with GraphOp.loop(until="n >= 3", n=0, inputs={"acc": PARENT["v"]}) as loop:
                kind2 = classify(v=PARENT["n"])
                d2 = double(v=PARENT["acc"])
                step = negate(v=PARENT["n"])
                START >> kind2 >> if_(kind2["kind"] == "even", d2)
                d2["out"] >> PARENT["acc"]
                step["out"] >> PARENT["n"]
                START >> step >> END
            START >> [inner, loop]
            inner >> after >> END
            loop >> END
    """, {"v": 2}, {"v": 3})


def test_generated_modules_with_branches_pass_mypy_strict(tmp_path: Path) -> None:
    from compiler import compile_file

    path = write_project(tmp_path, {"g.py": OPS + textwrap.dedent("""
        with GraphOp(name="g") as graph:
            gen = each(items=PARENT["items"])
            kind = classify(v=gen["v"])
            d = double(v=gen["v"])
            n = negate(v=gen["v"])
            top = classify(v=PARENT["v"])
            d0 = double(v=PARENT["v"])
            joined = show(out=coalesce(d["out"], n["out"]))
            START >> gen >> kind >> if_(kind["kind"] == "even", d).else_(n)
            START >> top >> if_(top["size"] > 1, d0)
            [d, n] >> joined >> END
            d0 >> END
    """)})
    for level in (0, 2):
        out = tmp_path / f"out_O{level}.py"
        out.write_text(compile_file(path, opt_level=level).source, encoding="utf-8")
        checked = mypy_strict(str(out), tmp_path)
        assert checked.returncode == 0, checked.stdout
        assert "NotRequired[" in out.read_text(encoding="utf-8")  # 'out' may be absent
