"""Class 10 of issue 8: the edges of the entry points, in the Engine and compiled alike.

``python out.py`` is a command a user runs in a shell: Ctrl-C, ``| head``, a
full disk and absurd inputs must each end in one line on stderr and a
documented exit code, never a traceback. ``run``/``run_sync``/``stream`` must
answer inputs that are not a mapping with ``InputError`` on both paths, and
``run_sync`` inside a running loop with a clear ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import signal
import subprocess
import sys
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_file
from operonx.core import Engine
from tests.compiler.helpers import compiled_stream, engine_stream, outcome
from tests.compiler.projects import HEAD, LEVELS, compiled, engine_graph, write_project

GRAPH = HEAD + '''
import asyncio
import sys


@op
def each_item(items: list[float]):
    for item in items:
        yield {"value": item}


@op
async def scale(value: float, delay: float) -> dict[str, float]:
    if delay:
        print("started", file=sys.stderr, flush=True)
        await asyncio.sleep(delay)
    return {"result": value * 2, "ratio": value / 2}


with GraphOp(name="g") as graph:
    gen = each_item(items=PARENT["numbers"])
    step = scale(value=gen["value"], delay=PARENT["delay"])
    START >> gen >> step >> END
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("edges")
    write_project(directory, {"graph.py": GRAPH})
    for level in LEVELS:
        (directory / f"out_O{level}.py").write_text(
            compile_file(str(directory / "graph.py"), opt_level=level).source)
    return directory


def _main(project: Path, level: int, *args: str, **popen: Any) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen([sys.executable, f"out_O{level}.py", *args], cwd=project, env=env,
                            text=True, stderr=subprocess.PIPE, **popen)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out or "", err


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
    return stderr.rstrip("\n")


# --------------------------------------------------------------------- python out.py


@pytest.mark.parametrize("level", [0, 2])
def test_class10_ctrl_c_exits_130_with_one_line(project: Path, level: int) -> None:
    proc = _main(project, level, "--inputs", '{"numbers": [1], "delay": 30}',
                 stdout=subprocess.PIPE)
    assert proc.stderr is not None
    assert proc.stderr.readline() == "started\n"  # the op is running
    proc.send_signal(signal.SIGINT)
    code, out, err = _finish(proc)
    assert (code, out) == (130, "")
    assert _one_line(err) == "interrupted"


@pytest.mark.parametrize("level", [0, 2])
def test_class10_a_closed_stdout_pipe_exits_quietly(project: Path, level: int) -> None:
    read, write = os.pipe()
    os.close(read)  # `| head` that has already gone
    try:
        proc = _main(project, level, "--inputs", '{"numbers": [1, 2], "delay": 0}',
                     stdout=write)
    finally:
        os.close(write)
    code, _out, err = _finish(proc)
    assert (code, err) == (1, "")


@pytest.mark.parametrize("level", [0, 2])
def test_class10_a_full_disk_is_one_line_and_exit_1(project: Path, level: int) -> None:
    with open("/dev/full", "w") as full:
        proc = _main(project, level, "--inputs", '{"numbers": [1], "delay": 0}', stdout=full)
        code, _out, err = _finish(proc)
    assert code == 1
    assert _one_line(err) == "error: cannot write the result: No space left on device"


@pytest.mark.parametrize("shape", ["array", "object"])
def test_class10_deeply_nested_json_inputs_exit_2(project: Path, shape: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    text = deep if shape == "array" else '{"numbers": ' + deep + ', "delay": 0}'
    (project / f"deep_{shape}.json").write_text(text)
    proc = _main(project, 2, "--inputs", f"@deep_{shape}.json", stdout=subprocess.PIPE)
    code, out, err = _finish(proc)
    assert (code, out) == (2, "")
    assert _one_line(err) == "error: --inputs: the JSON is nested too deeply"


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("level", LEVELS)
def test_class10_nan_and_infinity_print_as_valid_json_like_operonx_run(
        project: Path, level: int) -> None:
    inputs = '{"numbers": [NaN, Infinity, -Infinity, 1.5], "delay": 0}'
    proc = _main(project, level, "--inputs", inputs, stdout=subprocess.PIPE)
    code, out, err = _finish(proc)
    assert code == 0, err
    printed = _strict_json(out)
    assert printed == {"result": ["NaN", "Infinity", "-Infinity", 3.0],
                       "ratio": ["NaN", "Infinity", "-Infinity", 0.75]}
    engine = subprocess.run([sys.executable, "-m", "operonx", "run", "graph.py", "--inputs",
                             inputs], cwd=project, capture_output=True, text=True, timeout=60,
                            check=False)
    assert engine.returncode == 0, engine.stderr
    assert _strict_json(engine.stdout) == printed


ODD_RESULT = HEAD + '''

@op
def odd(kind: str) -> dict[str, object]:
    if kind == "deep":
        value: object = []
        for _ in range(100_000):
            value = [value]
        return {"value": value}
    return {"value": {(1, 2): "tuple key"}}


with GraphOp(name="g") as graph:
    node = odd(kind=PARENT["kind"])
    START >> node >> END
'''


@pytest.mark.parametrize(("kind", "reason"), [("deep", "it is nested too deeply"),
                                              ("tuple", "keys must be str")])
def test_class10_a_result_json_cannot_hold_is_one_line_on_both_paths(
        tmp_path: Path, kind: str, reason: str) -> None:
    path = write_project(tmp_path, {"graph.py": ODD_RESULT})
    (tmp_path / "out.py").write_text(compile_file(path).source)
    inputs = json.dumps({"kind": kind})
    for argv in ([sys.executable, "out.py", "--inputs", inputs],
                 [sys.executable, "-m", "operonx", "run", "graph.py", "--inputs", inputs]):
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              check=False)
        assert (done.returncode, done.stdout) == (1, ""), done.stderr
        assert "error: the result cannot be written as JSON: " in done.stderr
        assert reason in done.stderr and "Traceback" not in done.stderr


# ----------------------------------------------------------- inputs that are not a dict


NOT_MAPPINGS: list[object] = [["numbers", "delay"], [("numbers", [1]), ("delay", 0)],
                              "numbers", 42, b"{}"]


def _paths(project: Path) -> list[tuple[str, Any]]:
    """(label, object with run/run_sync/stream): the Engine, then each compiled level."""
    graph = engine_graph(str(project / "graph.py"))
    found: list[tuple[str, Any]] = [("engine", graph)]
    for level in LEVELS:
        found.append((f"O{level}", compiled(str(project / "graph.py"), level, project)))
    return found


def _calls(target: Any, inputs: object) -> dict[str, Callable[[], object]]:
    if isinstance(target, types.ModuleType):
        return {"run_sync": lambda: target.run_sync(inputs),
                "run": lambda: asyncio.run(target.run(inputs)),
                "collect": lambda: target.run_sync(inputs, on_error="collect"),
                "stream": lambda: compiled_stream(target, inputs)}  # type: ignore[arg-type]
    return {"run_sync": lambda: Engine(target).run_sync(inputs),  # type: ignore[arg-type]
            "run": lambda: asyncio.run(Engine(target).run(inputs)),  # type: ignore[arg-type]
            "collect": lambda: Engine(target, on_error="collect").run_sync(
                inputs),  # type: ignore[arg-type]
            "stream": lambda: engine_stream(target, inputs)}  # type: ignore[arg-type]


@pytest.mark.parametrize("inputs", NOT_MAPPINGS, ids=lambda v: type(v).__name__)
def test_class10_non_mapping_inputs_raise_input_error_on_every_path(
        project: Path, inputs: object) -> None:
    seen = set()
    for label, target in _paths(project):
        for call, fn in _calls(target, inputs).items():
            kind, detail = outcome(fn)
            assert kind == "error", (label, call, detail)
            assert detail[0] == "InputError", (label, call, detail)
            assert detail[3] == ("graph 'g': inputs must be a mapping of input names to "
                                 f"values (a dict), not {type(inputs).__name__}")
            seen.add(detail)
    assert len(seen) == 1  # the same error, word for word, everywhere


def test_class10_none_inputs_mean_no_inputs_to_the_engine_and_are_refused_compiled(
        project: Path) -> None:
    for label, target in _paths(project):
        for call, fn in _calls(target, None).items():
            kind, detail = outcome(fn)
            assert (kind, detail[0]) == ("error", "InputError"), (label, call, detail)
            if label == "engine":  # None is "no inputs": the graph's keys are missing
                assert "missing input(s) 'numbers', 'delay'" in detail[3]
            else:  # run(inputs: Inputs) takes no None
                assert detail[3].endswith("(a dict), not NoneType")


def test_class10_other_mappings_are_accepted_alike(project: Path) -> None:
    inputs = types.MappingProxyType({"numbers": [1.0, 2.0], "delay": 0})
    results = {label: {call: fn() for call, fn in _calls(target, inputs).items()
                       if call != "stream"} for label, target in _paths(project)}
    expected = {"result": [2.0, 4.0], "ratio": [0.5, 1.0]}
    for label, by_call in results.items():
        assert by_call["run"] == by_call["run_sync"] == expected, label
        assert by_call["collect"] == {**expected, "$errors": []}, label


# ------------------------------------------------------------ run_sync inside a loop


@pytest.mark.parametrize("level", LEVELS)
def test_class10_run_sync_inside_a_running_loop_is_a_clear_error(project: Path,
                                                                level: int) -> None:
    module = compiled(str(project / "graph.py"), level, project)

    async def inside() -> None:
        with pytest.raises(RuntimeError) as info:
            module.run_sync({"numbers": [1.0], "delay": 0})
        assert str(info.value) == ("run_sync() was called from inside a running event loop; "
                                   "use `await run(...)`")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(inside())
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    assert module.run_sync({"numbers": [2.0], "delay": 0})["result"] == [4.0]  # outside: fine
    assert math.isnan(module.run_sync({"numbers": [math.nan], "delay": 0})["ratio"][0])
