"""Reading a trace back: in-flight counting, percentiles, the per-op table."""

from __future__ import annotations

from pathlib import Path

from operonx.core import Engine
from operonx.tracing import ChromeTraceTracer
from operonx.tracing.chrome_read import (
    Execution,
    format_us,
    in_flight,
    load_trace,
    max_in_flight,
    op_stats,
    percentile,
)
from tests.tracing.helpers import nested_graph


def ex(start: float, end: float, op: str = "a") -> Execution:
    return Execution(op, (), start, end - start)


def test_in_flight_steps_and_touching_executions_do_not_overlap() -> None:
    executions = [ex(0, 10), ex(2, 5), ex(5, 8), ex(10, 12)]
    assert in_flight(executions) == [(0, 1), (2, 2), (5, 2), (8, 1), (10, 1), (12, 0)]
    assert max_in_flight(executions) == 2
    assert max_in_flight([]) == 0


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert percentile(values, 0.50) == 10 and percentile(values, 0.95) == 19
    assert percentile([7.0], 0.95) == 7.0


def test_durations_read_for_people() -> None:
    assert [format_us(v) for v in (0.85, 12.34, 4560, 2.1e6, 250)] == [
        "850 ns", "12.3 µs", "4.56 ms", "2.1 s", "250 µs"]


def test_a_written_trace_reads_back_with_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    Engine(nested_graph(), tracers=[ChromeTraceTracer(path)]).run_sync({"numbers": [1, 2, 3]})
    (run,) = load_trace(str(path)).runs
    assert (run.pid, run.graph, run.status, run.error) == (1, "nested", "ok", None)
    assert run.ops == ["each_item", "upto", "double"]
    stats = {s.op: s for s in op_stats(run)}
    assert {op: s.count for op, s in stats.items()} == {"each_item": 3, "upto": 6, "double": 6}
    assert all(s.p50_us <= s.p95_us <= s.total_us for s in stats.values())
    assert run.wall_us >= max(e.end_us for e in run.executions) - run.start_us
