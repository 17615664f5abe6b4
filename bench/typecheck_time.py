"""What the type check (SPEC §7.1) adds to compiling the seed example, cold and warm.

    python bench/typecheck_time.py [--runs 7] [--graph examples/streaming.py]

Every sample is a fresh process that times ``compiler.compile_file`` (load, extract,
type check, lower, generate; interpreter start-up excluded) and is itself timed from
outside (``operonx compile`` as a user runs it, start-up included). Three modes,
interleaved round by round so a slow stretch of the shared machine hits all of them:

* ``off``: ``typecheck=False`` (``--no-typecheck``);
* ``warm``: the check with mypy's cache already filled (by a run before the first round);
* ``cold``: the check with an empty cache directory (a new one per sample).

Prints the median of each and the extra time of ``warm`` and ``cold`` over ``off``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("off", "warm", "cold")


def one(graph: str, typecheck: bool) -> None:
    """Worker: compile once, print the in-process time in seconds as JSON."""
    sys.path.insert(0, REPO)
    started = time.perf_counter()
    from compiler import compile_file

    compile_file(graph, typecheck=typecheck)
    print(json.dumps({"seconds": time.perf_counter() - started}))


def sample(graph: str, mode: str, cache: str) -> tuple[float, float]:
    env = {**os.environ, "OPERONX_MYPY_CACHE_DIR": cache, "PYTHONPATH": REPO}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--one", graph, str(mode != "off")],
                          capture_output=True, text=True, env=env, check=True, timeout=300)
    wall = time.perf_counter() - started
    return json.loads(done.stdout)["seconds"], wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--graph", default=os.path.join(REPO, "examples", "streaming.py"))
    parser.add_argument("--one", nargs=2, metavar=("GRAPH", "TYPECHECK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        one(args.one[0], args.one[1] == "True")
        return 0
    with tempfile.TemporaryDirectory(prefix="operonx-typecheck-bench-") as scratch:
        warm_cache = os.path.join(scratch, "warm")
        sample(args.graph, "warm", warm_cache)  # fill it
        times: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
        for round_ in range(args.runs):
            for mode in MODES[round_ % 3:] + MODES[:round_ % 3]:
                cache = warm_cache if mode == "warm" else os.path.join(scratch, f"cold{round_}")
                times[mode].append(sample(args.graph, mode, cache))
    median = {mode: (statistics.median(t for t, _ in samples),
                     statistics.median(w for _, w in samples)) for mode, samples in times.items()}
    print(f"compile {os.path.relpath(args.graph, REPO)}: median of {args.runs} fresh processes")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| mode | compile_file | extra | `operonx compile` process | extra |")
    print("|---|---:|---:|---:|---:|")
    for mode in MODES:
        cells = []
        for i in (0, 1):
            extra = median[mode][i] - median["off"][i]
            cells += [f"{median[mode][i] * 1000:.0f} ms",
                      "" if mode == "off" else f"{extra * 1000:+.0f} ms"]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
