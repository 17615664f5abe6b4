"""The command itself: version, help, usage errors, and that it stays cheap to start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from operonx import __version__
from tests.cli.helpers import REPO, Invoke, launchers, run_process


def test_version(invoke: Invoke) -> None:
    result = invoke("--version")
    assert (result.exit_code, result.stdout) == (0, f"operonx {__version__}\n")


@pytest.mark.parametrize("launcher", launchers(), ids=lambda argv: argv[-1])
def test_every_launcher_works(launcher: list[str]) -> None:
    result = run_process("--version", launcher=launcher)
    assert (result.exit_code, result.stdout) == (0, f"operonx {__version__}\n")


def test_help_lists_the_commands(invoke: Invoke) -> None:
    result = invoke("-h")
    assert result.exit_code == 0
    for name in ("compile", "explain", "graph", "run", "--debug", "--version"):
        assert name in result.stdout


def test_unknown_command_suggests_the_closest(invoke: Invoke) -> None:
    result = invoke("compil", "graph.py")
    assert result.exit_code == 2
    assert "No such command 'compil'. Did you mean 'compile'?" in result.stderr


def test_unknown_option_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("run", "graph.py", "--input", "{}")
    assert result.exit_code == 2
    assert "--inputs" in result.stderr  # click's own did-you-mean


def test_help_does_not_import_the_compiler() -> None:
    code = ("import sys; from operonx.cli import cli\n"
            "try:\n    cli.main(['--help'], prog_name='operonx')\n"
            "except SystemExit:\n    pass\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('compiler', 'libcst', 'jinja2'))\n"
            "print('HEAVY', heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "HEAVY []"
