"""An op under a second, wrapping decorator: the Engine runs it, the compiler refuses it.

The wrapper (not the decorated ``def``) is what a call runs, so neither its
outputs nor its source can be taken from the ``def`` — the compiler must say so
rather than copy code that would behave differently.
"""

from __future__ import annotations

import pytest

from compiler import CompileError, compile_graph
from operonx.core import END, PARENT, START, Engine, GraphOp, OpError
from tests.compiler import decorated_ops


def wrapped_graph() -> GraphOp:
    with GraphOp(name="g") as graph:
        node = decorated_ops.wrapped(v=PARENT["v"])
        START >> node >> END
    return graph


def test_the_engine_checks_what_the_wrapper_returns() -> None:
    with pytest.raises(OpError, match="returned list, not a dict"):
        Engine(wrapped_graph()).run_sync({"v": 1})


@pytest.mark.parametrize("level", [0, 2])
def test_the_compiler_refuses_a_wrapped_op_with_its_location(level: int) -> None:
    with pytest.raises(CompileError) as info:
        compile_graph(wrapped_graph(), source_path=decorated_ops.__file__, graph_name="g",
                      opt_level=level)
    assert info.value.file == decorated_ops.__file__ and info.value.line is not None
    assert "closure" in str(info.value)
