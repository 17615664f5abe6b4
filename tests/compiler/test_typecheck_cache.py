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


def test_the_check_leaves_the_garbage_collector_as_it_found_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """mypy's build sets its own collector thresholds and switches the collector on; a
    compile pauses it (and a user's process may have tuned it)."""
    import gc

    monkeypatch.setattr(probe, "_last", None)
    before = gc.get_threshold()
    gc.set_threshold(1234, 5, 6)
    gc.disable()
    try:
        probe.run_probe("x: int = 1\n", ())
        assert gc.get_threshold() == (1234, 5, 6)
        assert not gc.isenabled()
    finally:
        gc.set_threshold(*before)
        gc.enable()


def test_a_big_probe_is_let_go_once_the_check_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    """A big graph's probe (mypy's trees, every expression's type) must not outlive the
    check: neither in the cache of the last probe nor through mypy's process-global state."""
    from mypy.modules_state import modules_state

    monkeypatch.setattr(probe, "_last", None)
    small = probe.run_probe("x: int = 1\n", ())
    assert probe._last is not None and probe._last[1] is small
    assert not probe.release(small)  # kept for the next compile of the same graph
    big_source = "".join(f"def f_{i}(x: int) -> int:\n    return x + {i}\n\n"
                         for i in range(probe.KEEP_PROBE_CHARS // 30))
    big = probe.run_probe(big_source, ())
    assert probe._last is None
    assert modules_state.modules.get(probe.PROBE_MODULE) is big.tree
    assert probe.release(big)
    assert probe.PROBE_MODULE not in modules_state.modules
