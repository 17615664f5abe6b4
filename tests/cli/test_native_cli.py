"""``operonx compile --native``: the extension next to out.py, or exit 3 and a working out.py.

Each build here is a real mypyc build (the C compiler at its default -O3); the one that
succeeds runs only where a C compiler exists. The failures need no compiler.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.native import extension_path, missing_toolchain
from tests.cli.helpers import FIXTURES, diagnostic, run_cli, run_process

INPUTS = '{"numbers": [1, 2, 3]}'


def files(directory: Path) -> list[str]:
    """What is in ``directory`` besides the fixture graphs (a leftover would show here)."""
    fixtures = {p.name.removesuffix(".txt") for p in FIXTURES.iterdir()}
    return sorted(p.name for p in directory.iterdir()
                  if p.name not in fixtures and p.name != "__pycache__")


@pytest.mark.skipif(missing_toolchain() is not None, reason=f"no C toolchain: "
                                                            f"{missing_toolchain()}")
def test_native_build_is_what_import_loads(workdir: Path) -> None:
    result = run_cli("compile", "native_graph.py", "-o", "out.py", "--native")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ("note: mypyc could not compile double(), which runs as CPython "
                             "code inside the extension: break inside try/finally block is "
                             "unimplemented\n")
    extension = os.path.basename(extension_path("out.py"))
    assert files(workdir) == sorted(["out.py", extension])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    native = subprocess.run(
        [sys.executable, "-c", "import out, sys; print(out.__file__); sys.exit(out.main())",
         "--inputs", INPUTS], capture_output=True, text=True, env=env, timeout=60,
        check=False)
    pure = subprocess.run([sys.executable, "out.py", "--inputs", INPUTS], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert native.returncode == pure.returncode == 0, native.stderr
    loaded, output = native.stdout.splitlines()
    assert loaded == str(workdir / extension)  # `import out` took the extension
    assert json.loads(output) == json.loads(pure.stdout) == {"result": [2, 4, 6]}


def test_without_a_c_compiler_out_py_is_written_and_exit_is_3(workdir: Path) -> None:
    stale = Path(extension_path(str(workdir / "out.py")))
    stale.write_bytes(b"an extension built from an older out.py")
    result = run_process("compile", "good.py", "-o", "out.py", "--native",
                         env={"CC": "/nonexistent/cc"})
    assert result.exit_code == 3
    assert diagnostic("out.py").search(result.stderr), result.stderr
    assert "no C compiler found ('/nonexistent/cc'" in result.stderr
    assert "hint: out.py was written and works without it, as pure Python" in result.stderr
    assert files(workdir) == ["out.py"]  # written; the stale extension gone; no leftovers
    done = subprocess.run([sys.executable, "-c", "import out, sys; sys.exit(out.main())",
                           "--inputs", INPUTS], capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode, json.loads(done.stdout)) == (0, {"result": [2, 4, 6]})


def test_a_plain_compile_removes_an_older_extension(workdir: Path) -> None:
    stale = Path(extension_path(str(workdir / "out.py")))
    stale.write_bytes(b"an extension built from an older out.py")
    result = run_cli("compile", "good.py", "-o", "out.py")
    assert result.exit_code == 0, result.stderr
    assert f"note: removed {stale.name}, the native build of the old out.py" in result.stderr
    assert files(workdir) == ["out.py"]
    assert run_cli("compile", "good.py", "-o", "out.py").stderr == ""  # nothing to remove


def test_an_output_name_python_cannot_import(workdir: Path) -> None:
    result = run_cli("compile", "good.py", "-o", "my-graph.py", "--native",)
    assert result.exit_code == 3
    assert "'my-graph' is not a module name Python can import" in result.stderr
    assert "hint: my-graph.py was written and works without it" in result.stderr
    assert files(workdir) == ["my-graph.py"]


@pytest.mark.parametrize("flags", [("--check",), ("--target", "ray")])
def test_native_goes_with_neither_check_nor_ray(workdir: Path, flags: tuple[str, ...]) -> None:
    result = run_cli("compile", "good.py", "-o", "out.py", "--native", *flags)
    assert result.exit_code == 2
    assert "--native builds the local module" in result.stderr
    assert files(workdir) == []


def test_help_documents_native() -> None:
    result = run_cli("compile", "--help")
    assert "--native" in result.stdout and "Exit 3" in result.stdout
