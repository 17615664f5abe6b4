"""Golden files: the IR after each pass and the generated modules, compared exactly.

Regenerate after an intended change with ``python -m tests.golden.regenerate``
(``make golden``), then review the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compiler.helpers import mypy_strict, ruff_check
from tests.golden.cases import CASES, REPO, Case, golden_path, kinds, render

HINT = "regenerate with `python -m tests.golden.regenerate` and review the diff"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_golden_matches(case: Case, kind: str) -> None:
    path = golden_path(case, kind)
    assert os.path.exists(path), f"missing {path}; {HINT}"
    with open(path, encoding="utf-8") as f:
        expected = f.read()
    assert render(case, kind) == expected, f"{os.path.relpath(path, REPO)} is stale; {HINT}"


def test_compiling_twice_is_byte_identical() -> None:
    case = CASES[0]
    assert render(case, "O2") == render(case, "O2")


def _golden_modules(tmp_path: Path) -> list[str]:
    files = []
    for case in CASES:
        for kind in kinds():
            if kind == "ir":
                continue
            target = tmp_path / f"{case.name}_{kind}.py"
            shutil.copy(golden_path(case, kind), target)
            files.append(str(target))
    return files


def test_golden_modules_pass_mypy_strict(tmp_path: Path) -> None:
    done = mypy_strict(_golden_modules(tmp_path), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_golden_modules_pass_ruff(tmp_path: Path) -> None:
    done = ruff_check(_golden_modules(tmp_path), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_output_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    script = ("import sys; from tests.golden.cases import CASES, render; "
              "sys.stdout.write(render(CASES[4], 'O2') + render(CASES[7], 'O0'))")
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": REPO}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=REPO, env=env, timeout=120, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1
