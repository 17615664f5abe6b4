"""Until the code generator supports SPEC §8/§9, a graph using them is refused, located.

The Engine runs branches, ``coalesce`` and op policies; a compiled module that
ignored them would run every arm and no policy: a silent miscompile. These
tests hold the refusal (``compiler/ir/lower.py``, ``refuse_unsupported``).
"""

from __future__ import annotations

import sys

import pytest

from compiler import CompileError, compile_graph
from operonx.core import END, PARENT, START, GraphOp, coalesce, if_, op
from tests.compiler import oplib


def _line() -> int:
    return sys._getframe(1).f_lineno


def _compile(graph: GraphOp) -> str:
    return compile_graph(graph, source_path=oplib.__file__, graph_name="g").source


def test_a_branch_is_refused_at_its_line() -> None:
    with GraphOp(name="g") as graph:
        a = oplib.add(v=PARENT["v"], k=1)
        b = oplib.add(v=a["v"], k=2)
        START >> a >> if_(a["v"] > 3, b); line = _line()  # noqa: E702
        b >> END
    with pytest.raises(CompileError) as info:
        _compile(graph)
    assert (info.value.file, info.value.line) == (__file__, line)
    assert "branches are not supported by the compiler yet" in str(info.value)


def test_a_branch_inside_a_sub_graph_is_refused_too() -> None:
    with GraphOp(name="g") as graph:
        with GraphOp(name="inner", inputs={"v": PARENT["v"]}) as inner:
            a = oplib.add(v=PARENT["v"], k=1)
            START >> if_(PARENT["v"] == 0, a); line = _line()  # noqa: E702
            a >> END
        START >> inner >> END
    with pytest.raises(CompileError, match="branches are not supported") as info:
        _compile(graph)
    assert info.value.line == line


def test_coalesce_is_refused_at_the_reading_node() -> None:
    with GraphOp(name="g") as graph:
        a = oplib.add(v=PARENT["v"], k=1)
        b = oplib.add(v=coalesce(a["v"], 0), k=2); line = _line()  # noqa: E702
        START >> a >> b >> END
    with pytest.raises(CompileError, match="coalesce") as info:
        _compile(graph)
    assert info.value.line == line


@pytest.mark.parametrize("policy", [{"retry": 2}, {"cache": True}, {"timeout": 1.0}])
def test_an_op_with_a_policy_is_refused_at_its_node(policy: dict[str, object]) -> None:
    async def fetch(v: int) -> dict[str, int]:
        return {"v": v}

    fetch_op = op(**policy)(fetch)  # type: ignore[call-overload]
    with GraphOp(name="g") as graph:
        node = fetch_op(v=PARENT["v"]); line = _line()  # noqa: E702
        START >> node >> END
    with pytest.raises(CompileError, match="timeout=, retry= and cache= are not supported") \
            as info:
        _compile(graph)
    assert info.value.line == line
