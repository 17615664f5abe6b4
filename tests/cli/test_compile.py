"""``operonx compile``: writes atomically, leaves out.py alone on any error, ``--check``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from operonx import cli as cli_module
from operonx.errors import GraphError, OperonxError
from tests.cli.helpers import Invoke, diagnostic, line_of, run_cli

OLD = "# an existing out.py that a failed compile must not touch\n"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".out.py"))


def test_compile_writes_a_module_that_runs(workdir: Path, invoke: Invoke) -> None:
    result = invoke("compile", "good.py", "-o", "out.py")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    source = (workdir / "out.py").read_text()
    assert "import operonx" not in source
    done = subprocess.run([sys.executable, "out.py", "--inputs", '{"numbers": [1, 2, 3]}'],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert '"result": [2, 4, 6]' in done.stdout
    assert leftovers(workdir) == []


@pytest.mark.parametrize("flag", ["-O0", "-O1", "-O2"])
def test_opt_levels_are_accepted(workdir: Path, flag: str) -> None:
    result = run_cli("compile", "good.py", "-o", "out.py", flag)
    assert result.exit_code == 0, result.stderr
    assert (workdir / "out.py").exists()


def test_bad_opt_level_is_a_usage_error(workdir: Path, invoke: Invoke) -> None:
    result = invoke("compile", "good.py", "-o", "out.py", "-O3")
    assert result.exit_code == 2
    assert "-O" in result.stderr
    assert not (workdir / "out.py").exists()


def test_output_is_required(workdir: Path) -> None:
    result = run_cli("compile", "good.py")
    assert result.exit_code == 2
    assert "-o" in result.stderr


@pytest.mark.parametrize("fixture", ["syntax_error.py", "import_error.py", "graph_error.py",
                                     "no_graph.py", "two_graphs.py", "missing.py"])
def test_a_failed_compile_leaves_out_py_as_it_was(workdir: Path, invoke: Invoke,
                                                  fixture: str) -> None:
    (workdir / "out.py").write_text(OLD)
    before = os.stat(workdir / "out.py")
    result = invoke("compile", fixture, "-o", "out.py")
    assert result.exit_code in (1, 2)
    assert result.stderr.startswith(fixture), result.stderr
    assert (workdir / "out.py").read_text() == OLD
    assert os.stat(workdir / "out.py").st_mtime_ns == before.st_mtime_ns
    assert leftovers(workdir) == []


def test_graph_error_message_is_located(workdir: Path) -> None:
    result = run_cli("compile", "graph_error.py", "-o", "out.py")
    assert diagnostic("graph_error.py", line_of("graph_error.py", "typo")).search(result.stderr)


def test_unwritable_output_directory_is_a_usage_error(workdir: Path) -> None:
    result = run_cli("compile", "good.py", "-o", "no/such/dir/out.py")
    assert result.exit_code == 2
    assert diagnostic("no/such/dir/out.py").search(result.stderr), result.stderr
    assert not (workdir / "no").exists()


def test_output_that_is_a_directory_is_a_usage_error(workdir: Path) -> None:
    (workdir / "out.py").mkdir()
    result = run_cli("compile", "good.py", "-o", "out.py")
    assert result.exit_code == 2


def test_check_reports_missing_stale_and_fresh(workdir: Path, invoke: Invoke) -> None:
    missing = invoke("compile", "good.py", "-o", "out.py", "--check")
    assert missing.exit_code == 1
    assert diagnostic("out.py").search(missing.stderr), missing.stderr
    assert not (workdir / "out.py").exists()

    assert invoke("compile", "good.py", "-o", "out.py").exit_code == 0
    fresh = invoke("compile", "good.py", "-o", "out.py", "--check")
    assert (fresh.exit_code, fresh.stdout) == (0, ""), fresh.stderr

    (workdir / "out.py").write_text(OLD)
    stale = invoke("compile", "good.py", "-o", "out.py", "--check")
    assert stale.exit_code == 1
    assert "stale" in stale.stderr
    assert (workdir / "out.py").read_text() == OLD  # --check writes nothing


def test_recompiling_is_byte_identical(workdir: Path) -> None:
    assert run_cli("compile", "good.py", "-o", "a.py").exit_code == 0
    assert run_cli("compile", "good.py", "-o", "b.py").exit_code == 0
    assert (workdir / "a.py").read_bytes() == (workdir / "b.py").read_bytes()


# ------------------------------------------------------------------ write_atomic


def test_write_atomic_replaces_and_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.py"
    target.write_text(OLD)
    target.chmod(0o640)
    cli_module.write_atomic(str(target), b"new\n")
    assert target.read_bytes() == b"new\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.py"]


def test_write_atomic_failure_leaves_the_old_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.py"
    target.write_text(OLD)

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(Exception, match="No space left on device") as caught:
        cli_module.write_atomic(str(target), b"new\n")
    assert getattr(caught.value, "exit_code", None) == 2
    assert target.read_text() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.py"]


def test_write_atomic_interrupted_leaves_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        cli_module.write_atomic(str(tmp_path / "out.py"), b"new\n")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- extraction refusals


@pytest.mark.parametrize(("fixture", "marker"), [("refusal_operonx.py", "refusal"),
                                                 ("refusal_closure.py", "closure")])
def test_extraction_refusals_are_located_and_write_nothing(
        workdir: Path, invoke: Invoke, fixture: str, marker: str) -> None:
    (workdir / "out.py").write_text(OLD)
    result = invoke("compile", fixture, "-o", "out.py")
    assert result.exit_code == 1
    assert diagnostic(fixture, line_of(fixture, marker)).search(result.stderr), result.stderr
    assert "hint: " in result.stderr
    assert "Traceback" not in result.stderr
    assert (workdir / "out.py").read_text() == OLD
    assert leftovers(workdir) == []


def test_refused_graphs_still_run_through_the_engine(workdir: Path) -> None:
    result = run_cli("run", "refusal_closure.py", "--inputs", '{"value": 2}')
    assert (result.exit_code, result.stdout.strip()) == (0, '{"result": 6}'), result.stderr


# ------------------------------------------- errors raised past the loader, by any pass


@pytest.mark.parametrize(("exc", "expected"), [
    (GraphError("a cycle through 'gen'", "good.py", 18, "break it with .collect()"),
     "good.py:18:5: error: a cycle through 'gen'\n  hint: break it with .collect()\n"),
    (OperonxError("something odd"), "error: something odd\n"),
])
def test_errors_raised_by_a_pass_are_diagnostics(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                 exc: Exception, expected: str) -> None:
    import compiler

    def fail(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(compiler, "compile_file", fail)
    (workdir / "out.py").write_text(OLD)
    result = run_cli("compile", "good.py", "-o", "out.py")
    assert (result.exit_code, result.stderr) == (1, expected)
    assert (workdir / "out.py").read_text() == OLD
