"""A tracer that writes Chrome's Trace Event Format, for https://ui.perfetto.dev and chrome://tracing.

The file's layout is described in docs/trace_format.md. In short: one ``pid``
per run, one ``X`` event per frame on a track (``tid``) per op, the run itself
as one ``X`` event on a ``run`` track (``END`` has no event of its own: it is
the run), and ``otherData`` saying how every run ended.

Compiled modules write the same bytes from their own frames
(templates/trace_writer.py.j2 — they import nothing from operonx); a test
feeds both writers the same frames. Change the two together.
"""

from __future__ import annotations

import asyncio
import json
import os
import reprlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO

from operonx import __version__
from operonx.core.frame import Frame
from operonx.tracing.base import RunInfo

__all__ = ["FORMAT", "FORMAT_VERSION", "ChromeTraceTracer", "summarise_outputs"]

FORMAT = "operonx-trace"  # otherData.format: how chrome_read knows the file is ours
FORMAT_VERSION = 1
LANE_STRIDE = 10_000  # thread_sort_index of an op's k-th track: (op order + 1) * stride + k
MAX_KEYS = 16  # outputs summarised per event
MAX_CHARS = 120  # per summarised value (and key)
MAX_ERROR_CHARS = 1000

_HEADER = b'{"traceEvents":['
_TRAILER = b'\n],"displayTimeUnit":"ms","otherData":'

# reprlib stops early in long containers and strings, so a summary costs a bounded
# amount of work even for a result list of millions of items.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = MAX_CHARS
_REPR.maxlevel = 3


def _cut(text: str, limit: int = MAX_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def summarise_outputs(outputs: Mapping[str, object]) -> dict[str, str]:
    """A bounded, JSON-safe stand-in for a frame's outputs: at most 16 short reprs."""
    summary: dict[str, str] = {}
    for n, (key, value) in enumerate(outputs.items()):
        if n == MAX_KEYS:
            summary["…"] = f"{len(outputs) - MAX_KEYS} more key(s)"
            break
        summary[_cut(str(key))] = _cut(_REPR.repr(value))
    return summary


def run_status(error: BaseException | None) -> tuple[str, str | None]:
    """``("ok" | "error" | "cancelled", message)`` for how a run ended."""
    if error is None:
        return "ok", None
    status = ("cancelled" if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt))
              else "error")
    return status, _cut(f"{type(error).__name__}: {error}", MAX_ERROR_CHARS)


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _encode(event: Mapping[str, object]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


@dataclass(slots=True)
class _RunTrack:
    """What the writer keeps per run in progress: its ids and each op's tracks, not frames."""

    pid: int
    graph: str
    trace_id: str
    span_id: str
    start_ns: int
    run_tid: int
    record: dict[str, object]  # this run's entry in otherData.runs
    lanes: dict[str, list[list[int]]] = field(default_factory=dict)  # op -> [[tid, busy until]]
    frames: int = 0
    end: Frame | None = None


class ChromeTraceTracer:
    """Writes every run it sees to ``path`` in the Trace Event Format, as the frames arrive.

    The file is created (replacing what was there) when the first run starts;
    each event is written as its frame arrives, and the end of the JSON
    document when the last run in progress ends, whatever way it ended, so the
    file is valid JSON whenever no run is in progress. A later run continues
    the same file. Only per-run and per-track state is kept, so a run of any
    length traces in constant memory.
    """

    producer = f"operonx {__version__} engine"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()  # runs may trace from several threads (run_sync)
        self._file: IO[bytes] | None = None
        self._resume_at: int | None = None  # where a completed file's trailer starts
        self._closed_size = 0  # the completed file's size, to tell it from a replaced one
        self._origin_ns = 0
        self._events = 0
        self._next_pid = 1
        self._next_tid = 1
        self._running: dict[str, _RunTrack] = {}  # trace id -> run
        self._records: list[dict[str, object]] = []  # otherData.runs, by pid

    @property
    def complete(self) -> bool:
        """True when at least one run was written and none is in progress (the file is valid)."""
        return self._file is None and self._resume_at is not None

    # -- Tracer protocol

    def on_run_start(self, run: RunInfo) -> None:
        with self._lock:
            if self._file is None:
                self._open(run.start_ns)
            track = _RunTrack(self._next_pid, run.graph_name, run.span.trace_id,
                              run.span.span_id, run.start_ns, self._new_tid(),
                              {"pid": self._next_pid, "graph": run.graph_name,
                               "trace_id": run.span.trace_id, "span_id": run.span.span_id,
                               "status": "running", "error": None, "frames": 0})
            self._next_pid += 1
            self._running[track.trace_id] = track
            self._records.append(track.record)
            self._metadata(track, track.run_tid, "process_name",
                           {"name": f"{track.graph} (run {track.pid})"})
            self._metadata(track, track.run_tid, "process_sort_index", {"sort_index": track.pid})
            self._metadata(track, track.run_tid, "thread_name", {"name": "run"})
            self._metadata(track, track.run_tid, "thread_sort_index", {"sort_index": 0})

    def on_frame(self, frame: Frame) -> None:
        with self._lock:
            track = self._running.get(frame.span.trace_id)
            if track is None:  # a frame of a run this tracer never saw start
                return
            if frame.span.parent_span_id is None:  # only END has no parent: it is the run
                track.end = frame
                return
            self._op_event(track, frame)

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None:
        with self._lock:
            track = self._running.pop(run.span.trace_id, None)
            if track is None:
                return
            self._run_event(track, error)
            if not self._running:
                self._close()

    # -- events

    def _op_event(self, track: _RunTrack, frame: Frame) -> None:
        op = frame.op_name
        tid = self._lane(track, op, frame.start_ns, frame.end_ns)
        span = frame.span
        track.frames += 1
        self._write(_encode({
            "ph": "X", "cat": "op", "name": op, "pid": track.pid, "tid": tid,
            "ts": (frame.start_ns - self._origin_ns) / 1000,
            "dur": max(0, frame.end_ns - frame.start_ns) / 1000,
            "args": {"op": op, "index": list(frame.index), "trace_id": span.trace_id,
                     "span_id": span.span_id, "parent_span_id": span.parent_span_id,
                     "outputs": summarise_outputs(frame.outputs)}}))

    def _lane(self, track: _RunTrack, op: str, start_ns: int, end_ns: int) -> int:
        """The op's first track free at ``start_ns``; a new one when all are busy.

        Frames arrive when they end, not in start order, so a track is free only
        from the latest end of anything on it: never an overlap, at worst an
        extra track.
        """
        lanes = track.lanes.get(op)
        if lanes is None:
            lanes = track.lanes[op] = []
        for lane in lanes:
            if lane[1] <= start_ns:
                lane[1] = max(lane[1], end_ns)
                return lane[0]
        tid = self._new_tid()
        order = list(track.lanes).index(op)
        name = op if not lanes else f"{op} #{len(lanes) + 1}"
        self._metadata(track, tid, "thread_name", {"name": name})
        self._metadata(track, tid, "thread_sort_index",
                       {"sort_index": (order + 1) * LANE_STRIDE + len(lanes)})
        lanes.append([tid, end_ns])
        return tid

    def _run_event(self, track: _RunTrack, error: BaseException | None) -> None:
        status, message = run_status(error)
        end = track.end
        end_ns = end.end_ns if end is not None else time.time_ns()
        outputs = summarise_outputs(end.outputs) if end is not None else {}
        track.record.update(status=status, error=message, frames=track.frames)
        self._write(_encode({
            "ph": "X", "cat": "run", "name": track.graph, "pid": track.pid,
            "tid": track.run_tid, "ts": (track.start_ns - self._origin_ns) / 1000,
            "dur": max(0, end_ns - track.start_ns) / 1000,
            "args": {"graph": track.graph, "status": status, "error": message,
                     "frames": track.frames, "trace_id": track.trace_id,
                     "span_id": track.span_id, "parent_span_id": None, "outputs": outputs}}))

    def _metadata(self, track: _RunTrack, tid: int, name: str, args: dict[str, object]) -> None:
        self._write(_encode({"ph": "M", "name": name, "pid": track.pid, "tid": tid,
                             "args": args}))

    def _new_tid(self) -> int:
        tid = self._next_tid
        self._next_tid += 1
        return tid

    # -- the file

    def _open(self, start_ns: int) -> None:
        if self._resume_at is not None and _size(self.path) == self._closed_size:
            # Continue the file this tracer completed: overwrite its trailer. (A file
            # removed or replaced since then is started over.)
            self._file = open(self.path, "r+b")  # noqa: SIM115 - closed in _close
            self._file.seek(self._resume_at)
            self._file.truncate()
            return
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in _close
        self._file.write(_HEADER)
        self._origin_ns = start_ns
        self._events = 0
        self._next_pid = self._next_tid = 1  # no run is in progress: numbering starts over
        self._records = []

    def _write(self, event: bytes) -> None:
        assert self._file is not None
        self._file.write(b",\n" if self._events else b"\n")
        self._file.write(event)
        self._events += 1

    def _close(self) -> None:
        assert self._file is not None
        self._resume_at = self._file.tell()
        other = {"format": FORMAT, "version": FORMAT_VERSION, "producer": self.producer,
                 "ts_origin_unix_ns": self._origin_ns, "runs": self._records}
        self._file.write(_TRAILER + _encode(other) + b"}\n")
        self._closed_size = self._file.tell()
        self._file.close()
        self._file = None
