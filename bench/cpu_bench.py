"""CPU-bound fan-out: what ``bound="cpu"`` buys on every core (SPEC §10).

    python bench/cpu_bench.py            # 64 items x ~20 ms, 5 rounds -> bench/RESULTS_cpu.md
    python bench/cpu_bench.py --quick    # 16 items x ~10 ms, 2 rounds -> bench/out/

``bench/graphs/cpu_fanout.py``: a generator feeding ``crunch``, a ``bound="cpu"``
op whose body is ``burn``, pure-Python arithmetic that holds the GIL throughout.
The same ``burn`` calls, the same items, five ways:

* ``sequential`` — a plain ``for`` loop: the baseline every speedup divides;
* ``threads`` — ``run_in_executor`` on a thread pool, gathered: what
  ``bound="cpu"`` did before it used processes (the GIL serialises it);
* ``process pool (hand-written)`` — ``ProcessPoolExecutor(W)`` gathered the same way;
* ``Engine`` — ``Engine(graph, cpu_workers=W).run(...)``;
* ``compiled -O2`` — the module ``operonx compile`` writes,
  ``module.run(..., cpu_workers=W)``: its own copy of the Engine's pool (the same
  source, included in the module), its workers importing the module by name.

W is the number of usable cores. Every variant runs once untimed first (its
pool started, its result checked against the sequential one), then once per
round; rounds rotate the order so a loaded stretch of the shared machine hits
every variant. Reported: medians, and speedup = median sequential ÷ median variant.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import importlib
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import uvloop

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
OUT_DIR = os.path.join(BENCH_DIR, "out")
for path in (os.path.join(BENCH_DIR, "graphs"), OUT_DIR, REPO_ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)  # by name, so worker processes import them the same way

from operonx.core import Engine  # noqa: E402
from operonx.engine.cpu_pool import default_workers  # noqa: E402

TARGET = 1.8  # the speedup over sequential on 2 cores, Engine and compiled (issue 10)
TARGETED = ("Engine", "compiled -O2")

Items = list[int]
Variant = Callable[[Items, int], Awaitable[list[int]]]


def calibrate(target_s: float) -> int:
    """How many ``burn`` loops take about ``target_s`` seconds here (the best of 7 probes,
    so that another process's burst on the shared machine does not shrink the work)."""
    import cpu_fanout

    probe = 200_000
    best = min(_timed(lambda: cpu_fanout.burn(1, probe)) for _ in range(7))
    return max(1_000, int(probe * target_s / best))


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------ variants


def variants(workers: int, compiled: Variant | str
             ) -> tuple[dict[str, Variant], dict[str, str], list[Callable[[], None]]]:
    """The timed functions, the ones that could not be set up (with why), and closers."""
    import cpu_fanout

    burn = cpu_fanout.burn
    threads = concurrent.futures.ThreadPoolExecutor(workers)
    processes = concurrent.futures.ProcessPoolExecutor(workers)
    engine = Engine(cpu_fanout.graph, cpu_workers=workers)

    async def sequential(items: Items, loops: int) -> list[int]:
        return [burn(i, loops) for i in items]

    async def in_threads(items: Items, loops: int) -> list[int]:
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(threads, burn, i, loops)
                                           for i in items)))

    async def in_processes(items: Items, loops: int) -> list[int]:
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(processes, burn, i, loops)
                                           for i in items)))

    async def with_engine(items: Items, loops: int) -> list[int]:
        result = await engine.run({"numbers": items, "loops": loops})
        return list(result["result"])

    found: dict[str, Variant] = {
        "sequential": sequential, "threads": in_threads,
        "process pool (hand-written)": in_processes, "Engine": with_engine,
    }
    missing: dict[str, str] = {}
    if isinstance(compiled, str):
        missing["compiled -O2"] = compiled
    else:
        found["compiled -O2"] = compiled
    closers = [lambda: threads.shutdown(), lambda: processes.shutdown()]
    return found, missing, closers


def compiled_variant(workers: int) -> Variant | str:
    """``run`` of the compiled module, or why there is none.

    Called before anything imports ``cpu_fanout``: compiling re-imports the graph's
    directory afresh, which would leave earlier references to ``burn`` pointing at a
    module object pickle no longer finds.
    """
    try:
        from compiler import compile_file  # type: ignore[attr-defined]

        source = compile_file(os.path.join(BENCH_DIR, "graphs", "cpu_fanout.py"),
                              opt_level=2).source
    except Exception as exc:
        return f"did not compile: {type(exc).__name__}: {exc}"[:300]
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "cpu_fanout_O2.py"), "w", encoding="utf-8") as fh:
        fh.write(source)
    importlib.invalidate_caches()  # the file is newer than the import system's listing
    module = importlib.import_module("cpu_fanout_O2")  # by name: workers can import it

    async def compiled(items: Items, loops: int) -> list[int]:
        result = await module.run({"numbers": items, "loops": loops}, cpu_workers=workers)
        return list(result["result"])

    return compiled


# ------------------------------------------------------------------------- harness


async def measure(n: int, loops: int, rounds: int, workers: int, compiled: Variant | str,
                  log: Callable[[str], None]) -> tuple[dict[str, list[float]], dict[str, str]]:
    found, errors, closers = variants(workers, compiled)
    items = list(range(n))
    samples: dict[str, list[float]] = {name: [] for name in found}
    try:
        expected = await found["sequential"](items, loops)
        for name, run in list(found.items()):  # untimed: start pools, check the result
            try:
                got = await run(items, loops)
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"[:300]
                del found[name]
                continue
            if got != expected:
                errors[name] = "wrong result"
                del found[name]
        names = list(found)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                t0 = time.perf_counter()
                await found[name](items, loops)
                samples[name].append(time.perf_counter() - t0)
                log(f"round {r + 1} {name}: {samples[name][-1] * 1000:.0f} ms")
    finally:
        for close in closers:
            close()
    return {k: v for k, v in samples.items() if v}, errors


def report(samples: dict[str, list[float]], errors: dict[str, str], *, n: int, loops: int,
           per_item_ms: float, rounds: int, workers: int, quick: bool,
           load: tuple[str, str]) -> tuple[list[str], str]:
    base = statistics.median(samples["sequential"])
    lines = [
        "# CPU-bound fan-out: `bound=\"cpu\"` on every core",
        "",
        f"Generated by `python bench/cpu_bench.py{' --quick' if quick else ''}` on "
        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; method in the docstring of "
        "`bench/cpu_bench.py`.",
        "",
        f"- **work**: {n} items × `burn` ({loops:,} loops ≈ {per_item_ms:.1f} ms each, "
        "pure Python, holds the GIL)",
        f"- **workers**: {workers} (usable cores of this process); {rounds} interleaved rounds",
        f"- **machine**: {os.cpu_count()} logical cores, Python {sys.version.split()[0]}; "
        f"load average before {load[0]}, after {load[1]} (shared machine)",
        "",
        "| variant | median | min – max | speedup over sequential (medians) | "
        "the same, fastest samples |",
        "|---|---:|---:|---:|---:|",
    ]
    fastest = min(samples["sequential"])
    for name, times in samples.items():
        med = statistics.median(times)
        lines.append(f"| {name} | {med * 1000:.0f} ms | {min(times) * 1000:.0f} – "
                     f"{max(times) * 1000:.0f} ms | {base / med:.2f}× | "
                     f"{fastest / min(times):.2f}× |")
    for name, why in errors.items():
        lines.append(f"| {name} | — | — | not measured: {why} | |")
    verdicts = []
    for name in TARGETED:
        if name not in samples:
            verdicts.append(f"{name} not measured")
            continue
        speedup = base / statistics.median(samples[name])
        verdicts.append(f"{'met' if speedup >= TARGET else '**missed**'}: {name} {speedup:.2f}×")
    verdict = "; ".join(verdicts) + f" (target ≥ {TARGET}× on 2 cores)"
    lines += ["", f"Target (on the medians): {verdict}. The fastest-sample column is less "
              "sensitive to other load on a shared machine: a core taken by another process "
              "is a core the workers cannot use.", ""]
    return lines, verdict


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "?"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="16 items x ~10 ms, 2 rounds")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 2)")
    p.add_argument("--output", help="the Markdown report (default bench/RESULTS_cpu.md; "
                                    "quick: bench/out/RESULTS_cpu.quick.md)")
    args, _other = p.parse_known_args(argv)  # `make bench BENCH_ARGS=...` passes run.py's too
    n, target_s = (16, 0.010) if args.quick else (64, 0.020)
    rounds = args.rounds or (2 if args.quick else 5)
    workers = default_workers()
    output = args.output or (os.path.join(OUT_DIR, "RESULTS_cpu.quick.md") if args.quick
                             else os.path.join(BENCH_DIR, "RESULTS_cpu.md"))
    t0 = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] cpu_fanout: {msg}", file=sys.stderr, flush=True)

    compiled = compiled_variant(workers)
    loops = calibrate(target_s)
    import cpu_fanout

    per_item_ms = min(_timed(lambda: cpu_fanout.burn(1, loops)) for _ in range(5)) * 1000
    log(f"{n} items x {loops:,} loops ({per_item_ms:.1f} ms each), {workers} workers")
    before = loadavg()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        samples, errors = runner.run(measure(n, loops, rounds, workers, compiled, log))
    lines, verdict = report(samples, errors, n=n, loops=loops, per_item_ms=per_item_ms,
                            rounds=rounds, workers=workers, quick=args.quick,
                            load=(before, loadavg()))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    log(f"wrote {os.path.relpath(output, REPO_ROOT)}; {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
