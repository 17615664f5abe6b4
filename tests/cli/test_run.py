"""``operonx run``: inputs, the result as JSON, ``--stream`` frames, and located run errors."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from operonx.cli import Progress, find_node
from operonx.core import Frame, SpanContext
from tests.cli.helpers import REPO, Invoke, diagnostic, line_of, run_cli

NUMBERS = '{"numbers": [1, 2, 3]}'


def test_run_prints_the_result_as_json(workdir: Path, invoke: Invoke) -> None:
    result = invoke("run", "good.py", "--inputs", NUMBERS)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"result": [2, 4, 6]}
    assert result.stderr == ""


def test_inputs_from_a_file_and_from_stdin(workdir: Path) -> None:
    (workdir / "in.json").write_text(NUMBERS)
    from_file = run_cli("run", "good.py", "--inputs", "@in.json")
    assert json.loads(from_file.stdout) == {"result": [2, 4, 6]}, from_file.stderr
    from_stdin = run_cli("run", "good.py", "--inputs", "@-", input=NUMBERS)
    assert json.loads(from_stdin.stdout) == {"result": [2, 4, 6]}, from_stdin.stderr


def test_stream_prints_every_frame_then_end(workdir: Path, invoke: Invoke) -> None:
    result = invoke("run", "good.py", "--inputs", NUMBERS, "--stream")
    assert result.exit_code == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((f["op_name"], tuple(f["index"])) for f in frames[:-1]) == sorted(
        [("each_item", (i,)) for i in range(3)] + [("double", (i,)) for i in range(3)])
    assert frames[-1]["op_name"] == "END"
    assert frames[-1]["outputs"] == {"result": [2, 4, 6]}
    span = frames[0]["span"]
    assert len(span["trace_id"]) == 32 and len(span["span_id"]) == 16
    assert frames[0]["start_ns"] <= frames[0]["end_ns"]
    assert result.stderr == ""  # no progress line when stderr is not a terminal


# ------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(("text", "col"), [('{"numbers": [1, 2,}', 19), ("{", 2)])
def test_invalid_json_is_located_and_a_usage_error(workdir: Path, invoke: Invoke,
                                                   text: str, col: int) -> None:
    result = invoke("run", "good.py", "--inputs", text)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"--inputs:1:{col}: error: invalid JSON"), result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_json_in_a_file_names_the_file_and_line(workdir: Path) -> None:
    (workdir / "in.json").write_text('{\n  "numbers": [1, 2]\n  "extra": 1\n}\n')
    result = run_cli("run", "good.py", "--inputs", "@in.json")
    assert result.exit_code == 2
    assert result.stderr.startswith("in.json:3:3: error: invalid JSON"), result.stderr


def test_unreadable_inputs_file_is_a_usage_error(workdir: Path, invoke: Invoke) -> None:
    result = invoke("run", "good.py", "--inputs", "@nope.json")
    assert result.exit_code == 2
    assert diagnostic("nope.json").search(result.stderr), result.stderr


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "array"), ('"x"', "string"),
                                            ("null", "null"), ("3", "number")])
def test_inputs_must_be_an_object(workdir: Path, text: str, kind: str) -> None:
    result = run_cli("run", "good.py", "--inputs", text)
    assert result.exit_code == 2
    assert f"not a JSON {kind}" in result.stderr


# ------------------------------------------------------------------ run errors


def test_missing_input_names_the_keys_at_the_graph(workdir: Path, invoke: Invoke) -> None:
    result = invoke("run", "good.py", "--inputs", '{"numbrs": [1]}')
    assert result.exit_code == 1
    assert diagnostic("good.py", line_of("good.py", "graph")).search(result.stderr), result.stderr
    assert "numbers" in result.stderr and "numbrs" in result.stderr
    assert "hint: graph 'iterate' takes inputs: required numbers" in result.stderr


def test_op_error_points_at_the_node_and_the_raise(workdir: Path, invoke: Invoke) -> None:
    result = invoke("run", "op_error.py", "--graph", "flat", "--inputs", NUMBERS)
    assert result.exit_code == 1
    node_line = line_of("op_error.py", "node")
    assert result.stderr.startswith(f"op_error.py:{node_line}:15: error: op 'check' at index "
                                    "(1,) raised ValueError: bad value 2"), result.stderr
    assert f"hint: raised at op_error.py:{line_of('op_error.py', 'raise')} in check" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_op_error_in_a_sub_graph_points_at_the_nested_node(workdir: Path) -> None:
    result = run_cli("run", "op_error.py", "--graph", "outer", "--inputs", '{"value": 2}')
    assert result.exit_code == 1
    assert diagnostic("op_error.py", line_of("op_error.py", "nested node")).search(
        result.stderr), result.stderr
    assert "'inner.check'" in result.stderr


def test_op_error_while_streaming(workdir: Path) -> None:
    result = run_cli("run", "op_error.py", "--graph", "flat", "--inputs", NUMBERS, "--stream")
    assert result.exit_code == 1
    assert diagnostic("op_error.py", line_of("op_error.py", "node")).search(result.stderr)


def test_loop_limit_points_at_the_loop(workdir: Path, invoke: Invoke) -> None:
    result = invoke("run", "loop_limit.py")
    assert result.exit_code == 1
    assert diagnostic("loop_limit.py", line_of("loop_limit.py", "loop")).search(
        result.stderr), result.stderr
    assert "max_iterations=3" in result.stderr


def test_find_node_walks_nested_scopes() -> None:
    import runpy

    from tests.cli.helpers import FIXTURES

    ir = runpy.run_path(str(FIXTURES / "nested.py"))["graph"].ir
    inner = find_node(ir, "inner.double")
    assert inner is not None and inner.loc.line == line_of("nested.py", "inner double")
    assert find_node(ir, "loop.increment") is not None
    assert find_node(ir, "inner.nope") is None
    assert find_node(ir, "double.x") is None


# ---------------------------------------------------------------- progress line


def frame(name: str, index: tuple[int, ...]) -> Frame:
    return Frame(name, {}, index, SpanContext("0" * 31 + "1", "0" * 15 + "1"), 0, 0)


def test_progress_writes_and_clears_a_status_line_on_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(out, "run", enabled=True, interval=0.0)
    progress.update(frame("double", (2,)))
    progress.update(frame("each_item", (0, 1)))
    progress.close()
    text = out.getvalue()
    assert "run: 1 frames · double[2]" in text
    assert "run: 2 frames · each_item[0][1]" in text
    assert text.endswith("\r\x1b[K")


def test_progress_is_silent_off_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(out, "run")  # StringIO is not a tty
    progress.update(frame("double", ()))
    progress.close()
    assert out.getvalue() == ""
    assert progress.frames == 1


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_stream_shows_progress_when_stderr_is_a_terminal(workdir: Path) -> None:
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "operonx", "run", "good.py", "--inputs",
                           NUMBERS, "--stream"], stdout=subprocess.PIPE, stderr=follower,
                          env=env, timeout=60, check=False)
    os.close(follower)
    seen = os.read(leader, 65536).decode()
    os.close(leader)
    assert done.returncode == 0
    assert "frames ·" in seen and seen.endswith("\r\x1b[K")
    assert len(done.stdout.splitlines()) == 7  # the frames stay on stdout, clean


# ------------------------------------------------------- internal errors, interrupts


class Exploding:
    def __init__(self, graph: object, exc: BaseException) -> None:
        self.exc = exc

    def run_sync(self, inputs: object) -> object:
        raise self.exc


@pytest.mark.parametrize(("exc", "code", "text"), [
    (RuntimeError("scheduler bug"), 70, "error: internal error: RuntimeError: scheduler bug"),
    (KeyboardInterrupt(), 130, "operonx: interrupted"),
])
def test_unexpected_exceptions_exit_cleanly(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                            exc: BaseException, code: int, text: str) -> None:
    import operonx.core

    monkeypatch.setattr(operonx.core, "Engine", lambda graph, **_: Exploding(graph, exc))
    result = run_cli("run", "good.py", "--inputs", NUMBERS)
    assert result.exit_code == code
    assert result.stderr.startswith(text), result.stderr
    assert "Traceback" not in result.stderr
    debug = run_cli("--debug", "run", "good.py", "--inputs", NUMBERS)
    assert debug.exit_code == code
    assert "Traceback" in debug.stderr


def test_a_closed_stdout_pipe_stops_quietly(workdir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    inputs = json.dumps({"numbers": list(range(20_000))})
    with subprocess.Popen([sys.executable, "-m", "operonx", "run", "good.py", "--inputs",
                           inputs, "--stream"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert json.loads(proc.stdout.readline())["op_name"] in ("each_item", "double")
        proc.stdout.close()  # like `| head -1`
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1
    assert stderr == ""
