"""Profile one case on the Engine (or a compiled module) with pyinstrument, for finding hot spots.

    python bench/profile_case.py async_fanout            # Engine, the case's full N
    python bench/profile_case.py seed_fanout --n 20000 --module bench/out/seed_fanout_O2.py

Needs ``pip install pyinstrument`` (not a dependency of the bench extra).  Prints
the call tree of a few runs, hiding frames under 1% of the time.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import cases
import worker


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=list(cases.CASES))
    p.add_argument("--n", type=int)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--module", help="profile this compiled module instead of the Engine")
    a = p.parse_args(argv)
    from pyinstrument import Profiler

    n = a.n or cases.CASES[a.case].n_full
    spec: dict[str, Any] = {"engine": "engine", "case": a.case, "n": n,
                            "graph": f"{worker.BENCH_DIR}/graphs/{a.case}.py"}
    if a.module:
        spec = {"engine": "compiled", "case": a.case, "n": n, "module": a.module}

    async def go() -> dict[str, Any]:
        run, _ = worker.make_runner(spec)
        inputs = cases.inputs(a.case, n)
        await run(inputs)
        profiler = Profiler(async_mode="disabled", interval=0.0005)
        profiler.start()
        for _ in range(a.runs * cases.runs_per_sample(a.case, n)):
            await run(inputs)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False,
                                   timeline=False, processor_options={"filter_threshold": 0.01}))
        return {}

    worker.event_loop_run(go, use_uvloop=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
