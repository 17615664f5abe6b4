"""``python out.py --trace run.json``: a compiled module writes the Engine's trace format itself."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_file
from compiler.frontend.load import find_graphs, load_module, select_graph
from operonx.core import Engine
from operonx.tracing import ChromeTraceTracer
from tests.cli.helpers import FIXTURES
from tests.compiler.test_standalone import BLOCKER
from tests.golden.cases import CASES, Case
from tests.tracing.chrome_schema import load, op_events, run_events


def compiled_run(tmp_path: Path, source_path: str, *args: str, graph: str | None = None,
                 level: int = 2) -> subprocess.CompletedProcess[str]:
    """Compile ``source_path`` and run it where operonx cannot be imported."""
    (tmp_path / "out.py").write_text(compile_file(source_path, graph_name=graph,
                                                  opt_level=level).source)
    (tmp_path / "blocker.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "blocker.py", "out.py", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)


def engine_trace(source_path: str, inputs: dict[str, Any], path: Path) -> dict[str, Any]:
    _name, graph = select_graph(find_graphs(load_module(source_path)), None, source_path)
    Engine(graph, tracers=[ChromeTraceTracer(path)]).run_sync(inputs)
    return load(path)


def op_index_multiset(document: dict[str, Any]) -> collections.Counter[tuple[str, tuple[int, ...]]]:
    return collections.Counter((e["name"], tuple(e["args"]["index"])) for e in op_events(document))


@pytest.mark.parametrize("level", [0, 2])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_compiled_trace_has_the_engines_events(case: Case, level: int, tmp_path: Path) -> None:
    inputs = case.inputs[0]
    done = compiled_run(tmp_path, case.abspath, "--inputs", json.dumps(inputs),
                        "--trace", "run.json", level=level)
    assert done.returncode == 0, done.stderr
    compiled = load(tmp_path / "run.json")
    engine = engine_trace(case.abspath, inputs, tmp_path / "engine.json")

    assert op_index_multiset(compiled) == op_index_multiset(engine)
    assert compiled["otherData"]["producer"] == "operonx compiled module"
    (compiled_run_event,) = run_events(compiled)
    (engine_run_event,) = run_events(engine)
    assert compiled_run_event["args"]["status"] == "ok"
    assert compiled_run_event["args"]["outputs"] == engine_run_event["args"]["outputs"]
    assert json.loads(done.stdout) == json.loads(json.dumps(
        Engine(select_graph(find_graphs(load_module(case.abspath)), None, case.abspath)[1])
        .run_sync(inputs)))
    # The root span the writer inferred is the one every top-level frame hangs from.
    root = compiled_run_event["args"]["span_id"]
    spans = {e["args"]["span_id"] for e in op_events(compiled)}
    assert all(e["args"]["parent_span_id"] in spans | {root} for e in op_events(compiled))
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))


def test_a_failing_compiled_run_writes_its_trace(tmp_path: Path) -> None:
    fixture = str(FIXTURES / "op_error.py")
    done = compiled_run(tmp_path, fixture, "--inputs", '{"numbers": [1, 2, 3]}',
                        "--trace", "run.json", graph="flat")
    assert done.returncode == 1
    assert "OpError: op 'check' at index (1,) raised ValueError: bad value 2" in done.stderr
    document = load(tmp_path / "run.json")
    (run,) = run_events(document)
    assert run["args"]["status"] == "error"
    assert run["args"]["error"].startswith("OpError: op 'check' at index (1,)")
    assert len(op_events(document)) == document["otherData"]["runs"][0]["frames"] >= 1


def test_bad_inputs_write_no_trace(tmp_path: Path) -> None:
    done = compiled_run(tmp_path, str(FIXTURES / "good.py"), "--inputs", '{"numbrs": [1]}',
                        "--trace", "run.json")
    assert done.returncode == 1 and "InputError" in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["blocker.py", "out.py"]


@pytest.mark.parametrize(("args", "message"), [
    (["--on-error", "collect"], "--trace runs through stream(), which has no --on-error"),
    (["--trace", "nope/run.json"], "error: --trace: cannot write nope/run.json"),
    (["--trace", "."], "error: --trace: . is a directory"),
])
def test_trace_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    trace = [] if "--trace" in args else ["--trace", "run.json"]
    done = compiled_run(tmp_path, str(FIXTURES / "good.py"), "--inputs", '{"numbers": [1]}',
                        *trace, *args)
    assert done.returncode == 2
    assert message in done.stderr, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["blocker.py", "out.py"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_an_interrupted_compiled_run_leaves_a_complete_trace(tmp_path: Path) -> None:
    (tmp_path / "out.py").write_text(compile_file(str(FIXTURES / "slow.py")).source)
    inputs = json.dumps({"numbers": list(range(2_000))})
    proc = subprocess.Popen([sys.executable, "out.py", "--inputs", inputs, "--trace", "run.json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        partial = [tmp_path / n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
        if partial and partial[0].stat().st_size > 4096:
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("the compiled run never started writing its trace")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    document = load(tmp_path / "run.json")
    (run,) = run_events(document)
    assert run["args"]["status"] == "cancelled"
    assert 0 < len(op_events(document)) < 4_000
