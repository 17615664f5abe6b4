"""Read back a trace file written by ``ChromeTraceTracer`` (or a compiled module's ``--trace``).

``load_trace`` checks the file is one of ours (docs/trace_format.md) and turns
it into plain records; ``op_stats`` and ``in_flight`` summarise a run. Every
problem with the file is a ``TraceFileError`` that says what is wrong and
where, never a ``KeyError`` from deep inside.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from operonx.tracing.chrome import FORMAT, FORMAT_VERSION

__all__ = ["Execution", "OpStats", "RunTrace", "TraceFile", "TraceFileError", "format_us",
           "in_flight", "load_trace", "max_in_flight", "op_stats", "parse_trace", "summary_text"]


class TraceFileError(Exception):
    """The file is not a trace ``operonx trace`` can read; ``line``/``col`` when known."""

    def __init__(self, message: str, path: str, line: int | None = None, col: int | None = None,
                 hint: str | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.col = col
        self.hint = hint
        where = path + (f":{line}:{col}" if line is not None and col is not None else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Execution:
    """One op event: a frame. Times in microseconds from the file's origin."""

    op: str
    index: tuple[int, ...]
    start_us: float
    dur_us: float

    @property
    def end_us(self) -> float:
        return self.start_us + self.dur_us


@dataclass(slots=True)
class RunTrace:
    """One run (one ``pid``): its own event, and its executions in file order."""

    pid: int
    graph: str
    status: str
    error: str | None
    start_us: float
    wall_us: float
    frames: int  # as the writer counted them (otherData.runs)
    executions: list[Execution] = field(default_factory=list)

    @property
    def ops(self) -> list[str]:
        """Op names in order of first appearance (the file's track order)."""
        return list(dict.fromkeys(e.op for e in self.executions))


@dataclass(frozen=True, slots=True)
class TraceFile:
    path: str
    producer: str
    runs: list[RunTrace]


@dataclass(frozen=True, slots=True)
class OpStats:
    op: str
    count: int
    total_us: float
    p50_us: float
    p95_us: float
    max_in_flight: int


# ------------------------------------------------------------------------- reading


def load_trace(path: str) -> TraceFile:
    """Read and check ``path``; raises ``TraceFileError`` for anything but a complete trace."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise TraceFileError(f"cannot read trace: {reason}", path) from err
    return parse_trace(text, path)


def parse_trace(text: str, path: str = "<trace>") -> TraceFile:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        # Ours, cut short (the writer's header, but not the closing brace), or broken at the end.
        cut_short = ((text.startswith('{"traceEvents":[') and not text.rstrip().endswith("}"))
                     or not text[err.pos:].strip())
        hint = ("the file ends early: a run killed before it ended leaves an incomplete trace"
                if cut_short else None)
        raise TraceFileError(f"invalid JSON: {err.msg}", path, err.lineno, err.colno,
                             hint) from err
    if not isinstance(document, dict) or not isinstance(document.get("traceEvents"), list):
        raise TraceFileError("not a trace: expected a JSON object with a \"traceEvents\" list "
                             "(the Trace Event Format)", path, 1, 1)
    other = document.get("otherData")
    if not isinstance(other, dict) or other.get("format") != FORMAT:
        raise TraceFileError(
            "not an operonx trace: otherData.format is not \"operonx-trace\"", path, 1, 1,
            hint="write one with `operonx run graph.py --trace run.json` or "
                 "`python out.py --trace run.json`")
    version = other.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TraceFileError(f"unsupported trace format version {version!r} (this operonx "
                             f"reads version {FORMAT_VERSION})", path, 1, 1,
                             hint="read it with the operonx that wrote it")
    runs = _runs(other.get("runs"), path)
    run_events: set[int] = set()
    for n, event in enumerate(document["traceEvents"]):
        pid = _add_event(runs, event, n, path)
        if pid is not None:
            if pid in run_events:
                raise TraceFileError(f"traceEvents[{n}] is a second run event for run {pid}",
                                     path)
            run_events.add(pid)
    for run in runs.values():
        if len(run.executions) != run.frames:
            raise TraceFileError(f"run {run.pid} lists {run.frames} frame(s) in otherData.runs "
                                 f"but the file has {len(run.executions)} op event(s) for it",
                                 path)
        if run.pid not in run_events:
            raise TraceFileError(f"run {run.pid} has no run event (cat \"run\")", path)
    producer = other.get("producer")
    return TraceFile(path, producer if isinstance(producer, str) else "?", list(runs.values()))


def _runs(records: object, path: str) -> dict[int, RunTrace]:
    if not isinstance(records, list):
        raise TraceFileError("otherData.runs is missing or not a list", path)
    runs: dict[int, RunTrace] = {}
    for n, record in enumerate(records):
        where = f"otherData.runs[{n}]"
        if not isinstance(record, dict):
            raise TraceFileError(f"{where} is not an object", path)
        pid = _field(record, "pid", int, where, path)
        error = record.get("error")
        runs[pid] = RunTrace(
            pid, _field(record, "graph", str, where, path),
            _field(record, "status", str, where, path),
            error if isinstance(error, str) else None,
            0.0, 0.0, _field(record, "frames", int, where, path))
    return runs


def _add_event(runs: dict[int, RunTrace], event: object, n: int, path: str) -> int | None:
    """Add an op event to its run, or set the run's times from its run event (its pid)."""
    where = f"traceEvents[{n}]"
    if not isinstance(event, dict):
        raise TraceFileError(f"{where} is not an object", path)
    if event.get("ph") != "X" or event.get("cat") not in ("op", "run"):
        return None  # metadata, or events another tool added: not ours to count
    pid: int = _field(event, "pid", int, where, path)
    run = runs.get(pid)
    if run is None:
        raise TraceFileError(f"{where} belongs to pid {pid}, which otherData.runs does not list",
                             path)
    ts = _number(event, "ts", where, path)
    dur = _number(event, "dur", where, path)
    if dur < 0:
        raise TraceFileError(f"{where} has a negative dur ({dur})", path)
    if event["cat"] == "run":
        run.start_us, run.wall_us = ts, dur
        return pid
    args = _field(event, "args", dict, where, path)
    index = _field(args, "index", list, f"{where}.args", path)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in index):
        raise TraceFileError(f"{where}.args.index is not a list of integers", path)
    run.executions.append(Execution(_field(event, "name", str, where, path), tuple(index),
                                    ts, dur))
    return None


def _field(record: dict[str, Any], key: str, kind: type[Any], where: str, path: str) -> Any:
    value = record.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        state = "missing" if key not in record else f"not a JSON {_KINDS[kind]}"
        raise TraceFileError(f"{where}.{key} is {state}", path)
    return value


def _number(record: dict[str, Any], key: str, where: str, path: str) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TraceFileError(f"{where}.{key} is missing or not a number", path)
    return float(value)


_KINDS: dict[type[Any], str] = {int: "integer", str: "string", dict: "object", list: "array"}


# ----------------------------------------------------------------------- summaries


def in_flight(executions: Iterable[Execution]) -> list[tuple[float, int]]:
    """How many executions are running, as steps ``(time, count from then on)`` in time order.

    An execution that ends exactly when another starts does not overlap it.
    """
    edges = sorted([(e.start_us, 1) for e in executions] + [(e.end_us, -1) for e in executions])
    steps: list[tuple[float, int]] = []
    running = 0
    for time, delta in edges:  # at equal times -1 sorts first: ends before starts
        running += delta
        if steps and steps[-1][0] == time:
            steps[-1] = (time, running)
        else:
            steps.append((time, running))
    return steps


def max_in_flight(executions: Sequence[Execution]) -> int:
    return max((count for _, count in in_flight(executions)), default=0)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def op_stats(run: RunTrace) -> list[OpStats]:
    """Per op, in track order: count, total and p50/p95 duration, max executions at once."""
    by_op: dict[str, list[Execution]] = {op: [] for op in run.ops}
    for execution in run.executions:
        by_op[execution.op].append(execution)
    stats = []
    for op, executions in by_op.items():
        durations = sorted(e.dur_us for e in executions)
        stats.append(OpStats(op, len(executions), math.fsum(durations),
                             percentile(durations, 0.50), percentile(durations, 0.95),
                             max_in_flight(executions)))
    return stats


def format_us(us: float) -> str:
    """A duration for people: ``850 ns``, ``12.3 µs``, ``4.56 ms``, ``2.10 s``."""
    for unit, scale in (("s", 1e6), ("ms", 1e3), ("µs", 1.0)):
        if us >= scale:
            value = us / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{us * 1000:.0f} ns"


def summary_text(label: str, runs: Sequence[RunTrace]) -> str:
    """What ``operonx trace run.json`` prints: a header line and an op table per run."""
    blocks = []
    for run in runs:
        head = (f"{label}: {run.graph} (run {run.pid}) · {run.status} · "
                f"wall {format_us(run.wall_us)} · {len(run.executions)} frames · "
                f"max {max_in_flight(run.executions)} in flight")
        lines = [head]
        if run.error:
            lines.append(f"  {run.error}")
        rows = [("op", "count", "total", "p50", "p95", "max in flight")]
        rows += [(s.op, str(s.count), format_us(s.total_us), format_us(s.p50_us),
                  format_us(s.p95_us), str(s.max_in_flight)) for s in op_stats(run)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                             strict=True)]
            lines.append("  " + "  ".join(cells).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"

