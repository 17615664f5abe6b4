"""A callable ``until`` (named function or lambda) is copied into the module and called."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_graph
from operonx.core import END, PARENT, START, Engine, GraphOp
from tests.compiler import oplib
from tests.compiler.helpers import assert_equivalent, load_source

LEVELS = (0, 2)


def reached_three(state: Mapping[str, Any]) -> bool:
    return bool(state["counter"] >= 3)


def named_until_loop() -> GraphOp:
    with GraphOp.loop(until=reached_three, counter=0) as graph:
        inc = oplib.incr(counter=PARENT["counter"], step=1)
        inc["counter"] >> PARENT["counter"]
        START >> inc >> END
    return graph


def lambda_until_loop() -> GraphOp:
    with GraphOp(name="outer") as graph:
        with GraphOp.loop(until=lambda state: state["counter"] >= 4, counter=0) as loop:
            inc = oplib.incr(counter=PARENT["counter"], step=2)
            inc["counter"] >> PARENT["counter"]
            START >> inc >> END
        START >> loop >> END
    return graph


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("make", [named_until_loop, lambda_until_loop])
def test_callable_until_compiles_and_matches_the_engine(make: Any, level: int,
                                                         tmp_path: Path) -> None:
    graph = make()
    result = compile_graph(graph, source_path=__file__, graph_name="g", opt_level=level)
    assert "def " in result.source and "until" in result.source
    module = load_source(result.source, tmp_path, f"until_O{level}")
    assert module.run_sync({}) == Engine(graph).run_sync({})
    assert_equivalent(graph, module, {})
