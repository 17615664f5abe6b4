"""``operonx run --trace`` and ``operonx trace``: the file, the summary, the timeline picture."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.helpers import REPO, Invoke, diagnostic, line_of, run_cli
from tests.tracing.chrome_schema import load, op_events, run_events

NUMBERS = '{"numbers": [1, 2, 3]}'


def temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ----------------------------------------------------------------------- run --trace


def test_run_trace_writes_the_run_and_prints_the_result(workdir: Path, invoke: Invoke) -> None:
    result = invoke("run", "good.py", "--inputs", NUMBERS, "--trace", "run.json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"result": [2, 4, 6]}
    document = load(workdir / "run.json")
    assert sorted((e["name"], tuple(e["args"]["index"])) for e in op_events(document)) == sorted(
        [("each_item", (i,)) for i in range(3)] + [("double", (i,)) for i in range(3)])
    (run,) = run_events(document)
    assert run["name"] == "iterate" and run["args"]["status"] == "ok"
    assert run["args"]["outputs"] == {"result": "[2, 4, 6]"}
    assert document["otherData"]["producer"].endswith(" engine")
    assert temp_files(workdir) == []


def test_run_trace_with_stream_prints_frames_and_traces_them(workdir: Path) -> None:
    result = run_cli("run", "good.py", "--inputs", NUMBERS, "--stream", "--trace", "run.json")
    assert result.exit_code == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    document = load(workdir / "run.json")
    assert len(op_events(document)) == len(frames) - 1  # END is the run event
    assert run_events(document)[0]["args"]["span_id"] == frames[-1]["span"]["span_id"]


def test_a_failing_run_still_writes_its_trace(workdir: Path, invoke: Invoke) -> None:
    result = invoke("run", "op_error.py", "--graph", "flat", "--inputs", NUMBERS,
                    "--trace", "run.json")
    assert result.exit_code == 1
    assert diagnostic("op_error.py", line_of("op_error.py", "node")).search(result.stderr)
    (run,) = run_events(load(workdir / "run.json"))
    assert run["args"]["status"] == "error"
    assert "raised ValueError: bad value 2" in run["args"]["error"]
    assert temp_files(workdir) == []


def test_bad_inputs_write_no_trace_and_keep_the_old_one(workdir: Path) -> None:
    (workdir / "run.json").write_text("old")
    result = run_cli("run", "good.py", "--inputs", '{"numbrs": [1]}', "--trace", "run.json")
    assert result.exit_code == 1
    assert (workdir / "run.json").read_text() == "old"
    assert temp_files(workdir) == []


def test_trace_into_a_missing_directory_is_a_usage_error(workdir: Path, invoke: Invoke) -> None:
    result = invoke("run", "good.py", "--inputs", NUMBERS, "--trace", "nope/run.json")
    assert result.exit_code == 2
    assert diagnostic("nope/run.json").search(result.stderr), result.stderr
    assert "cannot write nope/run.json" in result.stderr and "Traceback" not in result.stderr


def test_trace_never_overwrites_the_graph(workdir: Path) -> None:
    before = (workdir / "good.py").read_text()
    result = run_cli("run", "good.py", "--inputs", NUMBERS, "--trace", "good.py")
    assert result.exit_code == 2
    assert "would overwrite the graph's own source" in result.stderr
    assert (workdir / "good.py").read_text() == before


def _interrupt_once_tracing(command: list[str], directory: Path) -> subprocess.Popen[str]:
    """Start ``command``, wait until its trace has events, send SIGINT; return the process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command, cwd=directory, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        partial = [directory / name for name in temp_files(directory)]
        if partial and partial[0].stat().st_size > 4096:  # events are on disk: mid-run
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("the run never started writing its trace")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    return proc


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_an_interrupted_run_leaves_a_complete_trace_marked_cancelled(workdir: Path) -> None:
    inputs = json.dumps({"numbers": list(range(2_000))})
    proc = _interrupt_once_tracing([sys.executable, "-m", "operonx", "run", "slow.py",
                                    "--inputs", inputs, "--trace", "run.json"], workdir)
    assert proc.returncode == 130
    assert proc.stderr is not None and "interrupted" in proc.stderr.read()
    document = load(workdir / "run.json")
    (run,) = run_events(document)
    assert run["args"]["status"] == "cancelled"
    assert 0 < len(op_events(document)) < 4_000
    assert temp_files(workdir) == []


# ---------------------------------------------------------------- trace: the summary


def _trace(workdir: Path, fixture: str = "good.py", inputs: str = NUMBERS,
           *extra: str) -> Path:
    result = run_cli("run", fixture, "--inputs", inputs, "--trace", "run.json", *extra)
    assert result.exit_code in (0, 1), result.stderr
    return workdir / "run.json"


def test_summary_lists_every_op_with_count_and_durations(workdir: Path, invoke: Invoke) -> None:
    _trace(workdir, "slow.py", json.dumps({"numbers": list(range(6))}))
    result = invoke("trace", "run.json")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(r"run\.json: slow \(run 1\) · ok · wall [\d.]+ ms · 12 frames · "
                    r"max 2 in flight$", lines[0]), lines[0]
    assert lines[1].split() == ["op", "count", "total", "p50", "p95", "max", "in", "flight"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {"each_item", "wait"}
    assert rows["wait"][1] == "6" and rows["wait"][-1] == "2"  # max_concurrent=2
    assert rows["each_item"][1] == "6" and rows["each_item"][-1] == "1"
    # each `wait` sleeps 50 ms: six of them take at least 300 ms in all
    assert rows["wait"][3] == "ms" and float(rows["wait"][2]) >= 300


def test_summary_of_a_failed_run_says_so(workdir: Path) -> None:
    _trace(workdir, "op_error.py", NUMBERS, "--graph", "flat")
    result = run_cli("trace", "run.json")
    assert result.exit_code == 0
    assert " · error · " in result.stdout.splitlines()[0]
    assert "OpError: op 'check' at index (1,)" in result.stdout


@pytest.mark.parametrize(("text", "message", "located"), [
    ('{"traceEvents": [\n{"ph": "X"', "invalid JSON", "run.json:2:11"),
    ("[1, 2, 3]", "not a trace", "run.json:1:1"),
    ('{"traceEvents": []}', "not an operonx trace", "run.json:1:1"),
    ('{"traceEvents": [], "otherData": {"format": "operonx-trace", "version": 9}}',
     "unsupported trace format version 9", "run.json:1:1"),
    ('{"traceEvents": [{"ph": "X", "cat": "op", "pid": 1}], "otherData": {"format": '
     '"operonx-trace", "version": 1, "runs": [{"pid": 1, "graph": "g", "status": "ok", '
     '"frames": 1}]}}', "traceEvents[0].ts is missing or not a number", "run.json"),
    ('{"traceEvents": [], "otherData": {"format": "operonx-trace", "version": 1, "runs": '
     '[{"pid": 1, "graph": "g", "status": "ok", "frames": 3}]}}',
     "run 1 lists 3 frame(s) in otherData.runs but the file has 0", "run.json"),
])
def test_a_malformed_or_foreign_file_is_a_located_usage_error(
        workdir: Path, invoke: Invoke, text: str, message: str, located: str) -> None:
    (workdir / "run.json").write_text(text)
    result = invoke("trace", "run.json")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{located}: error: {message}"), result.stderr
    assert "Traceback" not in result.stderr


def test_a_truncated_trace_hints_at_a_killed_run(workdir: Path) -> None:
    path = _trace(workdir)
    path.write_bytes(path.read_bytes()[:300])
    result = run_cli("trace", "run.json")
    assert result.exit_code == 2
    assert "hint: the file ends early" in result.stderr


def test_a_missing_trace_is_a_usage_error(workdir: Path) -> None:
    result = run_cli("trace", "nope.json")
    assert result.exit_code == 2
    assert result.stderr.startswith("nope.json: error: cannot read trace")


# ------------------------------------------------------------------ trace: a picture


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_the_timeline_renders_headless_with_a_lane_per_op(workdir: Path, invoke: Invoke,
                                                           fmt: str) -> None:
    _trace(workdir, "slow.py", json.dumps({"numbers": list(range(6))}))
    result = invoke("trace", "run.json", "-o", f"timeline.{fmt}")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    data = (workdir / f"timeline.{fmt}").read_bytes()
    if fmt == "png":
        width, height = png_size(data)
        assert width == 1000 and 250 <= height <= 600
        assert 5_000 < len(data) < 200_000
    else:
        text = data.decode()
        assert text.lstrip().startswith("<?xml") and "<svg" in text
        labels = re.findall(r"<text[^>]*>([^<]*)</text>", text)
        # A lane label per op with its count and total, the title with the wall time,
        # and the in-flight strip.
        assert any(label.startswith("each_item") for label in labels), labels
        assert any(label.startswith("wait") for label in labels), labels
        assert "6× · Σ" in text
        assert any("slow (run 1) · wall" in label for label in labels), labels
        assert "max 2 at once" in labels and "in flight" in labels
    assert temp_files(workdir) == []


def test_the_timeline_of_a_file_with_several_runs_needs_run(workdir: Path) -> None:
    from operonx.core import Engine
    from operonx.tracing import ChromeTraceTracer
    from tests.tracing.helpers import streaming_graph

    engine = Engine(streaming_graph(), tracers=[ChromeTraceTracer(workdir / "runs.json")])
    engine.run_sync({"numbers": [1]})
    engine.run_sync({"numbers": [1, 2]})
    result = run_cli("trace", "runs.json", "-o", "t.svg")
    assert result.exit_code == 2
    assert "holds 2 runs (pids 1, 2); pick one with --run N" in result.stderr
    assert not (workdir / "t.svg").exists()
    assert run_cli("trace", "runs.json", "-o", "t.svg", "--run", "2").exit_code == 0
    missing = run_cli("trace", "runs.json", "--run", "7")
    assert missing.exit_code == 2 and "no run 7 in this trace (runs: 1, 2)" in missing.stderr
    both = run_cli("trace", "runs.json")
    assert both.exit_code == 0 and "(run 1)" in both.stdout and "(run 2)" in both.stdout


@pytest.mark.parametrize("output", ["timeline.jpg", "timeline"])
def test_the_picture_format_comes_from_the_extension(workdir: Path, output: str) -> None:
    _trace(workdir)
    result = run_cli("trace", "run.json", "-o", output)
    assert result.exit_code == 2
    assert "does not end in .svg or .png" in result.stderr


def test_the_picture_never_overwrites_the_trace(workdir: Path) -> None:
    path = _trace(workdir)
    os.symlink("run.json", workdir / "alias.svg")
    before = path.read_bytes()
    result = run_cli("trace", "run.json", "-o", "alias.svg")
    assert result.exit_code == 2 and "would overwrite the trace itself" in result.stderr
    assert path.read_bytes() == before


BLOCK_MATPLOTLIB = """
import importlib.abc, sys

class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Blocker())
from operonx.cli import main
sys.argv = ["operonx", *sys.argv[1:]]
main()
"""


def test_without_matplotlib_the_picture_names_the_extra(workdir: Path) -> None:
    _trace(workdir)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def without_matplotlib(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", BLOCK_MATPLOTLIB, *args], cwd=workdir,
                              env=env, capture_output=True, text=True, timeout=60, check=False)

    done = without_matplotlib("trace", "run.json", "-o", "timeline.png")
    assert done.returncode == 2
    assert done.stderr.startswith("error: drawing a timeline needs matplotlib"), done.stderr
    assert "pip install 'operonx[viz]'" in done.stderr and "Traceback" not in done.stderr
    assert not (workdir / "timeline.png").exists()
    summary = without_matplotlib("trace", "run.json")  # the text summary needs no extra
    assert summary.returncode == 0 and "each_item" in summary.stdout
