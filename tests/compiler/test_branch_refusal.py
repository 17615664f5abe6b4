"""Until the code generator supports SPEC §9, a graph with op policies is refused, located.

The Engine runs timeouts, retries and caches; a compiled module that ignored
them would run no policy: a silent miscompile. These tests hold the refusal
(``compiler/ir/lower.py``, ``refuse_unsupported``).
"""

from __future__ import annotations

import sys

import pytest

from compiler import CompileError, compile_graph
from operonx.core import END, PARENT, START, GraphOp, op
from tests.compiler import oplib


def _line() -> int:
    return sys._getframe(1).f_lineno


def _compile(graph: GraphOp) -> str:
    return compile_graph(graph, source_path=oplib.__file__, graph_name="g").source


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
