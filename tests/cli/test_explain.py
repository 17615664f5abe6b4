"""``operonx explain``: the IR before and after each pass, readable, on stdout."""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import Invoke, diagnostic, line_of, run_cli


def test_explain_prints_the_passes(workdir: Path, invoke: Invoke) -> None:
    result = invoke("explain", "good.py")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.endswith("\n")
    for name in ("iterate", "each_item", "double"):
        assert name in result.stdout


def test_explain_picks_a_graph(workdir: Path) -> None:
    result = run_cli("explain", "two_graphs.py", "--graph", "negating")
    assert result.exit_code == 0, result.stderr
    assert "negate" in result.stdout


def test_explain_reports_graph_errors(workdir: Path) -> None:
    result = run_cli("explain", "graph_error.py")
    assert result.exit_code == 1
    assert diagnostic("graph_error.py", line_of("graph_error.py", "typo")).search(result.stderr)
