"""Small user projects written to a temporary directory, run by the Engine and compiled.

A regression test states a user's files as text (``graph.py`` first, then its
sibling modules), and gets back the Engine's graph and the compiled module at
each optimisation level, loaded from real files exactly as a user would.
"""

from __future__ import annotations

import subprocess
import textwrap
import types
from pathlib import Path
from typing import Any

from compiler import compile_file
from compiler.frontend.load import find_graphs, load_module, select_graph
from tests.compiler import helpers
from tests.compiler.helpers import assert_equivalent, load_source

LEVELS = (0, 1, 2)
HEAD = "from operonx.core import END, PARENT, START, GraphOp, op\n"


def write_project(directory: Path, files: dict[str, str]) -> str:
    """Write dedented sources; the path of the first one (the graph file)."""
    for name, source in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return str(directory / next(iter(files)))


def engine_graph(path: str) -> Any:
    """The graph the Engine runs: ``path`` imported the way ``operonx run`` does."""
    return select_graph(find_graphs(load_module(path)), None, path)[1]


def compiled(path: str, level: int, directory: Path) -> types.ModuleType:
    """``operonx compile path -O<level>``, imported from a real file in ``directory``."""
    return load_source(compile_file(path, opt_level=level).source, directory, f"O{level}")


def each_level(directory: Path, source: str, *inputs: dict[str, Any],
               name: str = "graph_src") -> list[types.ModuleType]:
    """Write ``source`` as ``name.py``, compile it at every level and check each module
    against the Engine on every one of ``inputs``; the modules, -O0 first."""
    path = write_project(directory, {f"{name}.py": source})
    graph = engine_graph(path)
    modules = []
    for level in LEVELS:
        module = compiled(path, level, directory)
        for given in inputs:
            assert_equivalent(graph, module, given)
        modules.append(module)
    return modules


def mypy_strict(path: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` over a compiled module written to ``directory``."""
    return helpers.mypy_strict([path], directory)
