"""Generated Ray modules: golden text for two graphs, ``mypy --strict`` and ``ruff`` for all.

Regenerate the golden files after an intended change with ``make golden`` and review
the diff. These tests need no cluster: they read and type-check generated code.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compiler import compile_file, compile_graph
from tests.compiler import oplib
from tests.compiler.test_properties import STEPS, build
from tests.golden.cases import RAY_CASES, RAY_TARGET_CASES, REPO, Case, golden_path, render

HINT = "regenerate with `make golden` and review the diff"
PINNED = [c for c in RAY_TARGET_CASES if c.name in RAY_CASES]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("case", PINNED, ids=lambda c: c.name)
def test_golden_ray_module_matches(case: Case) -> None:
    path = golden_path(case, "ray")
    assert os.path.exists(path), f"missing {path}; {HINT}"
    with open(path, encoding="utf-8") as f:
        assert render(case, "ray") == f.read(), f"{os.path.relpath(path, REPO)} is stale; {HINT}"


def test_ray_output_does_not_depend_on_hash_seed() -> None:
    script = ("import sys; from tests.golden.cases import RAY_TARGET_CASES, render; "
              "sys.stdout.write(''.join(render(c, 'ray') for c in RAY_TARGET_CASES))")
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": REPO}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=REPO, env=env, timeout=120, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Every golden graph compiled for Ray (-O2, and -O0 for the pinned ones), the pinned golden
    files, and random graphs, as files."""
    directory = tmp_path_factory.mktemp("ray-modules")
    files = []
    for case in RAY_TARGET_CASES:
        for level in (2, 0) if case in PINNED else (2,):
            target = directory / f"{case.name}_ray_O{level}.py"
            result = compile_file(os.path.join(REPO, case.path), opt_level=level, target="ray")
            target.write_text(result.source, encoding="utf-8")
            files.append(str(target))
    for case in PINNED:
        shutil.copy(golden_path(case, "ray"), directory / f"{case.name}_golden_ray.py")
        files.append(str(directory / f"{case.name}_golden_ray.py"))
    rng = random.Random(7)  # and random shapes: nested streams, loops, sub-graphs, async ops
    for i in range(8):
        graph = build([rng.choice(STEPS) for _ in range(rng.randint(1, 6))], rng.choice([-1, 2]))
        source = compile_graph(graph, source_path=oplib.__file__, graph_name="prop",
                               target="ray").source
        (directory / f"random_{i}_ray.py").write_text(source, encoding="utf-8")
        files.append(str(directory / f"random_{i}_ray.py"))
    return files


def test_ray_modules_pass_mypy_strict(modules: list[str], tmp_path: Path) -> None:
    pytest.importorskip("ray")  # mypy reads ray's own type hints
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir", str(tmp_path / ".mypy"), *modules],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ray_modules_pass_ruff(modules: list[str], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select",
                           "E,F,W,I,B,UP,SIM,RUF", "--line-length", "100", "--target-version",
                           "py311", "--no-cache", *modules],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
