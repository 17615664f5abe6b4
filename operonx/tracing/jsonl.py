"""A tracer that appends one JSON object per frame to a file (JSON lines)."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import IO, Any

from operonx.core.frame import Frame
from operonx.tracing.base import RunInfo


class JsonlTracer:
    """Appends ``run_start``, one ``frame`` line per frame (``END`` included), and ``run_end``.

    A frame line carries the op, index, outputs, span ids and times, plus
    ``attempts`` (op calls for the execution: more after retries, 0 for a cache
    hit) and ``cached`` (SPEC §9).

    Every line has ``event`` and the run's ``trace_id``, so runs that overlap
    (an Engine may run concurrently with itself) can be told apart. Values that
    JSON cannot encode are written as their ``repr``. The file is opened while
    at least one run is going and closed (flushed) when the last one ends;
    runs share the one handle so their lines never interleave mid-line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file: IO[str] | None = None
        self._running: set[str] = set()  # trace ids of the runs in progress
        self._lock = threading.Lock()  # runs may trace from several threads (run_sync)

    def on_run_start(self, run: RunInfo) -> None:
        with self._lock:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - see on_run_end
            self._running.add(run.span.trace_id)
            self._write({"event": "run_start", "graph": run.graph_name,
                         "trace_id": run.span.trace_id, "span_id": run.span.span_id,
                         "time_ns": run.start_ns, "inputs": sorted(run.inputs)})

    def on_frame(self, frame: Frame) -> None:
        record = {
            "event": "frame", "op": frame.op_name, "index": list(frame.index),
            "outputs": dict(frame.outputs), "trace_id": frame.span.trace_id,
            "span_id": frame.span.span_id, "parent_span_id": frame.span.parent_span_id,
            "start_ns": frame.start_ns, "end_ns": frame.end_ns,
            "attempts": frame.attempts, "cached": frame.cached,
        }
        with self._lock:
            self._write(record)

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None:
        with self._lock:
            self._write({"event": "run_end", "trace_id": run.span.trace_id,
                         "time_ns": time.time_ns(),
                         "error": None if error is None else f"{type(error).__name__}: {error}"})
            self._running.discard(run.span.trace_id)
            if not self._running and self._file is not None:
                self._file.close()
                self._file = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is not None:  # frames of a run this tracer never saw start are dropped
            self._file.write(json.dumps(record, default=repr) + "\n")
