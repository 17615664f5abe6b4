"""The generated module runs where ``operonx`` cannot be imported, and its CLI works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compiler import compile_file
from tests.golden.cases import CASES

BLOCKER = '''
import importlib.abc, runpy, sys

class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "operonx" or name.startswith(("operonx.", "compiler")):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, _Blocker())
try:
    import operonx  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the blocker did not block operonx")
module, *args = sys.argv[1:]
sys.argv = [module, *args]
runpy.run_path(module, run_name="__main__")
'''


def _run(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "out.py").write_text(source)
    (tmp_path / "blocker.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the repo is not on it
    return subprocess.run([sys.executable, "blocker.py", "out.py", *args], env=env,
                          capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)


@pytest.mark.parametrize("level", [0, 2])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_runs_without_operonx(case: object, level: int, tmp_path: Path) -> None:
    from compiler.frontend.load import find_graphs, load_module, select_graph
    from operonx.core import Engine

    inputs = case.inputs[0]  # type: ignore[attr-defined]
    path = case.abspath  # type: ignore[attr-defined]
    source = compile_file(path, opt_level=level).source
    assert "operonx" not in [line.split()[1].split(".")[0] for line in source.splitlines()
                             if line.startswith(("import ", "from "))]
    done = _run(tmp_path, source, "--inputs", json.dumps(inputs))
    assert done.returncode == 0, done.stderr
    _name, graph = select_graph(find_graphs(load_module(path)), None, path)
    expected = Engine(graph).run_sync(inputs)
    assert json.loads(done.stdout) == json.loads(json.dumps(expected))


def test_inputs_from_a_file_and_errors(tmp_path: Path) -> None:
    source = compile_file(CASES[0].abspath).source
    (tmp_path / "in.json").write_text('{"numbers": [4, 5]}')
    done = _run(tmp_path, source, "--inputs", "@in.json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"result": [8, 10]}
    done = _run(tmp_path, source, "--inputs", '{"wrong": 1}')
    assert done.returncode == 1
    assert "InputError" in done.stderr and "missing input(s) 'numbers'" in done.stderr
    done = _run(tmp_path, source, "--inputs", "[1]")
    assert done.returncode == 2
    done = _run(tmp_path, source, "--inputs", '{"numbers": [1]}', "--on-error", "collect")
    assert json.loads(done.stdout) == {"result": [2], "$errors": []}
