"""The generated Ray module as a module: standalone, its own error classes, its reserved names."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import operonx.errors
from compiler import compile_file
from compiler.targets.ray import RESERVED
from compiler.targets.ray.generate import RUNTIME
from operonx.core import Engine
from tests.compiler.helpers import load_source
from tests.compiler.test_standalone import BLOCKER
from tests.golden.cases import RAY_TARGET_CASES
from tests.ray.cluster import Cluster

LOOP = next(c for c in RAY_TARGET_CASES if c.name == "loop_in_graph")
ERRORS = ("OperonxError", "GraphError", "InputError", "OpError", "LoopLimitExceeded")
# What the plan writer names, next to the runtime's fixed names.
GENERATED_PREFIXES = ("_stage_", "_until_", "_REGION_", "_SCOPE_")


def test_runs_where_operonx_cannot_be_imported(tmp_path: Path, cluster: Cluster) -> None:
    source = compile_file(LOOP.abspath, target="ray").source
    imported = [line.split()[1].split(".")[0] for line in source.splitlines()
                if line.startswith(("import ", "from "))]
    assert "operonx" not in imported and "ray" in imported
    (tmp_path / "out.py").write_text(source)
    (tmp_path / "blocker.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    inputs = LOOP.inputs[0]
    done = subprocess.run([sys.executable, "blocker.py", "out.py", "--inputs", json.dumps(inputs)],
                          env={**env, "RAY_ADDRESS": cluster.address}, capture_output=True,
                          text=True, cwd=tmp_path, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    from compiler.frontend.load import find_graphs, load_module, select_graph

    graph = select_graph(find_graphs(load_module(LOOP.abspath)), None, LOOP.abspath)[1]
    assert json.loads(done.stdout) == Engine(graph).run_sync(inputs)


def test_error_classes_match_operonx(tmp_path: Path) -> None:
    pytest.importorskip("ray")  # the module imports it
    module = load_source(compile_file(LOOP.abspath, target="ray").source, tmp_path, "errors")
    for name in ERRORS:
        mine, theirs = getattr(module, name), getattr(operonx.errors, name)
        assert [c.__name__ for c in mine.__mro__] == [c.__name__ for c in theirs.__mro__]
        if name != "OperonxError":  # the base class takes Exception's arguments
            assert inspect.signature(mine) == inspect.signature(theirs)
        assert mine is not theirs


def test_every_runtime_name_is_reserved() -> None:
    """Copied code is renamed away from RESERVED; a runtime name missing there could clash."""
    for case in RAY_TARGET_CASES:
        source = compile_file(case.abspath, target="ray").source
        runtime = source[source.index("# -------- errors and frames"):]  # after the copied code
        for node in ast.parse(runtime).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            else:
                continue
            for name in names:
                assert name in RUNTIME or name.startswith(GENERATED_PREFIXES), (case.name, name)
    assert RUNTIME <= RESERVED


def test_inputs_and_result_are_the_local_modules(tmp_path: Path) -> None:
    """The same TypedDicts as the local target writes: a user can switch targets freely."""
    import typing

    pytest.importorskip("ray")  # the module imports it

    for case in RAY_TARGET_CASES:
        local = load_source(compile_file(case.abspath).source, tmp_path, "local")
        on_ray = load_source(compile_file(case.abspath, target="ray").source, tmp_path, "ray")
        for name in ("Inputs", "Result", "ErrorInfo"):
            want = typing.get_type_hints(getattr(local, name), include_extras=True)
            got = typing.get_type_hints(getattr(on_ray, name), include_extras=True)
            own = re.compile(r"_operonx_compiled_\w+\.")  # each module names its ErrorInfo
            assert own.sub("", repr(got)) == own.sub("", repr(want)), (case.name, name)
            assert getattr(on_ray, name).__required_keys__ == \
                getattr(local, name).__required_keys__
