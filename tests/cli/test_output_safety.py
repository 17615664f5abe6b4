"""Class 9 of issue 8: ``-o`` writes only the regular file it names, never a source.

``operonx compile g.py -o g.py`` used to replace the user's graph with the
compiled module (exit 0), and ``-o`` naming a device or a symlink replaced it
with a regular file. Each is now a usage error (exit 2) naming the option, and
nothing is written or replaced.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler.errors import CompileError
from operonx import cli as cli_module
from tests.cli.helpers import Invoke, Result, run_cli

OPS = '''from operonx.core import op


@op
def double(value: int) -> dict[str, int]:
    return {"result": value * 2}
'''
GRAPH = '''from operonx.core import END, PARENT, START, GraphOp
from ops import double

with GraphOp(name="g") as graph:
    step = double(value=PARENT["value"])
    START >> step >> END
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """graph.py reading its op from the sibling module ops.py, as the working directory."""
    (tmp_path / "graph.py").write_text(GRAPH)
    (tmp_path / "ops.py").write_text(OPS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry's type and content (links and special files by kind only)."""
    found: dict[str, tuple[int, bytes | None]] = {}
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith((".mypy", "__pycache__")):
            continue
        mode = os.lstat(entry).st_mode
        content = entry.read_bytes() if stat.S_ISREG(mode) else None
        found[entry.name] = (stat.S_IFMT(mode), content)
    return found


def _refused(result: Result, shown: str, words: str) -> None:
    stderr = result.stderr
    assert result.exit_code == 2, stderr
    where = cli_module.display_path(shown)
    assert stderr.startswith(f"{where}: error: -o {shown} "), stderr
    assert words in stderr
    assert "Traceback" not in stderr


COMMANDS = {
    "compile": lambda out: ("compile", "graph.py", "-o", out),
    "graph": lambda out: ("graph", "graph.py", "-o", out),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("spelling", ["graph.py", "./graph.py", "{abs}/graph.py",
                                      "sub/../graph.py"])
def test_class9_output_over_the_graph_source_is_refused(
        project: Path, invoke: Invoke, command: str, spelling: str) -> None:
    (project / "sub").mkdir()
    before = _snapshot(project)
    out = spelling.format(abs=project)
    result = invoke(*COMMANDS[command](out))
    _refused(result, out, "the graph's own source")
    assert _snapshot(project) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_class9_output_over_a_module_the_ops_came_from_is_refused(
        project: Path, invoke: Invoke, command: str) -> None:
    before = _snapshot(project)
    result = invoke(*COMMANDS[command]("ops.py"))
    _refused(result, "ops.py", "a source file this command read")
    assert _snapshot(project) == before


def test_class9_a_hard_link_to_the_source_is_the_source(project: Path) -> None:
    os.link(project / "graph.py", project / "alias.py")
    before = _snapshot(project)
    _refused(run_cli("compile", "graph.py", "-o", "alias.py"), "alias.py",
             "the graph's own source")
    assert _snapshot(project) == before


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("target", ["out.py", "missing.py", "graph.py"])
def test_class9_a_symlink_is_refused_and_neither_it_nor_its_target_changes(
        project: Path, invoke: Invoke, command: str, target: str) -> None:
    (project / "out.py").write_text("# the link's target\n")
    os.symlink(target, project / "link.py")
    before = _snapshot(project)
    result = invoke(*COMMANDS[command]("link.py"))
    _refused(result, "link.py", f"is a symbolic link (to {target})")
    assert _snapshot(project) == before


@pytest.fixture
def special(project: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A FIFO, a socket or a character device in the project, with its description."""
    kind = request.param
    path = project / "special"
    if kind == "fifo":
        os.mkfifo(path)
        yield "special", "a named pipe (FIFO)"
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
            yield "special", "a socket"
    else:
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null twin
        except PermissionError:
            pytest.skip("creating a device node needs CAP_MKNOD")
        yield "special", "a character device"


@pytest.mark.parametrize("special", ["fifo", "socket", "chardev"], indirect=True)
@pytest.mark.parametrize("command", COMMANDS)
def test_class9_a_non_regular_file_is_refused_and_left_alone(
        project: Path, special: tuple[str, str], command: str) -> None:
    name, kind = special
    before = _snapshot(project)
    result = run_cli(*COMMANDS[command](name))
    _refused(result, name, f"is {kind}, not a regular file")
    assert _snapshot(project) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_class9_a_directory_is_refused(project: Path, command: str) -> None:
    (project / "out").mkdir()
    result = run_cli(*COMMANDS[command]("out"))
    assert result.exit_code == 2
    assert "directory" in result.stderr
    assert list((project / "out").iterdir()) == []


def test_class9_ordinary_outputs_still_work_and_new_files_get_normal_permissions(
        project: Path) -> None:
    old_umask = os.umask(0o027)
    try:
        assert run_cli("compile", "graph.py", "-o", "out.py").exit_code == 0
        assert run_cli("graph", "graph.py", "-o", "g.mmd").exit_code == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(project / "out.py").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(project / "g.mmd").st_mode) == 0o640
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".")) == []
    # Writing over a previous output is what -o is for.
    assert run_cli("compile", "graph.py", "-o", "out.py", "-O0").exit_code == 0
    assert "at -O0" in (project / "out.py").read_text()


def test_class9_write_atomic_itself_refuses_links(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("keep")
    os.symlink("target", tmp_path / "link")
    with pytest.raises(CompileError) as info:
        cli_module.write_atomic(str(tmp_path / "link"), b"new")
    assert getattr(info.value, "exit_code", None) == 2
    assert (tmp_path / "target").read_text() == "keep"
    assert os.path.islink(tmp_path / "link")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]
