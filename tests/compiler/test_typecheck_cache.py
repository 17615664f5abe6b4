"""The type check's mypy: cached in the user's cache directory, isolated from mypy configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mypy.version
import pytest

from compiler.typecheck import CACHE_ENV_VAR, cache_root, probe
from compiler.typecheck.cache import cache_dir

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "compiler" / "fixtures" / "typecheck" / "bad"


def test_cache_lives_in_the_users_cache_directory(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == str(tmp_path / "xdg" / "operonx" / "mypy")
    assert cache_dir("9.9") == str(tmp_path / "xdg" / "operonx" / "mypy" / "9.9")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: must be absolute
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == str(tmp_path / "home" / ".cache" / "operonx" / "mypy")
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert cache_dir("9.9") == str(tmp_path / "mine")


def test_an_unusable_cache_directory_means_no_cache(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(CACHE_ENV_VAR, str(blocker / "cache"))
    assert cache_dir(mypy.version.__version__) == os.devnull


def test_a_second_run_loads_the_standard_library_from_the_cache(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    source = "from collections.abc import Iterator\nx: Iterator[int] = iter([1])\n"
    monkeypatch.setattr(probe, "_last", None)
    cold = probe.run_probe(source, ())
    assert "builtins" not in cold.from_cache  # analysed, and written to the cache
    assert any((tmp_path / "cache").rglob("*")), "nothing was cached"
    monkeypatch.setattr(probe, "_last", None)  # as in a new process
    warm = probe.run_probe(source, ())
    assert {"builtins", "typing", "collections.abc"} <= warm.from_cache
    assert probe.PROBE_MODULE not in warm.from_cache  # the probe itself is always checked


def test_user_mypy_configuration_is_not_picked_up(tmp_path: Path) -> None:
    """A mypy.ini in the working directory (a plugin that does not exist, another Python)."""
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nplugins = no_such_plugin\npython_version = 3.8\nfollow_imports = error\n"
        "disallow_any_expr = True\n")
    (tmp_path / "setup.cfg").write_text("[mypy]\nplugins = no_such_plugin_either\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), CACHE_ENV_VAR: str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "operonx", "check", str(BAD / "wrong_scalar.py")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        'error: double(value=...) expects int, got str from each_word["word"]'), done.stderr
    assert "warning" not in done.stderr
