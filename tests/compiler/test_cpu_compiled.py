"""SPEC §10 on the compiled path: ``bound="cpu"`` ops run in worker processes, as in the Engine.

Engine ≡ compiled module at -O0, -O1 and -O2 on the graphs of ``cpu_graphs.py``:
results, errors (op, index, cause), collect mode, frames; a failing sibling and a
timeout stop the worker running a cpu op (its pid is gone); ``max_concurrent`` bounds
the executions in flight. Real processes throughout. The compiled modules are loaded
under private names from temporary files (as ``helpers.load_source`` does), which no
fresh process can import by name: their workers reach them by file. The last tests
run a compiled module the two ways a user does, ``python out.py`` and ``import out``,
each in a fresh interpreter.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_file
from compiler.frontend.load import find_graphs, load_module, select_graph
from operonx.core import Engine, OpError
from tests.compiler import cpu_graphs
from tests.compiler.helpers import assert_equivalent, load_source, outcome

LEVELS = (0, 1, 2)
GRAPHS = cpu_graphs.__file__


@pytest.fixture
def compile_cpu(tmp_path: Path) -> Iterator[Any]:
    """``compile_cpu(name, level)``: the graph ``name`` of cpu_graphs.py compiled and loaded;
    the modules' worker processes are stopped when the test ends."""
    modules: list[types.ModuleType] = []

    def build(name: str, level: int) -> types.ModuleType:
        source = compile_file(GRAPHS, graph_name=name, opt_level=level).source
        module = load_source(source, tmp_path, f"cpu_{name}_O{level}")
        modules.append(module)
        return module

    yield build
    for module in modules:
        module.shutdown_pools()


def engine_graph(name: str) -> Any:
    """The graph as ``operonx run`` loads it (from the file, under a private name)."""
    return select_graph(find_graphs(load_module(GRAPHS)), name, GRAPHS)[1]


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.02)
    return False


def max_overlap(spans: list[list[float]]) -> int:
    """The most spans open at one instant."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


# ------------------------------------------------------------------- Engine ≡ compiled


@pytest.mark.parametrize("level", LEVELS)
def test_results_errors_and_frames_match_the_engine(level: int, compile_cpu: Any) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("squares", {"values": [1, 2, 3]}), ("squares", {"values": []}),
        ("failing", {"values": [0, 1, 2, 3], "bad": 2}), ("failing", {"values": [0, 1], "bad": 5}),
        ("collected", {"values": [1, 2, 3, 4]})]
    for name, inputs in cases:
        assert_equivalent(engine_graph(name), compile_cpu(name, level), inputs)


@pytest.mark.parametrize("level", LEVELS)
def test_op_error_names_op_and_index_with_the_original_exception_as_cause(
        level: int, compile_cpu: Any) -> None:
    module = compile_cpu("failing", level)
    with pytest.raises(module.OpError) as caught:
        module.run_sync({"values": [0, 1, 2, 3], "bad": 2}, cpu_workers=2)
    err = caught.value
    assert (err.op_name, err.index) == ("fail_on", (2,))
    assert str(err) == "op 'fail_on' at index (2,) raised ValueError: bad 2"
    cause = err.__cause__
    assert type(cause) is ValueError and str(cause) == "bad 2"
    # The worker's traceback travels with it, down to the raising line of the copied op.
    remote = cause.__cause__
    assert type(remote) is module.RemoteTraceback
    assert 'raise ValueError(f"bad {value}")' in getattr(remote, "text", "")
    with pytest.raises(OpError) as from_engine:
        Engine(engine_graph("failing"), cpu_workers=2).run_sync(
            {"values": [0, 1, 2, 3], "bad": 2})
    assert str(from_engine.value) == str(err)


@pytest.mark.parametrize("level", LEVELS)
def test_ops_run_in_worker_processes_reused_across_runs(level: int, compile_cpu: Any) -> None:
    module = compile_cpu("pids", level)
    first = module.run_sync({"values": [1, 2, 3]}, cpu_workers=1)
    again = asyncio.run(module.run({"values": [4, 5]}, cpu_workers=1))
    assert first["value"] == [1, 2, 3] and again["value"] == [4, 5]
    pids = {*first["pid"], *again["pid"]}
    assert len(pids) == 1 and os.getpid() not in pids  # one worker, kept between runs
    two = module.run_sync({"values": list(range(6))}, cpu_workers=2)
    assert len(set(two["pid"])) <= 2 and not pids & set(two["pid"])  # a pool per size


async def test_stream_takes_cpu_workers_too(compile_cpu: Any) -> None:
    module = compile_cpu("pids", 2)
    frames = [f async for f in module.stream({"values": [1, 2, 3]}, cpu_workers=1)]
    pids = {f.outputs["pid"] for f in frames if f.op_name == "whoami"}
    assert len(pids) == 1 and os.getpid() not in pids
    assert frames[-1].op_name == "END"


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_cpu_workers_must_be_a_positive_int(bad: Any, compile_cpu: Any) -> None:
    module = compile_cpu("squares", 2)
    message = f"cpu_workers must be a positive int, not {bad!r}"
    with pytest.raises(ValueError) as from_engine:
        Engine(engine_graph("squares"), cpu_workers=bad)
    assert str(from_engine.value) == message
    for call in (lambda: module.run_sync({"values": [1]}, cpu_workers=bad),
                 lambda: asyncio.run(module.run({"values": [1]}, cpu_workers=bad)),
                 lambda: asyncio.run(anext(module.stream({"values": [1]}, cpu_workers=bad)))):
        with pytest.raises(ValueError) as caught:
            call()
        assert str(caught.value) == message


# ------------------------------------------------------------- cancellation and timeouts


@pytest.mark.parametrize("level", LEVELS)
def test_a_failing_sibling_stops_the_running_workers(level: int, tmp_path: Path,
                                                     compile_cpu: Any) -> None:
    module = compile_cpu("sibling_fails", level)
    module.run_sync({"values": [], "markers": ""}, cpu_workers=2)  # nothing to run: no pool yet
    engine = Engine(engine_graph("sibling_fails"), cpu_workers=2)
    runs: dict[str, Callable[[dict[str, Any]], Any]] = {
            "engine": engine.run_sync,
            "compiled": functools.partial(module.run_sync, cpu_workers=2)}
    for ran_by, run in runs.items():
        markers = tmp_path / ran_by
        markers.mkdir()
        started = time.monotonic()
        got = outcome(functools.partial(run, {"values": list(range(8)),
                                              "markers": str(markers)}))
        assert time.monotonic() - started < 30  # the sleeping items would take a minute
        assert got == ("error", ("OpError", "first_fails_others_hang", (0,),
                                 "op 'first_fails_others_hang' at index (0,) raised "
                                 "ValueError: item 0 failed", "ValueError"))
        ran = {int(p.name): int(p.read_text()) for p in markers.iterdir()}
        assert 1 <= len(ran) <= 2  # item 1, perhaps the item handed item 0's worker
        for pid in ran.values():
            assert wait_gone(pid), f"{ran_by}: worker {pid} still runs a cancelled execution"
    # The pool replaces what it stopped.
    assert module.run_sync({"values": [], "markers": ""}, cpu_workers=2) == {"value": []}


@pytest.mark.parametrize("level", LEVELS)
def test_a_timeout_stops_the_worker_running_the_op(level: int, tmp_path: Path,
                                                   compile_cpu: Any) -> None:
    module = compile_cpu("times_out", level)
    outcomes = []
    engine = Engine(engine_graph("times_out"), cpu_workers=1)
    runs: dict[str, Callable[[dict[str, Any]], Any]] = {
            "engine": engine.run_sync,
            "compiled": functools.partial(module.run_sync, cpu_workers=1)}
    for ran_by, run in runs.items():
        pid_file = tmp_path / f"{ran_by}.pid"
        started = time.monotonic()
        outcomes.append(outcome(functools.partial(run, {"value": 1,
                                                        "pid_file": str(pid_file)})))
        assert time.monotonic() - started < 30
        assert wait_gone(int(pid_file.read_text())), f"{ran_by}: the timed-out worker runs on"
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][1][:3] == ("OpError", "too_long", ())
    assert outcomes[1][1][4] == "TimeoutError"


@pytest.mark.parametrize("level", LEVELS)
def test_a_retry_runs_the_op_in_a_worker_again(level: int, tmp_path: Path,
                                              compile_cpu: Any) -> None:
    module = compile_cpu("retried", level)
    engine = Engine(engine_graph("retried"), cpu_workers=2)
    results = []
    for ran_by, run in {"engine": engine.run_sync, "compiled": module.run_sync}.items():
        marks = tmp_path / ran_by
        marks.mkdir()
        results.append(run({"values": [1, 2, 3], "marks": str(marks)}))
        assert sorted(int(p.name) for p in marks.iterdir()) == [1, 2, 3]  # each failed once
        assert os.getpid() not in results[-1]["pid"]
    assert results[0]["value"] == results[1]["value"] == [1, 2, 3]


@pytest.mark.parametrize("level", LEVELS)
def test_max_concurrent_bounds_executions_in_flight(level: int, compile_cpu: Any) -> None:
    inputs = {"values": list(range(6)), "seconds": 0.05}
    for name, bound in (("alone", 1), ("pairs", 2)):
        module = compile_cpu(name, level)
        module.run_sync({"values": [0, 1, 2], "seconds": 0.0}, cpu_workers=3)  # warm the pool
        result = module.run_sync(inputs, cpu_workers=3)
        assert max_overlap(result["span"]) == bound, name
        engine = Engine(engine_graph(name), cpu_workers=3).run_sync(inputs)
        assert max_overlap(engine["span"]) == bound, name


# ------------------------------------------------------------------ a user's two ways


def _compile_to(tmp_path: Path) -> Path:
    out = tmp_path / "out.py"
    out.write_text(compile_file(GRAPHS, graph_name="pids").source, encoding="utf-8")
    return out


def _run_python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_python_out_py_runs_cpu_ops_in_workers_and_exits_cleanly(tmp_path: Path) -> None:
    """As a script, the module is ``__main__`` in the parent and ``__mp_main__`` in workers."""
    _compile_to(tmp_path)
    done = _run_python(["out.py", "--inputs", json.dumps({"values": [1, 2, 3, 4]})], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    result = json.loads(done.stdout)
    assert result["value"] == [1, 2, 3, 4]
    for pid in set(result["pid"]):
        assert wait_gone(pid), f"worker {pid} outlived the script"


def test_python_out_py_takes_cpu_workers(tmp_path: Path) -> None:
    """``--cpu-workers N`` sizes the pool, with and without ``--trace``; N < 1 is exit 2."""
    _compile_to(tmp_path)
    inputs = json.dumps({"values": [1, 2, 3, 4, 5, 6]})
    done = _run_python(["out.py", "--cpu-workers", "1", "--inputs", inputs], tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(set(json.loads(done.stdout)["pid"])) == 1  # one worker ran every execution
    traced = _run_python(["out.py", "--cpu-workers", "1", "--trace", "run.json",
                          "--inputs", inputs], tmp_path)
    assert traced.returncode == 0, traced.stderr
    assert len(set(json.loads(traced.stdout)["pid"])) == 1
    assert json.loads((tmp_path / "run.json").read_text())["traceEvents"]
    bad = _run_python(["out.py", "--cpu-workers", "0", "--inputs", inputs], tmp_path)
    assert bad.returncode == 2 and "--cpu-workers must be a positive number" in bad.stderr


def test_import_out_runs_cpu_ops_in_workers_without_operonx(tmp_path: Path) -> None:
    _compile_to(tmp_path)
    script = textwrap.dedent("""\
        import json, os, sys
        import out

        if __name__ == "__main__":
            result = out.run_sync({"values": [1, 2, 3, 4]}, cpu_workers=2)
            assert os.getpid() not in result["pid"], result
            assert "operonx" not in sys.modules, "the compiled module imported operonx"
            print(json.dumps(result))
        """)
    (tmp_path / "user.py").write_text(script, encoding="utf-8")
    done = _run_python(["user.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    result = json.loads(done.stdout)
    assert result["value"] == [1, 2, 3, 4] and len(set(result["pid"])) <= 2
    for pid in set(result["pid"]):
        assert wait_gone(pid), f"worker {pid} outlived the script"
