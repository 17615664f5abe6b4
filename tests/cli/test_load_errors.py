"""Errors in graph.py itself: every command reports them the same way, located, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import Invoke, diagnostic, line_of, run_cli, run_process

# Every command that loads a graph file, with the arguments it needs besides the file.
COMMANDS = {
    "compile": ["-o", "out.py"],
    "explain": [],
    "graph": ["--format", "dot", "-o", "out.py"],
    "run": ["--inputs", "{}"],
}


def command(name: str, source: str, *extra: str) -> list[str]:
    return [name, source, *COMMANDS[name], *extra]


@pytest.mark.parametrize("name", COMMANDS)
def test_syntax_error_is_located(workdir: Path, name: str) -> None:
    result = run_cli(*command(name, "syntax_error.py"))
    assert result.exit_code == 1
    assert diagnostic("syntax_error.py", line_of("syntax_error.py", "syntax")).search(
        result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "out.py").exists()


@pytest.mark.parametrize("name", COMMANDS)
def test_import_time_exception_points_at_the_users_frame(workdir: Path, name: str) -> None:
    result = run_cli(*command(name, "import_error.py"))
    assert result.exit_code == 1
    assert diagnostic("import_error.py", line_of("import_error.py", "raise")).search(
        result.stderr), result.stderr
    assert "settings.toml is missing" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_graph_error_is_located_with_its_hint(workdir: Path, name: str) -> None:
    result = run_cli(*command(name, "graph_error.py"))
    assert result.exit_code == 1
    assert diagnostic("graph_error.py", line_of("graph_error.py", "typo")).search(
        result.stderr), result.stderr
    assert "hint: did you mean 'result'?" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_no_graph_found(workdir: Path, name: str) -> None:
    result = run_cli(*command(name, "no_graph.py"))
    assert result.exit_code == 1
    assert result.stderr.startswith("no_graph.py:1:1: error:"), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_several_graphs_without_graph_option_lists_them(workdir: Path, name: str) -> None:
    result = run_cli(*command(name, "two_graphs.py"))
    assert result.exit_code == 2  # a usage error: --graph is missing
    # Located where the ambiguity begins: the second graph's `with` line.
    assert result.stderr.startswith("two_graphs.py:20:1: error:"), result.stderr
    assert "doubling (line 16)" in result.stderr and "negating (line 20)" in result.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_unknown_graph_name_suggests_the_closest(workdir: Path, name: str) -> None:
    result = run_cli(*command(name, "two_graphs.py", "--graph", "doublng"))
    assert result.exit_code == 2
    assert result.stderr.startswith("two_graphs.py:1:1: error:"), result.stderr
    assert "did you mean 'doubling'" in result.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_missing_file_is_a_usage_error(workdir: Path, name: str) -> None:
    result = run_cli(*command(name, "missing.py"))
    assert result.exit_code == 2
    assert diagnostic("missing.py").search(result.stderr) or result.stderr.startswith(
        "missing.py"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "out.py").exists()


def test_graph_option_picks_one(workdir: Path) -> None:
    result = run_cli("run", "two_graphs.py", "--graph", "negating", "--inputs", '{"value": 4}')
    assert (result.exit_code, result.stdout.strip()) == (0, '{"result": -4}'), result.stderr


# ---------------------------------------------------------------- real subprocesses


@pytest.mark.parametrize("name", ["compile", "graph"])
@pytest.mark.parametrize(("fixture", "marker"), [
    ("syntax_error.py", "syntax"),
    ("import_error.py", "raise"),
    ("graph_error.py", "typo"),
])
def test_subprocess_reports_located_errors_without_traceback(
        workdir: Path, fixture: str, marker: str, name: str) -> None:
    result = run_process(*command(name, fixture))
    assert result.exit_code == 1
    assert diagnostic(fixture, line_of(fixture, marker)).search(result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "out.py").exists()


def test_debug_shows_the_traceback(workdir: Path, invoke: Invoke) -> None:
    result = invoke("--debug", "run", "import_error.py")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert diagnostic("import_error.py", line_of("import_error.py", "raise")).search(
        result.stderr), result.stderr


def test_debug_from_the_environment(workdir: Path) -> None:
    result = run_process("run", "import_error.py", env={"OPERONX_DEBUG": "1"})
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
