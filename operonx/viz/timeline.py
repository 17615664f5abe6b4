"""Draw one run of a trace file as a timeline (SVG or PNG), headless, with matplotlib.

One lane per op (in track order), a bar per execution; executions of an op
that overlap are stacked in rows inside its lane, so a fan-out shows as a
fan. Below, a strip with how many executions were in flight over time. The
title has the run's wall time, each lane's label the op's count and total.

matplotlib comes with the ``viz`` extra; it is imported when a picture is
asked for, never when operonx is.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from operonx.tracing.chrome_read import Execution, RunTrace, format_us, in_flight, op_stats

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["FORMATS", "VizUnavailable", "render_timeline"]

FORMATS = ("svg", "png")
INSTALL = "pip install 'operonx[viz]'"
MAX_ROWS = 8  # rows per lane; beyond that, overlapping executions share rows (drawn translucent)
_LANE_HEIGHT_IN = 0.42
_STRIP_HEIGHT_IN = 1.3
_WIDTH_IN = 10.0
_MIN_BAR_FRACTION = 500  # a bar is at least 1/500 of the time axis wide: about two pixels


class VizUnavailable(Exception):
    """matplotlib is not installed (the ``viz`` extra)."""


def render_timeline(run: RunTrace, fmt: str, title: str | None = None) -> bytes:
    """The picture of ``run`` as SVG or PNG bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    try:
        from matplotlib import rc_context
        from matplotlib.figure import Figure
    except ImportError as err:
        raise VizUnavailable(f"drawing a timeline needs matplotlib: {INSTALL}") from err

    ops = run.ops
    height = 1.4 + _LANE_HEIGHT_IN * max(1, len(ops)) + _STRIP_HEIGHT_IN
    # Text stays text in SVG (searchable, small); no dates or random ids: same run, same bytes.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "operonx", "font.size": 9}):
        figure = Figure(figsize=(_WIDTH_IN, height), layout="constrained")
        lanes, strip = figure.subplots(
            2, 1, sharex=True,
            gridspec_kw={"height_ratios": [_LANE_HEIGHT_IN * max(1, len(ops)), _STRIP_HEIGHT_IN]})
        scale, unit = _time_unit(run.wall_us)
        origin = run.start_us
        end = max([run.wall_us, *(e.end_us - origin for e in run.executions)]) / scale or 1.0
        _draw_lanes(lanes, run, ops, origin, scale, min_width=end / _MIN_BAR_FRACTION)
        _draw_strip(strip, run.executions, origin, scale)
        strip.set_xlabel(f"time since the run started ({unit})")
        strip.set_xlim(0, end * 1.01)
        figure.suptitle(title or _title(run), fontsize=11)
        buffer = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        figure.savefig(buffer, format=fmt, dpi=100, metadata=metadata)
    return buffer.getvalue()


def _title(run: RunTrace) -> str:
    status = "" if run.status == "ok" else f" · {run.status}"
    return (f"{run.graph} (run {run.pid}) · wall {format_us(run.wall_us)} · "
            f"{len(run.executions)} executions{status}")


def _time_unit(wall_us: float) -> tuple[float, str]:
    if wall_us >= 2e6:
        return 1e6, "s"
    if wall_us >= 2e3:
        return 1e3, "ms"
    return 1.0, "µs"


def _draw_lanes(ax: Axes, run: RunTrace, ops: Sequence[str], origin: float, scale: float,
                min_width: float) -> None:
    from matplotlib import colormaps

    colours = colormaps["tab10"]
    by_op: dict[str, list[Execution]] = {op: [] for op in ops}
    for execution in run.executions:
        by_op[execution.op].append(execution)
    ax.axvspan(0, run.wall_us / scale, color="0.94", zorder=0)  # the run's wall time
    for lane, op in enumerate(ops):
        executions = by_op[op]
        rows = _rows(executions)
        count = max(rows, default=0) + 1
        row_height = 0.8 / count
        top = lane - 0.4  # lane 0 is drawn at the top (the y axis is inverted below)
        bars: dict[int, list[tuple[float, float]]] = {}
        for execution, row in zip(executions, rows, strict=True):
            # An execution far shorter than a pixel is still drawn, a pixel wide.
            bars.setdefault(row, []).append(((execution.start_us - origin) / scale,
                                             max(execution.dur_us / scale, min_width)))
        colour = colours(lane % 10)
        alpha = 1.0 if count < MAX_ROWS else 0.6
        for row, spans in bars.items():
            y = (top + row * row_height, row_height * 0.9)
            # White edges keep back-to-back executions apart; they would hide a thin bar.
            wide = [span for span in spans if span[1] > 3 * min_width]
            thin = [span for span in spans if span[1] <= 3 * min_width]
            ax.broken_barh(wide, y, facecolors=colour, edgecolors="white", linewidth=0.5,
                           alpha=alpha, zorder=2)
            ax.broken_barh(thin, y, facecolors=colour, linewidth=0, alpha=alpha, zorder=2)
    stats = {s.op: s for s in op_stats(run)}
    ax.set_yticks(range(len(ops)),
                  [f"{op}\n{stats[op].count}× · Σ {format_us(stats[op].total_us)}"
                   for op in ops])
    ax.set_ylim(len(ops) - 0.5, -0.5)
    ax.grid(axis="x", color="0.85", linewidth=0.6, zorder=1)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _rows(executions: Sequence[Execution]) -> list[int]:
    """The row of each execution: the first row free at its start.

    Greedy in start order uses as few rows as the most executions at once
    (capped at MAX_ROWS, after which rows are reused round-robin).
    """
    ends: list[float] = []
    rows = [0] * len(executions)
    overflow = 0
    for n in sorted(range(len(executions)),
                    key=lambda n: (executions[n].start_us, executions[n].end_us)):
        execution = executions[n]
        free = next((i for i, end in enumerate(ends) if end <= execution.start_us), None)
        if free is None and len(ends) < MAX_ROWS:
            ends.append(execution.end_us)
            free = len(ends) - 1
        elif free is None:
            free = overflow % MAX_ROWS
            overflow += 1
        ends[free] = max(ends[free], execution.end_us)
        rows[n] = free
    return rows


def _draw_strip(ax: Axes, executions: Sequence[Execution], origin: float, scale: float) -> None:
    steps = in_flight(executions)
    times = [0.0] + [(t - origin) / scale for t, _ in steps]
    counts = [0] + [c for _, c in steps]
    ax.fill_between(times, counts, step="post", color="#4c72b0", alpha=0.35, linewidth=0)
    ax.step(times, counts, where="post", color="#4c72b0", linewidth=1.0)
    peak = max(counts)
    ax.set_ylim(0, max(1, peak) * 1.25)
    ax.set_ylabel("in flight")
    ax.set_yticks(sorted({0, peak}))
    ax.text(0.995, 0.95, f"max {peak} at once", transform=ax.transAxes, ha="right", va="top")
    ax.grid(axis="x", color="0.85", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
