"""Property-based: random graphs from a small op library run the same through both paths.

Shapes: sync and async ops, generators (sync and async) nested up to two
levels, diamonds, completion and ordered collects, loops and sub-graphs, with
an injected failure value; the Engine and the compiled module (-O0 and -O2)
must agree on results, collect-mode results, frames and errors.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import compile_graph
from operonx.core import END, PARENT, START, Engine, GraphOp
from tests.compiler import oplib
from tests.compiler.helpers import (
    compiled_stream,
    engine_stream,
    frames_multiset,
    load_source,
    mypy_strict,
    normalise_collect,
    outcome,
    ruff_check,
)

STEPS = ("add", "aadd", "expand", "aexpand", "collect", "ordered", "diamond", "adiamond",
         "loop", "aloop", "sub", "asub")
_names = itertools.count()


def build(steps: list[str], fail: int) -> GraphOp:
    with GraphOp(name="prop", max_stream_concurrent=4) as graph:
        prev: Any = oplib.source(items=PARENT["items"], fail=fail)
        START >> prev
        depth = 1
        for step in steps:
            if step == "add":
                node: Any = oplib.add(v=prev["v"], k=1, fail=fail)
            elif step == "aadd":
                node = oplib.aadd(v=prev["v"], k=2, fail=fail)
            elif step in ("expand", "aexpand"):
                if depth >= 2:
                    continue
                make = oplib.expand if step == "expand" else oplib.aexpand
                node = make(v=prev["v"], n=2, fail=fail)
                depth += 1
            elif step in ("collect", "ordered"):
                if depth == 0:
                    continue
                if step == "collect":
                    node = oplib.total(vs=prev["v"].collect())
                else:
                    node = oplib.weighted(vs=prev["v"].collect(ordered=True))
                depth -= 1
            elif step in ("diamond", "adiamond"):
                make_left = oplib.add if step == "diamond" else oplib.aadd
                left = make_left(v=prev["v"], k=1, fail=fail)
                right = oplib.aadd(v=prev["v"], k=5)
                prev >> [left, right]
                node = oplib.combine(a=left["v"], b=right["v"])
                [left, right] >> node
                prev = node
                continue
            elif step in ("loop", "aloop"):
                with GraphOp.loop(until="counter >= 3", inputs={"v": prev["v"]}, counter=0,
                                  name=f"loop{next(_names)}") as loop:
                    inc = oplib.incr(counter=PARENT["counter"], step=1)
                    inc["counter"] >> PARENT["counter"]
                    START >> inc >> END
                    if step == "aloop":
                        bump = oplib.aadd(v=PARENT["v"], k=1, fail=fail)
                        bump["v"] >> PARENT["v"]
                        START >> bump >> END
                node = oplib.combine(a=loop["counter"], b=loop["v"])
                prev >> loop >> node
                prev = node
                continue
            else:
                with GraphOp(name=f"sub{next(_names)}", inputs={"v": prev["v"]}) as sub:
                    make = oplib.add if step == "sub" else oplib.aadd
                    inner = make(v=PARENT["v"], k=7, fail=fail)
                    START >> inner >> END
                node = sub
            prev >> node
            prev = node
        prev >> END
    return graph


def _errors(result: Any) -> set[tuple[str, tuple[int, ...]]]:
    return {(e["op"], tuple(e["index"])) for e in result.get("$errors", [])}


@settings(max_examples=int(os.environ.get("OPERONX_PROPERTY_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=5),
       items=st.lists(st.integers(min_value=0, max_value=4), max_size=4),
       fail=st.sampled_from([-1, -1, 2, 3, 21]))
def test_engine_and_compiled_agree(steps: list[str], items: list[int], fail: int) -> None:
    graph = build(steps, fail)
    inputs = {"items": items}
    engine_result = outcome(lambda: Engine(graph).run_sync(inputs))
    engine_collect = Engine(graph, on_error="collect").run_sync(inputs)
    engine_frames = engine_stream(graph, inputs) if engine_result[0] == "ok" else None
    with tempfile.TemporaryDirectory() as tmp:
        for level in (0, 2):
            source = compile_graph(graph, source_path=oplib.__file__, graph_name="prop",
                                   opt_level=level).source
            module = load_source(source, Path(tmp), f"prop_O{level}")
            got = outcome(lambda m=module: m.run_sync(inputs))
            if engine_result[0] == "ok":
                assert got == engine_result, (steps, level)
                assert frames_multiset(compiled_stream(module, inputs)) == \
                    frames_multiset(engine_frames or [])
            else:
                # Concurrent failures may race: the error raised must be one the Engine
                # also sees, with the same type and message shape.
                assert got[0] == "error" and got[1][0] == engine_result[1][0], (steps, level)
                if got[1][0] == "OpError":
                    assert (got[1][1], got[1][2]) in _errors(engine_collect), (steps, level)
            collected = module.run_sync(inputs, on_error="collect")
            assert normalise_collect(collected) == normalise_collect(engine_collect), \
                (steps, level)


def test_random_graph_modules_pass_mypy_strict_and_ruff(tmp_path: Path) -> None:
    import random

    rng = random.Random(5)
    files = []
    for i in range(10):
        steps = [rng.choice(STEPS) for _ in range(rng.randint(1, 6))]
        graph = build(steps, rng.choice([-1, 2]))
        for level in (0, 2):
            source = compile_graph(graph, source_path=oplib.__file__, graph_name="prop",
                                   opt_level=level).source
            path = tmp_path / f"prop_{i}_O{level}.py"
            path.write_text(source)
            files.append(str(path))
    mypy = mypy_strict(files, tmp_path)
    assert mypy.returncode == 0, mypy.stdout
    ruff = ruff_check(files, tmp_path)
    assert ruff.returncode == 0, ruff.stdout
