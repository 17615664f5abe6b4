"""When does the Ray target pay off? Its per-task cost, and a CPU-bound fan-out, measured.

    python bench/ray/run.py            # ~2 minutes: writes bench/ray/RESULTS.md
    python bench/ray/run.py --quick    # ~30 s smoke run: writes bench/out/RAY_RESULTS.quick.md

Starts a private local Ray cluster in this process (2 CPUs, 200 MB object store, no
dashboard, loopback only), then times, interleaved and best-of/median over rounds:

* ``seed_fanout`` (``bench/graphs/seed_fanout.py``): the seed's generator -> ``double``,
  per frame, on the Engine, the local compiled module (-O2) and the Ray module — the
  cost of one Ray task (plus its report) per frame against in-process calls;
* ``cpu_fanout`` (``bench/ray/cpu_fanout.py``): 32 frames of pure-Python work through a
  ``bound="cpu"`` op, at three work sizes, on a plain sequential loop, the Engine, the
  local compiled module and the Ray module: where Ray's parallelism beats its overhead;
* a bare Ray round trip (``ray.get(f.remote())``), for reference.

Every engine's result is checked against the sequential answer before it is timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

# Before ray is imported (it reads them once): a node on the loopback interface only.
os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                   "RAY_USAGE_STATS_ENABLED": "0"})

import cpu_fanout  # noqa: E402
import ray  # noqa: E402

from compiler import compile_file  # noqa: E402
from operonx.core import Engine  # noqa: E402
from tests.compiler.helpers import load_source  # noqa: E402

WORK_SIZES = {"1 ms": 20_000, "10 ms": 200_000, "50 ms": 1_000_000}  # spin() rounds per frame
FRAMES = 32


def timed(fn: Callable[[], Any], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def modules(path: str, directory: Path) -> dict[str, Any]:
    """The local -O2 module and the Ray module of ``path``, imported."""
    local = load_source(compile_file(path).source, directory, "local")
    on_ray = load_source(compile_file(path, target="ray").source, directory, "ray")
    return {"compiled -O2": local, "ray": on_ray}


def engines(path: str, graph: Any, directory: Path) -> dict[str, Callable[[dict[str, Any]], Any]]:
    built = modules(path, directory)
    engine = Engine(graph)
    return {"Engine": engine.run_sync, "compiled -O2": built["compiled -O2"].run_sync,
            "ray": built["ray"].run_sync}


def seed_case(directory: Path, frames: int, rounds: int) -> list[tuple[str, float, float]]:
    path = str(REPO / "bench" / "graphs" / "seed_fanout.py")
    from compiler.frontend.load import find_graphs, load_module, select_graph

    graph = select_graph(find_graphs(load_module(path)), None, path)[1]
    inputs = {"numbers": list(range(frames))}
    want = {"result": [2 * i for i in range(frames)]}
    rows = []
    for name, run in engines(path, graph, directory).items():
        assert run(inputs) == want, name
        samples = timed(lambda run=run: run(inputs), rounds)
        rows.append((name, statistics.median(samples) / frames, min(samples) / frames))
    return rows


def cpu_case(directory: Path, rounds: int,
             sizes: dict[str, int]) -> dict[str, dict[str, list[float]]]:
    """Per work size and engine, the samples; engines interleaved within each round."""
    path = str(HERE / "cpu_fanout.py")
    runs = engines(path, cpu_fanout.graph, directory)
    table: dict[str, dict[str, list[float]]] = {}
    for label, work in sizes.items():
        inputs = {"n": FRAMES, "rounds": work}
        want = {"value": [cpu_fanout.spin(work) + i for i in range(FRAMES)]}

        def sequential(inputs: dict[str, Any] = inputs) -> Any:
            return {"value": [cpu_fanout.spin(inputs["rounds"]) + i for i in range(FRAMES)]}

        everyone = {"sequential": sequential, **runs}
        for name, run in everyone.items():
            assert run(inputs) == want, (name, label)
        row: dict[str, list[float]] = {name: [] for name in everyone}
        for _ in range(rounds):  # interleaved: a busy moment of the machine hits every engine
            for name, run in everyone.items():
                row[name] += timed(lambda run=run, inputs=inputs: run(inputs), 1)
        table[label] = row
    return table


def round_trip(rounds: int) -> float:
    @ray.remote
    def nothing() -> None:
        return None

    ray.get(nothing.remote())
    samples = timed(lambda: ray.get([nothing.remote() for _ in range(200)]), rounds)
    return statistics.median(samples) / 200


def fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, one round")
    args = parser.parse_args()
    rounds = 1 if args.quick else 5
    frames = 200 if args.quick else 2000
    sizes = dict(list(WORK_SIZES.items())[:2]) if args.quick else WORK_SIZES
    OUT.mkdir(parents=True, exist_ok=True)
    directory = OUT / "ray_modules"
    directory.mkdir(exist_ok=True)

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    ray.init(num_cpus=2, object_store_memory=200 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False, logging_level="WARNING")
    startup = time.perf_counter() - started
    try:
        trip = round_trip(rounds)
        seed = seed_case(directory, frames, rounds)
        cpu = cpu_case(directory, rounds, sizes)
    finally:
        ray.shutdown()
    load_after = os.getloadavg()[0]

    lines = [
        "# The Ray target: per-task cost and a CPU-bound fan-out",
        "",
        f"`python bench/ray/run.py{' --quick' if args.quick else ''}` on "
        f"{dt.date.today().isoformat()}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, CPython {platform.python_version()}, ray {ray.__version__}; "
        f"a local cluster of 2 CPUs started in-process ({startup:.1f} s). Medians of "
        f"{rounds} round(s). Load average (1 min) {load_before:.1f} before, {load_after:.1f} "
        "after: the machine is shared, and Ray's two workers need both cores to themselves "
        "to show their parallelism. Method and reading: `bench/ray/run.py`, README \"Running "
        "on a cluster\".",
        "",
        f"A bare Ray task round trip (`ray.get` of 200 no-op tasks, per task): {fmt(trip)}.",
        "",
        f"## seed_fanout: generator → `double`, {frames} frames, time per frame",
        "",
        "| engine | median | best |",
        "|---|---:|---:|",
        *(f"| {name} | {fmt(median)} | {fmt(best)} |" for name, median, best in seed),
        "",
        f"## cpu_fanout: {FRAMES} frames of pure-Python work through a `bound=\"cpu\"` op, "
        "time per run: median (best)",
        "",
        "| work per frame | sequential | Engine | compiled -O2 | ray | ray speed-up, median "
        "(best) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, row in cpu.items():
        cells = [f"{fmt(statistics.median(row[name]))} ({fmt(min(row[name]))})"
                 for name in ("sequential", "Engine", "compiled -O2", "ray")]
        speedup = statistics.median(row["sequential"]) / statistics.median(row["ray"])
        best = min(row["sequential"]) / min(row["ray"])
        lines.append(f"| {label} | {' | '.join(cells)} | {speedup:.2f}× ({best:.2f}×) |")
    lines.append("")
    target = OUT / "RAY_RESULTS.quick.md" if args.quick else HERE / "RESULTS.md"
    target.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    print(f"\nwrote {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
