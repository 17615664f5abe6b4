"""``operonx graph``: Mermaid and dot text from the IR; SVG/PNG through Graphviz ``dot``."""

from __future__ import annotations

import os
import runpy
import stat
from pathlib import Path
from typing import Any

import pydot
import pytest

from operonx.graphviz import to_dot, to_mermaid
from operonx.ir.model import Graph
from tests.cli.helpers import FIXTURES, Invoke, diagnostic, line_of, run_cli, run_process


def ir_of(fixture: str, name: str = "graph") -> Graph:
    graph = runpy.run_path(str(FIXTURES / fixture))[name]
    ir: Graph = graph.ir
    return ir


# ------------------------------------------------------------------- renderers


def test_mermaid_shows_kinds_streams_collects_and_clusters() -> None:
    text = to_mermaid(ir_of("nested.py"))
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert 'n_each_item[/"each_item<br/>gen · stream"/]' in lines[3]
    assert '    n_double -->|"collect result"| n_total' in lines
    assert '    n_START --> n_each_item' in lines
    # Sub-graphs and loops are subgraphs with their own START/END; edges enter and leave them.
    assert any(line.strip().startswith('subgraph cluster_top__inner ["graph inner"]')
               for line in lines)
    assert any('["loop loop · until count >= 3"]' in line for line in lines)
    assert '    n_total --> n_inner__START' in lines
    assert '    n_inner__END --> n_END' in lines
    assert '    n_loop__increment -.->|"counter → count"| n_loop__END' in lines
    assert '    n_loop__END -.->|"repeat until count >= 3"| n_loop__START' in lines
    assert text.count("subgraph ") == text.count("\n        end") + text.count("\n    end")


def test_dot_is_well_formed_and_quotes_ids() -> None:
    text = to_dot(ir_of("nested.py"))
    assert text.startswith('digraph "pipeline" {\n')
    assert text.count("{") == text.count("}")
    assert '"n_each_item" [label="each_item\\ngen · stream", shape=parallelogram' in text
    assert '"n_double" -> "n_total" [label="collect result"];' in text
    assert 'subgraph "cluster_top__loop" {' in text
    assert '"n_loop__increment" -> "n_loop__END" [label="counter → count", style=dashed];' in text


def test_a_node_named_like_a_mermaid_keyword_gets_a_safe_id(tmp_path: Path) -> None:
    source = tmp_path / "kw.py"
    source.write_text(
        "from operonx.core import END, START, GraphOp, op\n"
        "@op\ndef end(v: int) -> dict[str, int]:\n    return {'v': v}\n"
        "with GraphOp(name='g') as graph:\n    e = end(v=1)\n    START >> e >> END\n")
    text = to_mermaid(runpy.run_path(str(source))["graph"].ir)
    assert "n_end[" in text
    assert "\n    end -->" not in text


# ------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(("fmt", "first"), [("mermaid", "flowchart TD"),
                                            ("dot", 'digraph "iterate" {')])
def test_text_formats_go_to_stdout(workdir: Path, invoke: Invoke, fmt: str, first: str) -> None:
    result = invoke("graph", "good.py", "--format", fmt)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == first
    assert "each_item" in result.stdout


def test_output_file(workdir: Path) -> None:
    result = run_cli("graph", "good.py", "--format", "dot", "-o", "graph.dot")
    assert (result.exit_code, result.stdout) == (0, "")
    assert (workdir / "graph.dot").read_text().startswith('digraph "iterate"')


def test_unknown_format_is_a_usage_error(workdir: Path) -> None:
    result = run_cli("graph", "good.py", "--format", "jpeg")
    assert result.exit_code == 2
    assert "mermaid" in result.stderr


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_images_without_dot_name_the_package(workdir: Path, fmt: str) -> None:
    empty = workdir / "empty-bin"
    empty.mkdir()
    result = run_process("graph", "good.py", "--format", fmt, "-o", f"g.{fmt}",
                         env={"PATH": str(empty)})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "Graphviz" in result.stderr
    assert "apt-get install graphviz" in result.stderr
    assert "brew install graphviz" in result.stderr
    assert not (workdir / f"g.{fmt}").exists()


def fake_dot(directory: Path, body: str) -> None:
    directory.mkdir()
    script = directory / "dot"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_images_are_piped_through_dot(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in `dot` that records its flag and input, so the plumbing is checked exactly.
    fake_dot(workdir / "bin", 'echo "$1" > dot.args; cat > dot.stdin; printf "<svg/>"')
    monkeypatch.setenv("PATH", f"{workdir / 'bin'}{os.pathsep}{os.environ['PATH']}")
    result = run_cli("graph", "good.py", "--format", "svg", "-o", "g.svg")
    assert result.exit_code == 0, result.stderr
    assert (workdir / "g.svg").read_text() == "<svg/>"
    assert (workdir / "dot.args").read_text().strip() == "-Tsvg"
    assert (workdir / "dot.stdin").read_text().startswith('digraph "iterate"')


def test_dot_failure_is_reported(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dot(workdir / "bin", 'echo "syntax error in line 1" >&2; exit 3')
    monkeypatch.setenv("PATH", f"{workdir / 'bin'}{os.pathsep}{os.environ['PATH']}")
    result = run_cli("graph", "good.py", "--format", "png", "-o", "g.png")
    assert result.exit_code == 1
    assert "syntax error in line 1" in result.stderr
    assert not (workdir / "g.png").exists()


def _all_of(graph: Any, kind: str) -> list[Any]:
    """Every node or edge of a parsed dot graph, its clusters' included."""
    found = list(getattr(graph, f"get_{kind}")())
    for sub in graph.get_subgraphs():
        found += _all_of(sub, kind)
    return found


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot on newer pyparsing
def test_dot_text_is_valid_graphviz() -> None:
    """Graphviz's own grammar (pydot's parser, so no binary is needed) reads the whole
    graph back: every node, every edge with its label, the nested clusters."""
    ir = ir_of("nested.py")
    (parsed,) = pydot.graph_from_dot_data(to_dot(ir))
    names = {n.get_name().strip('"') for n in _all_of(parsed, "nodes")}
    assert {"n_each_item", "n_double", "n_total", "n_loop__increment"} <= names
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')):
             (e.get_label() or "").strip('"') for e in _all_of(parsed, "edges")}
    assert edges[("n_double", "n_total")] == "collect result"
    assert edges[("n_loop__increment", "n_loop__END")] == "counter → count"
    clusters = [sub.get_name().strip('"') for sub in parsed.get_subgraphs()]
    assert "cluster_top__inner" in clusters or any(
        sub.get_name().strip('"') == "cluster_top__inner"
        for top in parsed.get_subgraphs() for sub in top.get_subgraphs())


def test_graph_errors_are_located(workdir: Path) -> None:
    result = run_cli("graph", "graph_error.py")
    assert result.exit_code == 1
    line = line_of("graph_error.py", "typo")
    assert diagnostic("graph_error.py", line).search(result.stderr), result.stderr
