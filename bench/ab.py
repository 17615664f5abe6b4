"""A/B: the Engine of another git revision against this working tree, case by case.

    python bench/ab.py --base 829639e                     # every case, 7 interleaved rounds
    python bench/ab.py --base HEAD~3 --cases loop,sink --rounds 9

What a change to the Engine costs or saves, measured the way ``run.py`` measures: each
(case, side, round) is a fresh ``bench/worker.py`` process, the two sides alternate
within each round, and the ratio is of the medians of the pooled samples (new / base);
the ratio of the fastest samples is shown beside it (less sensitive to other load).
The base side is ``git archive BASE operonx`` unpacked next to a copy of this tree's
``bench/`` (so both sides run the very same graphs, inputs and checks); it runs under
this venv's python, so ``BASE`` must work with the installed dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)

import cases  # noqa: E402


def unpack_base(revision: str, into: str) -> str:
    """``operonx/`` of ``revision`` and this tree's ``bench/`` under ``into``; its root."""
    archive = subprocess.run(["git", "-C", REPO_ROOT, "archive", revision, "operonx"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    shutil.copytree(BENCH_DIR, os.path.join(into, "bench"),
                    ignore=shutil.ignore_patterns("out", ".venv-pypi", "__pycache__"))
    return into


def samples(root: str, case: str, n: int, repeats: int) -> tuple[list[float], str | None]:
    """Per-unit nanoseconds of ``repeats`` runs of the Engine of the tree at ``root``."""
    spec = {"engine": "engine", "case": case, "n": n, "warmup": 1, "repeats": repeats,
            "graph": os.path.join(root, "bench", "graphs", f"{case}.py")}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, os.path.join(root, "bench", "worker.py"),
                           json.dumps(spec)], cwd=root, capture_output=True, text=True,
                          env=env, check=False)
    lines = proc.stdout.strip().splitlines()
    if not lines:
        return [], (proc.stderr.strip().splitlines() or ["no output"])[-1]
    out = json.loads(lines[-1])
    if not out.get("ok"):
        return [], out.get("error", "?")
    return [s / out["units"] for s in out["samples_ns"]], None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--repeats", type=int, default=5, help="samples per process")
    parser.add_argument("--quick", action="store_true", help="the cases' quick N")
    args = parser.parse_args(argv)
    names = args.cases.split(",") if args.cases else list(cases.CASES)
    with tempfile.TemporaryDirectory(prefix="operonx-ab-") as tmp:
        sides = {"base": unpack_base(args.base, tmp), "new": REPO_ROOT}
        print(f"| case | N | {args.base} | this tree | this / base | fastest / fastest |")
        print("|---|---:|---:|---:|---:|---:|")
        for case in names:
            c = cases.CASES[case]
            n = c.n_quick if args.quick else c.n_full
            pooled: dict[str, list[float]] = {side: [] for side in sides}
            error = None
            for r in range(args.rounds):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for side in order:
                    got, error = samples(sides[side], case, n, args.repeats)
                    if error:
                        break
                    pooled[side] += got
                if error:
                    break
            if error:
                print(f"| `{case}` | {n:,} | error: {error[:100]} | | | |", flush=True)
                continue
            base, new = (statistics.median(pooled[s]) for s in ("base", "new"))
            fastest = min(pooled["new"]) / min(pooled["base"])
            print(f"| `{case}` | {n:,} | {base:,.0f} ns | {new:,.0f} ns | {new / base:.3f} | "
                  f"{fastest:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
