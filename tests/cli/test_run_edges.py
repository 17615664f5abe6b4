"""Class 10 of issue 8: ``operonx run`` reports what the user or the system caused as such.

Exit 70 ("internal error, please report it") is for bugs in operonx only: a
full disk, inputs nested too deeply for Python's JSON parser and running out
of memory are the user's or the machine's, and say so in one diagnostic. NaN
and infinities print as valid JSON, spelled like a compiled module spells them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import REPO, Invoke

GRAPH = '''from operonx.core import END, PARENT, START, GraphOp, op


@op
def each_item(items: list[float]):
    for item in items:
        yield {"value": item}


@op
def halve(value: float) -> dict[str, float]:
    return {"half": value / 2}


with GraphOp(name="g") as graph:
    gen = each_item(items=PARENT["numbers"])
    step = halve(value=gen["value"])
    START >> gen >> step >> END
'''


@pytest.fixture
def graph_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "graph.py").write_text(GRAPH)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _process(*args: str, stdout: Any = subprocess.PIPE,
             code: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k != "OPERONX_DEBUG"},
           "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "operonx",
                                                             *args]
    return subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env,
                          timeout=120, check=False)


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_class10_deeply_nested_inputs_are_a_usage_error(graph_dir: Path, invoke: Invoke) -> None:
    (graph_dir / "deep.json").write_text('{"numbers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = invoke("run", "graph.py", "--inputs", "@deep.json")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("deep.json: error: inputs are nested too deeply to read\n")
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("stream", [False, True])
def test_class10_a_full_disk_is_the_systems_error_not_ours(graph_dir: Path,
                                                          stream: bool) -> None:
    with open("/dev/full", "w") as full:
        done = _process("run", "graph.py", "--inputs", '{"numbers": [1, 2]}',
                        *(["--stream"] if stream else []), stdout=full)
    assert done.returncode == 1, done.stderr
    assert done.stderr == "error: cannot write the output: No space left on device\n"


def test_class10_out_of_memory_is_reported_not_an_internal_error(graph_dir: Path) -> None:
    big = graph_dir / "big.json"
    with big.open("w") as f:  # a 150 MiB inputs file: more than the process may allocate
        f.write('{"numbers": [')
        f.write("1, " * (50 * 2**20))
        f.write("1]}")
    code = ("import resource, sys\n"
            "from operonx.cli import cli\n"
            "with open('/proc/self/status') as status:\n"
            "    used = next(int(line.split()[1]) for line in status\n"
            "                if line.startswith('VmSize:')) * 1024\n"
            "resource.setrlimit(resource.RLIMIT_AS, (used + 96 * 2**20, resource.RLIM_INFINITY))\n"
            "cli.main(sys.argv[1:], prog_name='operonx')\n")
    try:
        done = _process("run", "graph.py", "--inputs", "@big.json", code=code)
    finally:
        big.unlink()
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: out of memory\n"), done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_class10_nan_and_infinity_are_valid_json(graph_dir: Path, invoke: Invoke) -> None:
    inputs = '{"numbers": [NaN, Infinity, -Infinity, 3]}'
    result = invoke("run", "graph.py", "--inputs", inputs)
    assert result.exit_code == 0, result.stderr
    assert _strict_json(result.stdout) == {"half": ["NaN", "Infinity", "-Infinity", 1.5]}
    streamed = invoke("run", "graph.py", "--inputs", inputs, "--stream")
    assert streamed.exit_code == 0, streamed.stderr
    frames = [_strict_json(line) for line in streamed.stdout.splitlines()]
    assert frames[-1]["outputs"] == {"half": ["NaN", "Infinity", "-Infinity", 1.5]}
    assert sorted(str(f["outputs"].get("value")) for f in frames
                  if f["op_name"] == "each_item") == ["-Infinity", "3", "Infinity", "NaN"]


@pytest.mark.parametrize("inputs", ['[1, 2]', '"numbers"', "null", "3"])
def test_class10_inputs_that_are_not_an_object_are_a_usage_error(graph_dir: Path,
                                                                invoke: Invoke,
                                                                inputs: str) -> None:
    result = invoke("run", "graph.py", "--inputs", inputs)
    assert result.exit_code == 2
    assert "inputs must be a JSON object" in result.stderr
