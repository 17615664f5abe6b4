"""A tracer that appends one JSON object per frame to a file (JSON lines)."""

from __future__ import annotations

import json
import os
from typing import IO, Any

from operonx.core.frame import Frame
from operonx.tracing.base import RunInfo


class JsonlTracer:
    """Writes ``run_start``, one ``frame`` line per frame, and ``run_end`` to ``path``.

    Values that JSON cannot encode are written as their ``repr``. The file is
    opened per run and flushed when the run ends, so a crashed run still leaves
    every frame written before the crash.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file: IO[str] | None = None

    def on_run_start(self, run: RunInfo) -> None:
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in on_run_end
        self._write({"event": "run_start", "graph": run.graph_name, "trace_id": run.span.trace_id,
                     "span_id": run.span.span_id, "time_ns": run.start_ns})

    def on_frame(self, frame: Frame) -> None:
        self._write({
            "event": "frame", "op": frame.op_name, "index": list(frame.index),
            "outputs": dict(frame.outputs), "trace_id": frame.span.trace_id,
            "span_id": frame.span.span_id, "parent_span_id": frame.span.parent_span_id,
            "start_ns": frame.start_ns, "end_ns": frame.end_ns,
        })

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None:
        self._write({"event": "run_end", "trace_id": run.span.trace_id,
                     "error": None if error is None else f"{type(error).__name__}: {error}"})
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record, default=repr) + "\n")
