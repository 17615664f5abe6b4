"""The benchmark harness: every case on every engine, interleaved; writes RESULTS.md and a plot.

    python bench/run.py                  # the full run (a few minutes): bench/RESULTS.md
    python bench/run.py --quick          # small N, one round: bench/out/RESULTS.quick.md
    python bench/run.py --cases seed_fanout,loop --no-memory --no-scale

Engines (each case runs in a fresh subprocess per engine and round, so no engine
warms another's caches):

* ``handwritten`` — bench/handwritten.py on uvloop: the limit;
* ``pypi`` — ``operonx==1.35.0`` from PyPI, in ``bench/.venv-pypi`` (created on
  first use; it has our import name, so it never shares a process with ours);
* ``engine`` — ``operonx.core.Engine`` on bench/graphs/<case>.py, on uvloop;
* ``compiled_O0`` / ``compiled_O2`` — the module ``operonx compile -O0|-O2`` writes;
* ``compiled_native`` — the -O2 module's mypyc build (``operonx compile --native``): the
  C extension next to it, which ``import`` loads (needs a C compiler; else not available).

An engine that is not available yet (no Engine.run, no compiler) is reported as
such; a case an engine fails or answers wrongly is reported with its error.
Nothing is ever estimated.  Ratios are quotients of medians, pair by pair.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
OUT_DIR = os.path.join(BENCH_DIR, "out")
sys.path.insert(0, BENCH_DIR)

import cases  # noqa: E402
import scale  # noqa: E402

ENGINES = ("handwritten", "handwritten_gather", "pypi", "engine", "compiled_O0", "compiled_O2",
           "compiled_native")
LABELS = {"handwritten": "hand-written", "handwritten_gather": "hand-written gather",
          "pypi": "operonx 1.35", "engine": "Engine",
          "compiled_O0": "compiled -O0", "compiled_O2": "compiled -O2",
          "compiled_native": "compiled native"}
PYPI_VENV = os.path.join(BENCH_DIR, ".venv-pypi")
PYPI_PIN = "operonx==1.35.0"
MEMORY_ENGINES = ("handwritten", "engine", "compiled_O2")

#: (numerator, denominator, target, which cases) — "sync", "async" or "all"; None: informative.
#: Every target is against the best hand-written code (``handwritten``); the gather idiom
#: (``handwritten_gather``) is a reference column only.
RATIOS: list[tuple[str, str, tuple[str, float] | None, str]] = [
    ("compiled_O2", "handwritten", ("<=", 1.10), "sync"),
    ("compiled_O2", "handwritten", ("<=", 1.3), "async"),
    ("compiled_native", "handwritten", ("<", 1.0), "sync"),
    ("engine", "handwritten", ("<=", 2.0), "async"),
    ("pypi", "compiled_O2", (">=", 100.0), "sync"),
    ("pypi", "engine", (">=", 5.0), "all"),
    ("engine", "compiled_O2", None, "all"),
    ("compiled_O0", "compiled_O2", None, "all"),
    ("compiled_native", "compiled_O2", None, "all"),
    ("handwritten_gather", "handwritten", None, "async"),
    ("pypi", "handwritten", None, "all"),
]
SUPERLINEAR = 1.5  # per-unit cost at N over per-unit cost at N/10 above this: superlinear
OURS = ("engine", "compiled_O0", "compiled_O2")  # the engines the linearity target is about


def runs_case(engine: str, case: str) -> bool:
    """Whether ``engine`` has a way to run ``case`` (the gather idiom exists for a few only;
    the native build is not made of the scale graphs, whose 1,000-op C takes minutes)."""
    if engine == "compiled_native":
        return case in cases.CASES
    if engine != "handwritten_gather":
        return True
    return case in cases.CASES and cases.CASES[case].gather_baseline


@dataclass
class Settings:
    quick: bool
    cases: list[str]
    engines: list[str]
    rounds: int
    repeats: int
    pypi_repeats: int
    scaling: bool
    memory_sizes: list[int]
    scale_sizes: tuple[int, ...]
    build_sizes: tuple[int, ...]  # graph build and Engine(), each in a fresh process
    build_repeats: int
    timeout: float
    results_path: str
    plot_path: str


@dataclass
class Cell:
    """The samples of one engine on one case at one size, pooled over rounds."""
    samples_ns: list[int] = field(default_factory=list)
    units: int = 1
    runs_per_sample: int = 1
    error: str | None = None

    def per_unit(self) -> list[float]:
        return [s / self.units for s in self.samples_ns]

    def median(self) -> float | None:
        return statistics.median(self.per_unit()) if self.samples_ns and not self.error else None

    def min(self) -> float | None:
        return min(self.per_unit()) if self.samples_ns and not self.error else None

    def max(self) -> float | None:
        return max(self.per_unit()) if self.samples_ns and not self.error else None


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.t0 = time.monotonic()
        self.unavailable: dict[str, str] = {}
        self.pypi_python: str | None = None
        # (graph path, opt, native build) -> compile_one's result
        self.compiled: dict[tuple[str, int, bool], dict[str, Any]] = {}
        self.results: dict[str, dict[str, dict[str, Cell]]] = {}  # case -> size -> engine
        self.memory: dict[str, dict[int, dict[str, Any]]] = {}
        self.scale_compile: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.scale_build: dict[tuple[str, int], int] = {}
        # (shape, n) -> {"build_ns": [...], "engine_ns": [...]} over fresh processes
        self.build_engine: dict[tuple[str, int], dict[str, list[int]]] = {}
        self.build_errors: dict[tuple[str, int], str] = {}
        self.per_op: dict[str, dict[int, Cell]] = {}
        self.notes: list[str] = []

    # ---------------------------------------------------------------- plumbing

    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    def subprocess_json(self, cmd: list[str], timeout: float | None = None) -> dict[str, Any]:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # the 1.35 side must not see our package
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=timeout or self.s.timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout or self.s.timeout:.0f} s"}
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            err = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            return {"ok": False, "error": f"exit {proc.returncode}: {err}"[:400]}
        try:
            result: dict[str, Any] = json.loads(lines[-1])
            return result
        except json.JSONDecodeError:
            return {"ok": False, "error": f"unreadable worker output: {lines[-1][:200]}"}

    def worker(self, engine: str, spec: dict[str, Any]) -> dict[str, Any]:
        python = self.pypi_python if engine == "pypi" else sys.executable
        assert python is not None
        return self.subprocess_json([python, os.path.join(BENCH_DIR, "worker.py"),
                                     json.dumps(spec)])

    # ----------------------------------------------------------- availability

    def ensure_pypi(self) -> None:
        python = os.path.join(PYPI_VENV, "bin", "python")
        if not os.path.exists(python):
            self.log(f"creating {os.path.relpath(PYPI_VENV, REPO_ROOT)} with {PYPI_PIN}")
            try:
                subprocess.run([sys.executable, "-m", "venv", PYPI_VENV], check=True,
                               capture_output=True)
                subprocess.run([python, "-m", "pip", "install", "-q", PYPI_PIN], check=True,
                               capture_output=True, text=True)
            except (subprocess.CalledProcessError, OSError) as exc:
                detail = getattr(exc, "stderr", "") or str(exc)
                self.unavailable["pypi"] = f"could not install {PYPI_PIN}: {detail[-300:]}"
                return
        probe = subprocess.run([python, "-c", "import operonx; print(operonx.__version__)"],
                               capture_output=True, text=True, cwd=BENCH_DIR, check=False)
        version = probe.stdout.strip()
        if probe.returncode != 0 or not version.startswith("1.35"):
            self.unavailable["pypi"] = f"{PYPI_VENV} has operonx {version or '(none)'}, " \
                                       f"not 1.35: rm -rf it and rerun"
            return
        self.pypi_python = python

    def probe_engine(self) -> None:
        out = self.worker("engine", {"engine": "engine", "case": "seed_fanout", "n": 10,
                                     "warmup": 1, "repeats": 0,
                                     "graph": self.graph_path("seed_fanout")})
        if not out["ok"]:
            self.unavailable["engine"] = out["error"]

    def probe_compiler(self) -> None:
        out = self.compile(self.graph_path("seed_fanout"), 2)
        if not out["ok"]:
            reason = out["error"]
            for engine in ("compiled_O0", "compiled_O2", "compiled_native"):
                self.unavailable[engine] = f"the compiler is not available yet ({reason})"
            return
        if "compiled_native" in self.s.engines:
            native = self.compile(self.graph_path("seed_fanout"), 2, native=True)
            if not native["ok"]:
                self.unavailable["compiled_native"] = native["error"]

    def graph_path(self, case: str) -> str:
        return os.path.join(BENCH_DIR, "graphs", f"{case}.py")

    def compile(self, graph: str, opt: int, repeats: int = 1,
                warmup: bool = False, native: bool = False) -> dict[str, Any]:
        key = (graph, opt, native)
        if key not in self.compiled:
            stem = os.path.splitext(os.path.basename(graph))[0]
            out = os.path.join(OUT_DIR, f"{stem}_O{opt}{'_native' if native else ''}.py")
            spec = {"graph": graph, "out": out, "opt": opt, "repeats": repeats,
                    "warmup": warmup, "native": native}
            result = self.subprocess_json([sys.executable, os.path.join(BENCH_DIR,
                                                                        "compile_one.py"),
                                           json.dumps(spec)])
            result["module"] = out
            self.compiled[key] = result
        return self.compiled[key]

    def available(self, engine: str) -> bool:
        return engine in self.s.engines and engine not in self.unavailable

    # ------------------------------------------------------------------ cases

    def spec_for(self, engine: str, case: str, n: int, repeats: int,
                 graph: str | None = None) -> dict[str, Any] | str:
        """The worker spec, or an error string (the case did not compile)."""
        graph = graph or self.graph_path(case)
        spec: dict[str, Any] = {"engine": engine, "case": case, "n": n, "warmup": 1,
                                "repeats": repeats}
        if engine == "engine":
            spec["graph"] = graph
        if engine == "compiled_native":
            compiled = self.compile(graph, 2, native=True)
            if not compiled["ok"]:
                return f"native build failed: {compiled['error']}"
            spec["engine"] = "compiled_native"
            spec["module"] = compiled["extension"]
        elif engine.startswith("compiled_"):
            compiled = self.compile(graph, int(engine[-1]))
            if not compiled["ok"]:
                return f"compile failed: {compiled['error']}"
            spec["engine"] = "compiled"
            spec["module"] = compiled["module"]
        return spec

    def measure(self, case: str, n: int, size: str, rounds: int, repeats: int) -> None:
        cells = self.results.setdefault(case, {}).setdefault(size, {})
        engines = [e for e in self.s.engines if self.available(e) and runs_case(e, case)]
        for r in range(rounds):
            order = engines[r % len(engines):] + engines[:r % len(engines)] if engines else []
            for engine in order:
                cell = cells.setdefault(engine, Cell())
                if cell.error:
                    continue
                reps = self.s.pypi_repeats if engine == "pypi" else repeats
                spec = self.spec_for(engine, case, n, reps)
                if isinstance(spec, str):
                    cell.error = spec
                    continue
                out = self.worker(engine, spec)
                if not out["ok"]:
                    cell.error = out["error"]
                    self.log(f"  {case} n={n} {engine}: ERROR {out['error']}")
                    continue
                cell.samples_ns += out["samples_ns"]
                cell.units, cell.runs_per_sample = out["units"], out["runs_per_sample"]
                med = statistics.median(out["samples_ns"]) / out["units"]
                self.log(f"  {case} n={n} round {r + 1} {engine}: {fmt_ns(med)}/{unit(case)}")

    def run_cases(self) -> None:
        for case in self.s.cases:
            c = cases.CASES[case]
            n = c.n_quick if self.s.quick else c.n_full
            self.log(f"case {case}: N={n}")
            self.measure(case, n, "N", self.s.rounds, self.s.repeats)
            if self.s.scaling:
                self.measure(case, max(1, n // 10), "N/10", 1, max(2, self.s.repeats // 2))

    def confirm_linearity(self) -> None:
        """Re-measure both sizes of a case that looks superlinear on one of our engines.

        On a shared machine one slow stretch can make a fast case look superlinear;
        two more interleaved rounds (pooled, the fastest sample compared) settle it.
        """
        for case, row in linearity(self).items():
            c = cases.CASES[case]
            n = c.n_quick if self.s.quick else c.n_full
            for engine, value in row.items():
                if engine not in OURS or value is None or value <= SUPERLINEAR:
                    continue
                self.log(f"re-measuring {case} on {engine}: per-unit ×{value:.2f} from N/10 to N")
                for _ in range(2):
                    for size, size_n in (("N/10", max(1, n // 10)), ("N", n)):
                        cell = self.results[case][size][engine]
                        spec = self.spec_for(engine, case, size_n, self.s.repeats)
                        out = self.worker(engine, spec) if not isinstance(spec, str) else {}
                        if out.get("ok"):
                            cell.samples_ns += out["samples_ns"]
                self.notes.append(f"`{case}` on {LABELS[engine]} looked superlinear "
                                  f"(×{value:.2f}) and was re-measured over two more rounds.")

    # ----------------------------------------------------------------- memory

    def run_memory(self) -> None:
        graph = self.graph_path("memory_stream")
        for engine in MEMORY_ENGINES:
            if not self.available(engine):
                continue
            spec: dict[str, Any] = {"engine": engine}
            if engine.startswith("compiled_"):
                compiled = self.compile(graph, int(engine[-1]))
                if not compiled["ok"]:
                    self.memory[engine] = {n: {"ok": False, "error": compiled["error"]}
                                           for n in self.s.memory_sizes}
                    continue
                spec = {"engine": "compiled", "module": compiled["module"]}
            for n in self.s.memory_sizes:
                self.log(f"memory {engine} n={n:,}")
                out = self.subprocess_json([sys.executable, os.path.join(BENCH_DIR, "memory.py"),
                                            json.dumps({**spec, "n": n})])
                self.memory.setdefault(engine, {})[n] = out
                if out["ok"]:
                    self.log(f"  peak {out['peak_kb'] / 1024:.1f} MB, "
                             f"{fmt_ns(out['elapsed_ns'] / n)}/yield")
                else:
                    self.log(f"  ERROR {out['error']}")

    # ------------------------------------------------------------------ scale

    def run_scale(self) -> None:
        paths = scale.generate(self.s.scale_sizes)
        compiler_ok = not self.unavailable.get("compiled_O2")
        for (shape, n), path in sorted(paths.items()):
            if compiler_ok:
                for opt in (0, 2):
                    self.log(f"scale: compile {shape}_{n} -O{opt}")
                    out = self.compile(path, opt, repeats=3 if n <= 100 else 1, warmup=True)
                    self.scale_compile[(shape, n, opt)] = out
                    if not out["ok"]:
                        self.log(f"  ERROR {out['error']}")
            self.scale_build[(shape, n)] = self.build_ns(path)
        engines = [e for e in self.s.engines
                   if self.available(e) and runs_case(e, cases.CHAIN_OPS)]
        rounds = min(3, self.s.rounds)  # interleaved like the cases: one loaded stretch
        for r in range(rounds):          # must not bend one engine's curve
            for n in self.s.scale_sizes:
                self.log(f"scale: per-op cost, chain of {n}, round {r + 1}")
                for engine in engines[r % len(engines):] + engines[:r % len(engines)]:
                    cell = self.per_op.setdefault(engine, {}).setdefault(n, Cell())
                    if cell.error:
                        continue
                    spec = self.spec_for(engine, cases.CHAIN_OPS, n, self.s.repeats,
                                         graph=scale.path("chain", n))
                    if isinstance(spec, str):
                        cell.error = spec
                        continue
                    out = self.worker(engine, spec)
                    if out["ok"]:
                        cell.samples_ns += out["samples_ns"]
                        cell.units = out["units"]
                        cell.runs_per_sample = out["runs_per_sample"]
                    else:
                        cell.error = out["error"]
                        self.log(f"  {engine}: ERROR {out['error']}")

    def run_build_scale(self) -> None:
        """Graph build and ``Engine(graph)`` at 1,000 to 10,000 ops, a fresh process each.

        Rounds are interleaved over every graph, and the fastest of them is reported, so
        one loaded stretch of the shared machine cannot bend a single size's number.
        """
        paths = scale.generate(self.s.build_sizes)
        for r in range(self.s.build_repeats):
            for (shape, n), path in sorted(paths.items()):
                if (shape, n) in self.build_errors:
                    continue
                self.log(f"build scale: {shape}_{n}, round {r + 1}")
                out = self.subprocess_json([sys.executable, os.path.join(BENCH_DIR, "scale.py"),
                                            "--time-build", path])
                if not out.get("ok"):
                    self.build_errors[(shape, n)] = out.get("error", "?")
                    self.log(f"  ERROR {self.build_errors[(shape, n)]}")
                    continue
                cell = self.build_engine.setdefault((shape, n), {"build_ns": [], "engine_ns": []})
                cell["build_ns"].append(out["build_ns"])
                cell["engine_ns"].append(out["engine_ns"])

    def build_ns(self, path: str) -> int:
        code = ("import sys, time, importlib.util as u; sys.path.insert(0, sys.argv[1]); "
                "import operonx.core; s = u.spec_from_file_location('g', sys.argv[2]); "
                "m = u.module_from_spec(s); t = time.perf_counter_ns(); s.loader.exec_module(m); "
                "print('{\"ok\": true, \"ns\": %d}' % (time.perf_counter_ns() - t))")
        out = self.subprocess_json([sys.executable, "-c", code, REPO_ROOT, path])
        return int(out["ns"]) if out.get("ok") else -1


# ----------------------------------------------------------------------- formatting


def unit(case: str) -> str:
    return "op" if case == cases.CHAIN_OPS else cases.CASES[case].unit


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "—"
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.0f}×" if x >= 100 else f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    mem = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError), \
            open("/proc/meminfo", encoding="utf-8") as fh:
        mem = f"{int(fh.readline().split()[1]) / 1024 / 1024:.1f} GiB"
    try:
        import uvloop
        uv = uvloop.__version__
    except ImportError:
        uv = "not installed"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False).stdout.strip()
    return {"CPU": cpu, "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
            "memory": mem, "OS": f"{platform.system()} {platform.release()}",
            "Python": f"{platform.python_implementation()} {platform.python_version()}",
            "uvloop": uv, "operonx (ours)": f"git {commit or '?'}",
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def ratio(cells: dict[str, Cell], num: str, den: str, fastest: bool = False) -> float | None:
    a = cells.get(num, Cell()).min() if fastest else cells.get(num, Cell()).median()
    b = cells.get(den, Cell()).min() if fastest else cells.get(den, Cell()).median()
    return a / b if a is not None and b else None


def applies(scope: str, case: str) -> bool:
    is_async = cases.CASES[case].is_async
    return scope == "all" or (scope == "async") == is_async


def meets(value: float, target: tuple[str, float]) -> bool:
    op, bound = target
    if op == "<":
        return value < bound
    return value <= bound if op == "<=" else value >= bound


# --------------------------------------------------------------------------- report


def write_report(h: Harness, elapsed: float, load: tuple[str, str]) -> list[str]:
    s = h.s
    lines: list[str] = []
    add = lines.append
    info = machine_info()
    add("# Benchmark results")
    add("")
    add(f"Generated by `{'python bench/run.py' + (' --quick' if s.quick else '')}` "
        f"({'quick smoke run: small N, one round' if s.quick else 'the full run'}) "
        f"in {elapsed / 60:.1f} min. How to read it: [bench/README.md](README.md).")
    add("")
    add("## Machine")
    add("")
    for key, value in info.items():
        add(f"- **{key}**: {value}")
    add(f"- **load average** (1/5/15 min) before: {load[0]}; after: {load[1]}")
    add("- shared: other processes were running on the same cores, which is why every figure "
        "is a median over interleaved rounds in separate processes")
    add("")
    add("## Engines")
    add("")
    for engine in ENGINES:
        if engine not in s.engines:
            continue
        state = f"**not available**: {h.unavailable[engine]}" if engine in h.unavailable \
            else "measured"
        add(f"- **{LABELS[engine]}** — {state}")
    add("")
    add(f"Each case ran in {s.rounds} round(s); in each round every engine ran in a fresh "
        f"process (order rotated per round): 1 warm-up run, whose result is checked, then "
        f"{s.repeats} timed samples ({s.pypi_repeats} for 1.35). A sample is "
        f"`perf_counter_ns` around one awaited run (`scalar_chain10`: around N runs).")
    add("")

    add("## Results: time per unit, median (min–max)")
    add("")
    shown = [e for e in ENGINES if e in s.engines]
    add("| case | N | unit | " + " | ".join(LABELS[e] for e in shown) + " |")
    add("|---|---:|---|" + "---:|" * len(shown))
    for case in s.cases:
        cells = h.results.get(case, {}).get("N", {})
        c = cases.CASES[case]
        n = c.n_quick if s.quick else c.n_full
        row = [f"`{case}`", f"{n:,}", c.unit]
        for e in shown:
            cell = cells.get(e)
            if e in h.unavailable:
                row.append("n/a")
            elif cell is None or cell.error:
                row.append("error" if cell and cell.error else "—")
            else:
                row.append(f"{fmt_ns(cell.median())} ({fmt_ns(cell.min())}–{fmt_ns(cell.max())})")
        add("| " + " | ".join(row) + " |")
    add("")
    add("Case descriptions: " + "; ".join(f"`{k}` — {v.title}" for k, v in cases.CASES.items()
                                            if k in s.cases) + ".")
    add("")

    add("## Ratios (median / median)")
    add("")
    ratio_cols = [(a, b) for a, b, _, _ in RATIOS]
    ratio_cols = list(dict.fromkeys(ratio_cols))
    add("| case | " + " | ".join(f"{LABELS[a]} / {LABELS[b]}" for a, b in ratio_cols) + " |")
    add("|---|" + "---:|" * len(ratio_cols))
    for case in s.cases:
        cells = h.results.get(case, {}).get("N", {})
        add(f"| `{case}` | " + " | ".join(fmt_ratio(ratio(cells, a, b)) for a, b in ratio_cols)
            + " |")
    add("")

    add("The same ratios from each engine's fastest sample (less sensitive to other load on "
        "the machine; for reading the medians above, not for the targets):")
    add("")
    add("| case | " + " | ".join(f"{LABELS[a]} / {LABELS[b]}" for a, b in ratio_cols) + " |")
    add("|---|" + "---:|" * len(ratio_cols))
    for case in s.cases:
        cells = h.results.get(case, {}).get("N", {})
        add(f"| `{case}` | " + " | ".join(fmt_ratio(ratio(cells, a, b, fastest=True))
                                          for a, b in ratio_cols) + " |")
    add("")

    add("## Targets")
    add("")
    add("| target | cases | result | met? |")
    add("|---|---|---|---|")
    verdicts: list[str] = []
    for num, den, target, scope in RATIOS:
        if target is None:
            continue
        scoped = [c for c in s.cases if applies(scope, c)]
        if not scoped:
            continue
        values = {c: ratio(h.results.get(c, {}).get("N", {}), num, den) for c in scoped}
        known = {c: v for c, v in values.items() if v is not None}
        missed = [c for c, v in known.items() if not meets(v, target)]
        missing = [c for c, v in values.items() if v is None]
        if not known:
            verdict = "not measured"
        elif missed:
            verdict = "**missed** on " + ", ".join(f"`{c}`" for c in missed)
        else:
            verdict = "met" + (" (where measured)" if missing else "")
        spread = ", ".join(f"`{c}` {fmt_ratio(v)}" for c, v in values.items())
        label = f"{LABELS[num]} / {LABELS[den]} {target[0]} {target[1]:g}"
        add(f"| {label} | {scope} | {spread} | {verdict} |")
        verdicts.append(f"{label} ({scope}): {verdict}")
    lin = linearity(h)
    sup = [f"`{case}` on {LABELS[e]} (×{v:.2f})" for case, row in lin.items()
           for e, v in row.items() if e in OURS and v is not None and v > SUPERLINEAR]
    if s.scaling:
        lin_verdict = "**missed**: " + ", ".join(sup) if sup else "met"
        add(f"| no case superlinear in N on our engines (per-unit cost at N ≤ {SUPERLINEAR}× "
            f"that at N/10) | all | see below | {lin_verdict} |")
        verdicts.append(f"no case superlinear in N: {lin_verdict}")
    add("")

    if s.scaling:
        add("## Linearity in N: per-unit cost at N divided by per-unit cost at N/10 (fastest "
            "samples)")
        add("")
        add("Above 1 means a unit costs more in a longer run; ≤ 1 is linear (fixed per-run "
            f"costs are spread over more units). The target (≤ {SUPERLINEAR}) is checked on "
            "Engine and the compiled modules; the other columns are for reference.")
        add("")
        add("| case | " + " | ".join(LABELS[e] for e in shown) + " |")
        add("|---|" + "---:|" * len(shown))
        for case in s.cases:
            add(f"| `{case}` | " + " | ".join(
                "—" if lin[case].get(e) is None else f"{lin[case][e]:.2f}" for e in shown) + " |")
        add("")

    write_memory(h, add)
    write_scale(h, add)
    add("## What operonx 1.35 lacks, and how its cases are written")
    add("")
    add("- **Loops**: 1.35 has no `GraphOp.loop(until=...)` (removed in 1.0.0). The `loop` case "
        "uses its replacement: a `PARENT.declare(count=0)` cell, a write-back, and a back-edge "
        "`if_(inc[\"counter\"] >= n, END, max_iterations=n + 1).else_(inc)` that 1.35 rewrites "
        "into a hidden loop. Its result lists every iteration's value; the harness reads the "
        "final cell.")
    add("- **Per-yield concurrency**: 1.35 runs a stream's consumers one item at a time unless "
        "the input is marked `.parallel()`. The sync cases keep that default (its fastest mode "
        "for inline ops, and what its users write); the async fan-out uses `.parallel(max=64)`, "
        "the bound our graph declares, and its result is compared as a sorted list because "
        "1.35 does not keep yield order there.")
    add("- **Ops returning `None`**: 1.35 fails on them (`TypeError: argument of type "
        "'NoneType' is not iterable`), so its `sink` op returns `{}` instead.")
    add("- **Event loop**: 1.35 runs on stock asyncio (it does not use uvloop); ours and the "
        "hand-written baselines run on uvloop, as the compiled module does.")
    add("- **Anything 1.35 could not run** (e.g. a graph too deep for it) is listed under "
        "Errors below, with its message.")
    add("- **Memory**: 1.35 is not in the memory table: a 10M-yield stream at its per-frame cost "
        "would take most of an hour (1.35 has `@op(transient=True)` for flat memory).")
    add("")
    errors = collect_errors(h)
    if errors:
        add("## Errors")
        add("")
        add("What failed, verbatim (no number is shown for these):")
        add("")
        for what, message in errors:
            add(f"- {what}: `{message}`")
        add("")
    if h.notes:
        add("## Notes")
        add("")
    for note in h.notes:
        add(f"- {note}")
    os.makedirs(os.path.dirname(s.results_path), exist_ok=True)
    kept = _compile_scale_section(s.results_path)  # measured apart: `scale.py --compile-scale`
    with open(s.results_path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n" + (f"\n{kept}\n" if kept else ""))
    return verdicts


def _compile_scale_section(path: str) -> str:
    """The compile-scale section of the report at ``path``, kept when the report is rewritten
    (it takes minutes to measure, so ``bench/scale.py --compile-scale`` writes it alone)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return ""
    if scale.SECTION_START not in text or scale.SECTION_END not in text:
        return ""
    inner = text.split(scale.SECTION_START, 1)[1].split(scale.SECTION_END, 1)[0]
    return scale.SECTION_START + inner + scale.SECTION_END


def collect_errors(h: Harness) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for case, sizes in h.results.items():
        for size, row in sizes.items():
            for e, cell in row.items():
                if cell.error:
                    out.append((f"{LABELS[e]} on `{case}` at {size}", cell.error))
    for e, row in h.per_op.items():
        for n, cell in sorted(row.items()):
            if cell.error:
                out.append((f"{LABELS[e]} on `chain_{n}` (per-op cost)", cell.error))
    for (shape, n, opt), result in sorted(h.scale_compile.items()):
        if not result.get("ok"):
            out.append((f"compiling `{shape}_{n}` at -O{opt}", result.get("error", "?")))
    for (shape, n), message in sorted(h.build_errors.items()):
        out.append((f"building `{shape}_{n}` and its Engine", message))
    for e, row in h.memory.items():
        for n, result in sorted(row.items()):
            if not result.get("ok"):
                out.append((f"memory, {LABELS[e]} at {n:,} yields", result.get("error", "?")))
    return out


def linearity(h: Harness) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for case in h.s.cases:
        sizes = h.results.get(case, {})
        row: dict[str, float | None] = {}
        for e in ENGINES:
            big, small = sizes.get("N", {}).get(e), sizes.get("N/10", {}).get(e)
            if big and small and big.min() is not None and small.min():
                row[e] = big.min() / small.min()  # type: ignore[operator]
            else:
                row[e] = None
        out[case] = row
    return out


def write_memory(h: Harness, add: Any) -> None:
    if not h.s.memory_sizes:
        return
    add("## Memory: an N-yield stream through 3 ops, nothing collected")
    add("")
    add("`bench/graphs/memory_stream.py`: `count_up(n)` → `add_one` → `square` → `sink` (no "
        "outputs) → END. Peak RSS (`ru_maxrss`) of a fresh process per (engine, N); *base* is the "
        "peak after imports and a 1,000-yield warm-up run.")
    add("")
    sizes = h.s.memory_sizes
    add("| engine | " + " | ".join(f"peak at {n:,}" for n in sizes)
        + " | base | time per yield | flat in N? |")
    add("|---|" + "---:|" * len(sizes) + "---:|---:|---|")
    for engine in MEMORY_ENGINES:
        if engine not in h.s.engines:
            continue
        if engine in h.unavailable:
            add(f"| {LABELS[engine]} | " + " | ".join("n/a" for _ in sizes) + " | | | n/a |")
            continue
        runs = h.memory.get(engine, {})
        cells, peaks = [], []
        for n in sizes:
            r = runs.get(n, {})
            if r.get("ok"):
                cells.append(f"{r['peak_kb'] / 1024:.1f} MB")
                peaks.append(r["peak_kb"])
            else:
                cells.append(f"error: {r.get('error', 'not run')}"[:120])
        ok = [runs[n] for n in sizes if runs.get(n, {}).get("ok")]
        base = f"{ok[0]['base_kb'] / 1024:.1f} MB" if ok else "—"
        per = fmt_ns(ok[-1]["elapsed_ns"] / sizes[len(ok) - 1]) if ok else "—"
        if len(peaks) == len(sizes) and len(sizes) > 1:
            grow = (peaks[-1] - peaks[0]) / 1024
            flat = grow <= max(5.0, 0.1 * peaks[0] / 1024)
            verdict = f"{'yes' if flat else '**no**'} ({grow:+.1f} MB)"
        else:
            verdict = "—"
        add(f"| {LABELS[engine]} | " + " | ".join(cells) + f" | {base} | {per} | {verdict} |")
    add("")


def write_scale(h: Harness, add: Any) -> None:
    if not h.s.scale_sizes:
        return
    add("## Scale: graphs of " + ", ".join(f"{n:,}" for n in h.s.scale_sizes) + " ops")
    add("")
    add("`bench/scale.py` writes `chain_N` (`step` N times in a chain) and `fanout_N` (a generator "
        "feeding N distinct sync ops, all wired to END). *build* is importing the graph file (the "
        "DSL building and validating the IR, in a fresh process); *compile* is "
        "`compiler.compile_file` in-process after an untimed warm-up compile, the fastest of 3 "
        "(1 at 1,000 ops).")
    add("")
    add("| graph | build | compile -O0 | compile -O2 | -O2 per op | generated -O2 | lines |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    flags: list[str] = []
    for shape in scale.SHAPES:
        points: dict[str, list[tuple[int, float]]] = {"build": [], "O0": [], "O2": [], "size": []}
        for n in h.s.scale_sizes:
            build = h.scale_build.get((shape, n), -1)
            c0 = h.scale_compile.get((shape, n, 0), {})
            c2 = h.scale_compile.get((shape, n, 2), {})
            t0 = min(c0["samples_ns"]) if c0.get("ok") else None
            t2 = min(c2["samples_ns"]) if c2.get("ok") else None
            if build > 0:
                points["build"].append((n, build))
            if t0:
                points["O0"].append((n, t0))
            if t2:
                points["O2"].append((n, t2))
                points["size"].append((n, c2["bytes"]))
            na = "n/a" if "compiled_O2" in h.unavailable else "error"
            add(f"| `{shape}_{n}` | {fmt_ns(build) if build > 0 else '—'} | "
                f"{fmt_ns(t0) if t0 else na} | {fmt_ns(t2) if t2 else na} | "
                f"{fmt_ns(t2 / n) if t2 else '—'} | "
                f"{c2['bytes'] / 1024:.1f} KiB | {c2['lines']:,} |" if c2.get("ok") else
                f"| `{shape}_{n}` | {fmt_ns(build) if build > 0 else '—'} | "
                f"{fmt_ns(t0) if t0 else na} | {na} | — | — | — |")
        for what, pts in points.items():
            bad = scale.superlinear(pts)
            if bad:
                flags.append(f"`{shape}` {what}: superlinear at {bad}")
    add("")
    if flags:
        add("**Superlinear** (cost per op grows by more than 1.5× from one size to the next): "
            + "; ".join(flags) + ".")
    elif h.scale_compile and any(v.get("ok") for v in h.scale_compile.values()):
        add("Build time, compile time and generated size all grow linearly (per-op cost within "
            "1.5× from one size to the next).")
    add("")
    write_build_scale(h, add)
    add("### Per-op cost against graph size (`chain_N`, median per op)")
    add("")
    add(f"A sample is about 10,000 op runs (10,000 / N runs of the chain), pooled over "
        f"{min(3, h.s.rounds)} interleaved round(s); the input starts at "
        f"{cases.CHAIN_START:,} so every `x + 1` allocates an int at every size.")
    add("")
    engines = [e for e in ENGINES if e in h.s.engines and runs_case(e, cases.CHAIN_OPS)]
    add("| ops | " + " | ".join(LABELS[e] for e in engines) + " |")
    add("|---:|" + "---:|" * len(engines))
    for n in h.s.scale_sizes:
        row = []
        for e in engines:
            cell = h.per_op.get(e, {}).get(n)
            row.append("n/a" if e in h.unavailable else "error" if cell is None or cell.error
                       else fmt_ns(cell.median()))
        add(f"| {n:,} | " + " | ".join(row) + " |")
    add("")
    steep = []
    for e in engines:
        pts = [(n, c.min() * n) for n, c in sorted(h.per_op.get(e, {}).items())
               if c.min() is not None]
        bad = scale.superlinear(pts)  # type: ignore[arg-type]
        if bad:
            steep.append(f"{LABELS[e]} ({bad})")
    if steep:
        add("**Superlinear** run time in graph size (per-op cost of the fastest sample up by "
            "more than 1.5× from one size to the next): " + "; ".join(steep) + ".")
    else:
        add("Run time is linear in graph size on every engine that ran all sizes (per-op cost "
            "of the fastest sample within 1.5× from one size to the next).")
    add("")
    add(f"![per-op cost against graph size]({os.path.basename(h.s.plot_path)})")
    add("")


def write_build_scale(h: Harness, add: Any) -> None:
    if not h.s.build_sizes:
        return
    sizes = ", ".join(f"{n:,}" for n in h.s.build_sizes)
    add(f"### Graph build and `Engine()`: {sizes} ops")
    add("")
    add(f"Each graph in a fresh process (`python bench/scale.py --time-build`, which imports "
        f"only `operonx.core`): *build* is importing the file (the DSL recording every op "
        f"and validating the IR), *Engine()* is `Engine(graph)` right after; the fastest "
        f"of {h.s.build_repeats} interleaved round(s).")
    add("")
    add("| graph | build | build per op | Engine() | Engine() per op |")
    add("|---|---:|---:|---:|---:|")
    flags: list[str] = []
    for shape in scale.SHAPES:
        points: dict[str, list[tuple[int, float]]] = {"build": [], "Engine()": []}
        for n in h.s.build_sizes:
            cell = h.build_engine.get((shape, n))
            if cell is None or not cell["build_ns"]:
                error = h.build_errors.get((shape, n), "not run")
                add(f"| `{shape}_{n}` | error: {error[:80]} | — | — | — |")
                continue
            build, engine = min(cell["build_ns"]), min(cell["engine_ns"])
            points["build"].append((n, build))
            points["Engine()"].append((n, engine))
            add(f"| `{shape}_{n}` | {fmt_ns(build)} | {fmt_ns(build / n)} | {fmt_ns(engine)} | "
                f"{fmt_ns(engine / n)} |")
        for what, pts in points.items():
            bad = scale.superlinear(pts)
            if bad:
                flags.append(f"`{shape}` {what}: superlinear at {bad}")
    add("")
    if flags:
        add("**Superlinear** (cost per op grows by more than 1.5× from one size to the next): "
            + "; ".join(flags) + ".")
    else:
        add("Build and `Engine()` grow linearly (per-op cost within 1.5× from one size to the "
            "next).")
    add("")


def write_plot(h: Harness) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no plot"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {"handwritten": "o", "pypi": "s", "engine": "^", "compiled_O0": "v",
               "compiled_O2": "D"}
    for e in (e for e in ENGINES if runs_case(e, cases.CHAIN_OPS)):
        pts = [(n, c.median()) for n, c in sorted(h.per_op.get(e, {}).items())
               if c.median() is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[e], label=LABELS[e])
        elif e in h.s.engines:
            ax.plot([], [], marker=markers[e], linestyle="none",
                    label=f"{LABELS[e]} (not available)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("graph size (ops in a chain)")
    ax.set_ylabel("time per op per run (ns)")
    ax.set_title("Per-op cost against graph size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(h.s.plot_path, dpi=110)
    plt.close(fig)
    return None


def dump_json(h: Harness, path: str) -> None:
    data = {
        "unavailable": h.unavailable,
        "results": {c: {sz: {e: vars(cell) for e, cell in row.items()}
                        for sz, row in sizes.items()} for c, sizes in h.results.items()},
        "memory": h.memory,
        "scale_compile": {f"{k[0]}_{k[1]}_O{k[2]}": v for k, v in h.scale_compile.items()},
        "scale_build_ns": {f"{k[0]}_{k[1]}": v for k, v in h.scale_build.items()},
        "build_engine_ns": {f"{k[0]}_{k[1]}": v for k, v in h.build_engine.items()},
        "per_op": {e: {n: vars(c) for n, c in row.items()} for e, row in h.per_op.items()},
    }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def parse(argv: list[str]) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small N, one round (a smoke test)")
    p.add_argument("--cases", help="comma-separated case names (default: all)")
    p.add_argument("--engines", help="comma-separated: " + ",".join(ENGINES))
    p.add_argument("--rounds", type=int, help="interleaved rounds per case (default 5; quick 1)")
    p.add_argument("--repeats", type=int, help="timed samples per process (default 3; quick 2)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS runs")
    p.add_argument("--no-scale", action="store_true",
                   help="skip the graph-size scaling (build, Engine(), compile time, per-op cost)")
    p.add_argument("--no-scaling", action="store_true", help="skip the N/10 linearity runs")
    p.add_argument("--output", help="the Markdown report (default bench/RESULTS.md; "
                                    "quick: bench/out/RESULTS.quick.md)")
    a = p.parse_args(argv)
    names = a.cases.split(",") if a.cases else list(cases.CASES)
    unknown = [c for c in names if c not in cases.CASES]
    engines = a.engines.split(",") if a.engines else list(ENGINES)
    bad = [e for e in engines if e not in ENGINES]
    if unknown or bad:
        p.error(f"unknown case(s) {unknown} / engine(s) {bad}; cases: {', '.join(cases.CASES)}")
    results = a.output or os.path.join(OUT_DIR if a.quick else BENCH_DIR,
                                       "RESULTS.quick.md" if a.quick else "RESULTS.md")
    plot = os.path.join(os.path.dirname(os.path.abspath(results)),
                        "per_op_cost.quick.png" if a.quick else "per_op_cost.png")
    return Settings(
        quick=a.quick, cases=names, engines=engines,
        rounds=a.rounds or (1 if a.quick else 5), repeats=a.repeats or (2 if a.quick else 3),
        pypi_repeats=1, scaling=not a.no_scaling,
        memory_sizes=[] if a.no_memory else ([1_000_000] if a.quick
                                             else [1_000_000, 10_000_000]),
        scale_sizes=() if a.no_scale else ((10, 100) if a.quick else scale.SIZES),
        build_sizes=() if a.no_scale else ((300, 1000) if a.quick else scale.BUILD_SIZES),
        build_repeats=1 if a.quick else 5,
        timeout=180 if a.quick else 600, results_path=os.path.abspath(results),
        plot_path=plot)


def main(argv: list[str]) -> int:
    settings = parse(argv)
    h = Harness(settings)
    os.makedirs(OUT_DIR, exist_ok=True)
    load_before = loadavg()
    if "pypi" in settings.engines:
        h.ensure_pypi()
    if "engine" in settings.engines:
        h.probe_engine()
    if any(e.startswith("compiled_") for e in settings.engines):
        h.probe_compiler()
    for engine, reason in h.unavailable.items():
        h.log(f"{LABELS[engine]}: not available: {reason}")
    h.run_cases()
    if settings.scaling:
        h.confirm_linearity()
    if settings.memory_sizes:
        h.run_memory()
    if settings.scale_sizes:
        h.run_scale()
    if settings.build_sizes:
        h.run_build_scale()
    elapsed = time.monotonic() - h.t0
    if settings.scale_sizes:
        problem = write_plot(h)
        if problem:
            h.notes.append(problem)
    verdicts = write_report(h, elapsed, (load_before, loadavg()))
    dump_json(h, os.path.join(OUT_DIR, "results.quick.json" if settings.quick
                              else "results.json"))
    h.log(f"wrote {os.path.relpath(settings.results_path, REPO_ROOT)}"
          + (f" and {os.path.relpath(settings.plot_path, REPO_ROOT)}"
             if settings.scale_sizes else ""))
    for v in verdicts:
        h.log(v)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
