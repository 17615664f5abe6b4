"""What the compiler cannot compile it refuses with a located CompileError — never wrong code."""

from __future__ import annotations

import pytest

from compiler import CompileError, compile_graph, explain
from operonx.core import END, PARENT, START, GraphOp
from tests.compiler import oplib
from tests.golden.cases import CASES


def _compile(graph: GraphOp) -> str:
    return compile_graph(graph, source_path=oplib.__file__, graph_name="g").source


def test_a_constant_that_is_not_a_literal_is_refused() -> None:
    with GraphOp(name="g") as graph:
        node = oplib.add(v=PARENT["v"], k=object())
        START >> node >> END
    with pytest.raises(CompileError) as info:
        _compile(graph)
    assert "cannot be written into the compiled module" in str(info.value)
    assert info.value.line is not None


def test_a_sub_graph_cannot_be_compiled_on_its_own() -> None:
    with GraphOp(name="outer") as outer:
        with GraphOp(name="inner", inputs={"v": PARENT["v"]}) as inner:
            node = oplib.add(v=PARENT["v"], k=1)
            START >> node >> END
        START >> inner >> END
    with pytest.raises(CompileError):
        compile_graph(inner, source_path=oplib.__file__, graph_name="inner")
    assert "def run(" in _compile(outer)


def test_unknown_opt_level_is_a_usage_error() -> None:
    with GraphOp(name="g") as graph:
        node = oplib.add(v=PARENT["v"], k=1)
        START >> node >> END
    with pytest.raises(CompileError) as info:
        compile_graph(graph, source_path=oplib.__file__, graph_name="g", opt_level=3)
    assert info.value.exit_code == 2


def test_explain_shows_each_pass_and_its_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.golden.cases import REPO

    monkeypatch.chdir(REPO)
    text = explain(CASES[0].path)
    for name in ("specialise_fanout", "drop_bookkeeping", "fuse_chains", "inline_loops"):
        assert f"## after {name}" in text
    assert "each_item: consumers called inline per yield (double)" in text
    assert text.count("module iterate") == 5  # before, and after each of the four passes
