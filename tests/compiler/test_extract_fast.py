"""An ``@op`` function copied as its own text (extract._Extractor._plain_def) is exactly
what printing its libcst tree without the decorator gives, whatever the layout."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from compiler.frontend import extract as extract_module
from compiler.frontend.extract import Extraction, extract
from compiler.frontend.load import find_graphs, load_module
from tests.golden.cases import CASES

ODD_LAYOUTS = '''\
from operonx import core
from operonx.core import END, PARENT, START, GraphOp, op


# a comment above the decorator
@op  # a comment on the decorator line
def commented(x: int) -> dict[str, int]:
    return {"x": x + 1}
    # a comment indented into the body: libcst keeps it with the function


@op(name="named",
    timeout=None)
def multi_line_decorator(x: int) -> dict[str, int]:
    return {"x": x}


@op
# a comment between the decorator and the def
def between(x: int) -> dict[str, int]:
    return {"x": x}


@core.op
def dotted(x: int) -> dict[str, int]:
    if x:
        return {"x": x}
    return {"x": 0}


@op
def two_spaces(x: int) -> dict[str, int]:
  if x:
      return {"x": x}
  return {"x": 1}


@op
def tabs(x: int) -> dict[str, int]:
\tif x:
\t\treturn {"x": x}
\treturn {"x": 2}


@op
def one_line(x: int) -> dict[str, int]: return {"x": x}


@op
def eight_then_four(x: int) -> dict[str, int]:
        if x:
            return {"x": x}
        return {"x": 3}


@op
async def later(x: int) -> dict[str, int]:
    """A docstring first."""

    return {"x": x}


@op
def untyped(x):
    return {"x": x}


with GraphOp(name="odd") as graph:
    nodes = [commented(x=PARENT["x"]), multi_line_decorator(x=PARENT["x"]),
             between(x=PARENT["x"]), dotted(x=PARENT["x"]), two_spaces(x=PARENT["x"]),
             tabs(x=PARENT["x"]), one_line(x=PARENT["x"]), eight_then_four(x=PARENT["x"]),
             later(x=PARENT["x"]), untyped(x=PARENT["x"])]
    START >> nodes[0]
    for before, after in zip(nodes, nodes[1:]):
        before >> after
    nodes[-1] >> END
@op
def last_in_file(x: int) -> dict[str, int]:
    return {"x": x}'''


def _both(ir: object, monkeypatch: pytest.MonkeyPatch) -> tuple[Extraction, Extraction]:
    fast = extract(ir)  # type: ignore[arg-type]
    with monkeypatch.context() as patch:
        patch.setattr(extract_module._Extractor, "_plain_def", lambda *_args: None)
        slow = extract(ir)  # type: ignore[arg-type]
    return fast, slow


def test_odd_layouts_copy_as_libcst_prints_them(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "odd.py"
    path.write_text(ODD_LAYOUTS)  # no newline at the end of the file
    fast, slow = _both(find_graphs(load_module(str(path)))["graph"].ir, monkeypatch)
    assert fast == slow
    text = {block.name: block.source for block in fast.blocks}
    assert text["two_spaces"].startswith("def two_spaces(x: int) -> dict[str, int]:\n    if x:")
    assert "# a comment between the decorator and the def\ndef between" in text["between"]


def test_with_a_graph_after_it_the_last_function_of_a_file_copies_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ops = tmp_path / "lastops.py"
    ops.write_text(textwrap.dedent('''\
        from operonx.core import op


        @op
        def last(x: int) -> dict[str, int]:
            return {"x": x}
            # trailing comment, indented'''))
    graph = tmp_path / "graph.py"
    graph.write_text(textwrap.dedent('''\
        from lastops import last
        from operonx.core import END, PARENT, START, GraphOp

        with GraphOp(name="g") as graph:
            START >> last(x=PARENT["x"]) >> END
        '''))
    fast, slow = _both(find_graphs(load_module(str(graph)))["graph"].ir, monkeypatch)
    assert fast == slow


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_golden_graphs_copy_the_same_either_way(case: object,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = case.abspath  # type: ignore[attr-defined]
    graphs = find_graphs(load_module(path))
    fast, slow = _both(next(iter(graphs.values())).ir, monkeypatch)
    assert fast == slow
