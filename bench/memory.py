"""Peak RSS of an N-yield stream through 3 ops, one (engine, N) per process; prints one JSON line.

    python bench/memory.py '{"engine": "engine", "n": 1000000}'
    python bench/memory.py '{"engine": "compiled", "n": 1000000, "module": "bench/out/m_O2.py"}'

The graph is ``bench/graphs/memory_stream.py``: ``count_up(n)`` yields N frames,
each goes through ``add_one`` → ``square`` → ``sink``; nothing is collected and
the only op wired to END (``sink``) has no outputs, so nothing needs to be kept.
``ru_maxrss`` is read after a small warm-up run (``base_kb``: interpreter,
imports, engine) and after the N run (``peak_kb``).  Flat in N means ``peak_kb``
barely moves between 1M and 10M.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
import traceback
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
GRAPH = os.path.join(BENCH_DIR, "graphs", "memory_stream.py")
sys.path.insert(0, BENCH_DIR)

import worker  # noqa: E402


def maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def measure(spec: dict[str, Any]) -> dict[str, Any]:
    engine, n = spec["engine"], spec["n"]
    if engine == "handwritten":
        import handwritten

        run = handwritten.run_memory_stream
    elif engine == "engine":
        worker.use_our_package()
        from operonx.core import Engine

        our_engine = Engine(worker.load_file(GRAPH, "bench_memory_graph").graph)

        async def run(inputs: dict[str, Any]) -> Any:
            return await our_engine.run(inputs=inputs)
    elif engine == "compiled":
        module = worker.load_file(spec["module"], "bench_memory_compiled")
        run = module.run
    else:
        raise ValueError(engine)
    warm = await run({"n": 1000})
    if dict(warm) not in ({}, {"$errors": []}):
        return {"ok": False, "error": f"unexpected result {dict(warm)!r}"}
    gc.collect()
    base = maxrss_kb()
    t0 = time.perf_counter_ns()
    await run({"n": n})
    elapsed = time.perf_counter_ns() - t0
    return {"ok": True, "base_kb": base, "peak_kb": maxrss_kb(), "elapsed_ns": elapsed}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    try:
        out = worker.event_loop_run(lambda: measure(spec), use_uvloop=True)
    except Exception as exc:
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400],
               "trace": traceback.format_exc(limit=3).strip().splitlines()[-4:]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
