"""``operonx compile --target ray`` and ``python out.py``: a separate driver process, connected
to the session's cluster through ``RAY_ADDRESS``, ``--address``, or finding it on this machine;
and, with no cluster anywhere, starting one of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.cli.helpers import FIXTURES, run_cli
from tests.ray.cluster import Cluster

INPUTS = '{"numbers": [1, 2, 3]}'


@pytest.fixture
def compiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``good.py`` (the CLI tests' fixture graph) compiled for Ray into ``tmp_path/out.py``."""
    (tmp_path / "good.py").write_text((FIXTURES / "good.py").read_text())
    monkeypatch.chdir(tmp_path)
    result = run_cli("compile", "good.py", "-o", "out.py", "--target", "ray")
    assert result.exit_code == 0, result.stderr
    return tmp_path / "out.py"


def run_module(module: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, str(module), "--inputs", INPUTS, *args],
                          capture_output=True, text=True, timeout=180, check=False,
                          env={**environ, **env}, cwd=module.parent)


def result_of(done: subprocess.CompletedProcess[str]) -> object:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_out_py_connects_through_ray_address(compiled: Path, cluster: Cluster) -> None:
    done = run_module(compiled, RAY_ADDRESS=cluster.address)
    assert result_of(done) == {"result": [2, 4, 6]}
    assert "Connecting to existing Ray cluster" in done.stderr


def test_out_py_address_flag(compiled: Path, cluster: Cluster) -> None:
    assert result_of(run_module(compiled, "--address", cluster.address)) == {"result": [2, 4, 6]}


def test_out_py_finds_the_cluster_running_on_this_machine(compiled: Path,
                                                          cluster: Cluster) -> None:
    """No address at all: ``ray.init`` finds the cluster that ``ray start`` recorded."""
    done = run_module(compiled, RAY_TMPDIR=cluster.sessions)
    assert result_of(done) == {"result": [2, 4, 6]}
    assert "Connecting to existing Ray cluster" in done.stderr


def test_out_py_starts_a_local_cluster_when_there_is_none(compiled: Path,
                                                          cluster: Cluster) -> None:
    with tempfile.TemporaryDirectory(prefix="operonx-ray-") as empty:  # nothing to find here
        done = run_module(compiled, RAY_TMPDIR=empty)
    assert result_of(done) == {"result": [2, 4, 6]}
    assert "Started a local Ray instance" in done.stderr


def test_an_address_where_nothing_listens_fails_fast(compiled: Path) -> None:
    from tests.ray.cluster import free_port

    address = f"127.0.0.1:{free_port()}"
    done = run_module(compiled, "--address", address)
    assert done.returncode == 1
    assert f"error: ConnectionError: no Ray cluster answers at {address!r}" in done.stderr


def test_op_errors_exit_1_with_the_op_named(compiled: Path, cluster: Cluster) -> None:
    done = subprocess.run([sys.executable, str(compiled), "--inputs", '{"numbers": [null]}',
                           "--address", cluster.address], capture_output=True, text=True,
                          timeout=180, check=False, cwd=compiled.parent)
    assert done.returncode == 1
    assert "error: OpError: op 'double' at index (0,) raised TypeError" in done.stderr


def test_check_knows_the_target(compiled: Path) -> None:
    assert run_cli("compile", "good.py", "-o", "out.py", "--target", "ray",
                   "--check").exit_code == 0
    stale = run_cli("compile", "good.py", "-o", "out.py", "--check")  # local: another module
    assert stale.exit_code == 1


def test_unknown_target_is_a_usage_error(compiled: Path) -> None:
    result = run_cli("compile", "good.py", "-o", "other.py", "--target", "spark")
    assert result.exit_code == 2
    assert not (compiled.parent / "other.py").exists()
