"""Shared helpers: a scratch working directory holding the fixture graphs, and the CLI runner."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from operonx.cli import cli

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def fixture_path(name: str) -> Path:
    """``name.py.txt`` stands for ``name.py`` where linters must not read it (syntax errors)."""
    path = FIXTURES / name
    return path if path.exists() else FIXTURES / f"{name}.txt"


def line_of(fixture: str, marker: str) -> int:
    """The 1-based line of ``fixture`` carrying the comment ``# <- marker``."""
    lines = fixture_path(fixture).read_text().splitlines()
    hits = [n for n, text in enumerate(lines, 1) if text.rstrip().endswith(f"# <- {marker}")]
    assert len(hits) == 1, f"marker {marker!r} in {fixture}: {hits}"
    return hits[0]


def diagnostic(path: str, line: int | None = None) -> re.Pattern[str]:
    """``path:LINE:COL: error:`` at the start of a line (``path: error:`` when line is None)."""
    where = re.escape(path) + (rf":{line}:\d+" if line is not None else "")
    return re.compile(rf"^{where}: error: ", re.MULTILINE)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


Invoke = Callable[..., Result]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the fixtures as the working directory, so paths in messages are bare names."""
    for source in [*FIXTURES.glob("*.py"), *FIXTURES.glob("*.py.txt")]:
        shutil.copy(source, tmp_path / source.name.removesuffix(".txt"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(*args: str, input: str | None = None) -> Result:
    """In process, through ``click.testing.CliRunner``."""
    result = CliRunner().invoke(cli, list(args), input=input, prog_name="operonx")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def launchers() -> list[list[str]]:
    found = [[sys.executable, "-m", "operonx"]]
    script = shutil.which("operonx")
    if script is not None:
        found.append([script])
    return found


def run_process(*args: str, launcher: list[str] | None = None, input: str | None = None,
                env: dict[str, str] | None = None) -> Result:
    """A real ``python -m operonx`` (or installed ``operonx``) subprocess."""
    base = {k: v for k, v in os.environ.items() if k != "OPERONX_DEBUG"}
    full_env = {**base, "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run([*(launcher or launchers()[0]), *args], capture_output=True,
                          text=True, input=input, env=full_env, timeout=60, check=False)
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(params=["runner", "process"])
def invoke(request: pytest.FixtureRequest) -> Invoke:
    """Each CLI test runs twice: through CliRunner and as a real subprocess."""
    return run_cli if request.param == "runner" else run_process
