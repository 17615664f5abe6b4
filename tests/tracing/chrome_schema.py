"""A small schema check of the trace file (docs/trace_format.md), shared by the trace tests.

It checks what Perfetto and chrome://tracing need (the Trace Event Format's
required fields, named tracks, X events that nest on each track) and what
operonx adds (args, otherData). ``check_trace`` returns the parsed document.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
METADATA = {"process_name": "name", "process_sort_index": "sort_index",
            "thread_name": "name", "thread_sort_index": "sort_index"}
STATUSES = {"ok", "error", "cancelled"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load(path: Path) -> dict[str, Any]:
    """Parse ``path`` (it must be complete, valid JSON) and check it."""
    document = json.loads(path.read_text(encoding="utf-8"))
    check_trace(document)
    return document  # type: ignore[no-any-return]


def check_trace(document: Any) -> None:
    assert isinstance(document, dict), "a trace is a JSON object"
    events = document["traceEvents"]
    assert isinstance(events, list)
    assert document["displayTimeUnit"] in ("ms", "ns")
    other = document["otherData"]
    assert other["format"] == "operonx-trace" and other["version"] == 1
    assert isinstance(other["producer"], str) and _is_int(other["ts_origin_unix_ns"])
    runs = {record["pid"]: record for record in other["runs"]}
    assert len(runs) == len(other["runs"]), "one record per pid"
    for record in runs.values():
        assert record["status"] in STATUSES
        assert _is_int(record["frames"]) and isinstance(record["graph"], str)

    named_threads: set[tuple[int, int]] = set()
    named_processes: set[int] = set()
    tracks: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    op_events: dict[int, int] = defaultdict(int)
    run_events: dict[int, dict[str, Any]] = {}
    for event in events:
        assert isinstance(event, dict)
        assert event["ph"] in ("X", "M"), event
        assert isinstance(event["name"], str) and event["name"], event
        assert _is_int(event["pid"]) and _is_int(event["tid"]), event
        assert event["pid"] in runs, f"pid {event['pid']} is not in otherData.runs"
        if event["ph"] == "M":
            key = METADATA[event["name"]]
            value = event["args"][key]
            assert isinstance(value, str) if key == "name" else _is_int(value), event
            if event["name"] == "thread_name":
                named_threads.add((event["pid"], event["tid"]))
            if event["name"] == "process_name":
                named_processes.add(event["pid"])
            continue
        assert _is_number(event["ts"]) and _is_number(event["dur"]) and event["dur"] >= 0
        tracks[event["pid"], event["tid"]].append((event["ts"], event["ts"] + event["dur"]))
        args = event["args"]
        if event["cat"] == "op":
            op_events[event["pid"]] += 1
            _check_op_args(event, args)
        else:
            assert event["cat"] == "run", event
            assert event["pid"] not in run_events, "one run event per run"
            run_events[event["pid"]] = event
            _check_run_args(event, args, runs[event["pid"]])

    assert set(run_events) == set(runs), "every run has its run event"
    for pid, record in runs.items():
        assert op_events[pid] == record["frames"], (pid, op_events[pid], record)
    assert set(tracks) <= named_threads, "every track is named"
    assert set(runs) <= named_processes
    for key, spans in tracks.items():
        _check_nesting(key, spans)


def _check_op_args(event: dict[str, Any], args: dict[str, Any]) -> None:
    assert args["op"] == event["name"]
    assert isinstance(args["index"], list) and all(_is_int(i) for i in args["index"])
    assert TRACE_ID.match(args["trace_id"]) and SPAN_ID.match(args["span_id"])
    assert SPAN_ID.match(args["parent_span_id"]), "only END (the run event) has no parent"
    _check_outputs(args["outputs"])


def _check_run_args(event: dict[str, Any], args: dict[str, Any], record: dict[str, Any]) -> None:
    assert args["graph"] == event["name"] == record["graph"]
    assert args["status"] == record["status"] and args["error"] == record["error"]
    assert (args["error"] is None) == (args["status"] == "ok")
    assert args["frames"] == record["frames"]
    assert args["parent_span_id"] is None
    assert args["trace_id"] == record["trace_id"] and args["span_id"] == record["span_id"]
    _check_outputs(args["outputs"])


def _check_outputs(outputs: Any) -> None:
    assert isinstance(outputs, dict) and len(outputs) <= 17
    for key, value in outputs.items():
        assert isinstance(value, str) and len(value) <= 120 and len(key) <= 120


def _check_nesting(key: tuple[int, int], spans: list[tuple[float, float]]) -> None:
    """X events on one track must nest or be disjoint (Perfetto drops the others)."""
    slack = 1e-3  # ts + dur is a float sum: allow a rounding error far below a nanosecond
    open_ends: list[float] = []
    for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
        while open_ends and open_ends[-1] <= start + slack:
            open_ends.pop()
        assert not open_ends or end <= open_ends[-1] + slack, f"track {key}: overlapping events"
        open_ends.append(end)


def op_events(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in document["traceEvents"] if e["ph"] == "X" and e["cat"] == "op"]


def run_events(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in document["traceEvents"] if e["ph"] == "X" and e["cat"] == "run"]


def track_names(document: dict[str, Any]) -> dict[tuple[int, int], str]:
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in document["traceEvents"]
            if e["ph"] == "M" and e["name"] == "thread_name"}
