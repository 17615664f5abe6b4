"""Run one benchmark case on one engine, in this process, and print one JSON line.

    python bench/worker.py '{"engine": "engine", "case": "seed_fanout", "n": 2000,
                             "warmup": 1, "repeats": 3, "graph": "bench/graphs/seed_fanout.py"}'

Engines: ``handwritten`` (bench/handwritten.py), ``handwritten_gather`` (its
``run_<case>_gather`` variants), ``pypi`` (bench/cases_pypi/,
must run under bench/.venv-pypi's python), ``engine`` (operonx.core.Engine on
the graph file ``graph``), ``compiled`` (the generated module ``module``),
``compiled_native`` (its C extension ``module``, imported under its own name).

Every run's result is checked (bench/cases.py) before any timing is kept. A
sample is ``perf_counter_ns`` around ``runs_per_sample`` awaited runs on one
event loop (uvloop, except for 1.35, which its users run on plain asyncio).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import importlib.machinery
import importlib.util
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)

if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)

import cases  # noqa: E402

Runner = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def load_file(path: str, name: str) -> Any:
    """Import a graph file or generated module by path, under a module name of its own."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def use_our_package() -> None:
    """Make ``import operonx`` find this repository's package (not an installed 1.35)."""
    if REPO_ROOT not in sys.path:
        sys.path.insert(1, REPO_ROOT)


def make_runner(spec: dict[str, Any]) -> tuple[Runner, Callable[[dict[str, Any]], dict[str, Any]]]:
    """The awaitable ``run(inputs)`` of one engine for one case, and its result normaliser."""
    engine, case, n = spec["engine"], spec["case"], spec["n"]
    same: Callable[[dict[str, Any]], dict[str, Any]] = dict
    if engine == "handwritten":
        import handwritten

        if case == cases.CHAIN_OPS:
            async def chain(inputs: dict[str, Any]) -> dict[str, Any]:
                return await handwritten.run_chain_ops(inputs, n)
            return chain, same
        return getattr(handwritten, f"run_{case}"), same
    if engine == "handwritten_gather":  # the extra baseline of cases with gather_baseline
        import handwritten

        return getattr(handwritten, f"run_{case}_gather"), same
    if engine == "pypi":
        import operonx

        version = getattr(operonx, "__version__", "?")
        if not version.startswith("1.35"):
            raise RuntimeError(f"the pypi engine needs operonx 1.35 (bench/.venv-pypi), "
                               f"this python has operonx {version} ({operonx.__file__})")
        from operonx import Operon

        module = importlib.import_module(f"cases_pypi.{case}")
        op_engine = Operon(module.build(n))
        return op_engine.run, module.extract
    if engine == "engine":
        use_our_package()
        from operonx.core import Engine

        if not hasattr(Engine, "run"):
            raise NotImplementedError("operonx.core.Engine has no run() yet")
        graph = load_file(spec["graph"], f"bench_graph_{case}").graph
        # Timed as called: no wrapper coroutine, as for the hand-written functions.
        return Engine(graph).run, same
    if engine == "compiled":
        module = load_file(spec["module"], f"bench_compiled_{case}")
        compiled_run: Runner = module.run
        return compiled_run, same
    if engine == "compiled_native":  # an extension answers only to its own module name
        name = os.path.basename(spec["module"]).split(".", 1)[0]
        native = load_file(spec["module"], name)
        if not native.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            raise ImportError(f"{spec['module']} is not an extension module")
        native_run: Runner = native.run
        return native_run, same
    raise ValueError(f"unknown engine {engine!r}")


async def measure(spec: dict[str, Any]) -> dict[str, Any]:
    case, n = spec["case"], spec["n"]
    run, normalise = make_runner(spec)
    per_sample = cases.runs_per_sample(case, n)
    for _ in range(max(1, spec.get("warmup", 1))):  # the warm-up runs are the correctness check
        inputs = cases.inputs(case, n)  # fresh: a run may leave its effect in them (sink)
        result = await run(inputs)
        problem = cases.check(case, n, normalise(result), inputs)
        if problem is not None:
            return {"ok": False, "error": f"wrong result: {problem}"}
    samples: list[int] = []
    for _ in range(spec.get("repeats", 3)):
        gc.collect()
        t0 = time.perf_counter_ns()
        for _ in range(per_sample):
            await run(inputs)
        samples.append(time.perf_counter_ns() - t0)
    return {"ok": True, "samples_ns": samples, "units": cases.units(case, n),
            "runs_per_sample": per_sample}


def event_loop_run(main: Callable[[], Awaitable[dict[str, Any]]], use_uvloop: bool) -> Any:
    if use_uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())  # type: ignore[arg-type]
    return asyncio.run(main())  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    try:
        out = event_loop_run(lambda: measure(spec), use_uvloop=spec["engine"] != "pypi")
    except Exception as exc:  # reported, never turned into a number
        tb = traceback.format_exc(limit=4).strip().splitlines()
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400], "trace": tb[-6:]}
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["python"] = sys.version.split()[0]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
