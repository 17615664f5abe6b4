"""Compile one graph file in this process and print one JSON line (time, size, errors).

    python bench/compile_one.py '{"graph": "bench/graphs/loop.py", "out": "bench/out/loop_O2.py",
                                  "opt": 2, "repeats": 1}'

Uses ``compiler.compile_file(path, opt_level=...)`` (its ``.source`` is the
module) and times it with ``perf_counter_ns``; ``"warmup": true`` first compiles a
small graph untimed, so the compiler's own imports are not counted.  Falls back
to ``python -m operonx compile`` (timed from outside, interpreter start
included) when that API is missing.  The time to import the graph file (the DSL
building and validating its IR) is reported on its own as ``build_ns``.

``"native": true`` then builds the module's C extension (``operonx compile --native``,
``compiler.build_native``) and reports its path as ``extension`` and the build's time as
``native_build_ns``; a build that cannot be made is an error (its message).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)


def build_time(path: str) -> int:
    """Import the graph file once under a fresh name: the DSL's build + validation time."""
    spec = importlib.util.spec_from_file_location("bench_build_probe", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    t0 = time.perf_counter_ns()
    spec.loader.exec_module(module)
    return time.perf_counter_ns() - t0


def compile_api(spec: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, REPO_ROOT)
    try:
        from compiler import compile_file  # type: ignore[attr-defined]
    except ImportError as exc:
        return {"ok": False, "api": False, "error": f"compiler.compile_file: {exc}"}
    if spec.get("warmup"):  # import the compiler's own dependencies outside the timing
        compile_file(os.path.join(BENCH_DIR, "graphs", "seed_fanout.py"), opt_level=spec["opt"])
    samples = []
    source = ""
    for _ in range(max(1, spec.get("repeats", 1))):
        t0 = time.perf_counter_ns()
        result = compile_file(spec["graph"], opt_level=spec["opt"])
        samples.append(time.perf_counter_ns() - t0)
        source = result.source
    with open(spec["out"], "w", encoding="utf-8") as fh:
        fh.write(source)
    out = {"ok": True, "api": True, "samples_ns": samples, "bytes": len(source.encode()),
           "lines": source.count("\n"), "build_ns": build_time(spec["graph"])}
    if spec.get("native"):
        from compiler import CompileError, build_native

        t0 = time.perf_counter_ns()
        try:
            out["extension"] = build_native(spec["out"]).path
        except CompileError as exc:
            return {"ok": False, "api": True, "error": exc.message.splitlines()[0][:400]}
        out["native_build_ns"] = time.perf_counter_ns() - t0
    return out


def compile_cli(spec: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "operonx", "compile", spec["graph"], "-o", spec["out"],
           f"-O{spec['opt']}"]
    t0 = time.perf_counter_ns()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter_ns() - t0
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["(no output)"]
        last = next((x for x in lines if "error:" in x), lines[-1]).strip()
        return {"ok": False, "api": False, "error": f"operonx compile exit {proc.returncode}: "
                                                    f"{last}"[:400]}
    with open(spec["out"], encoding="utf-8") as fh:
        source = fh.read()
    return {"ok": True, "api": False, "samples_ns": [elapsed], "bytes": len(source.encode()),
            "lines": source.count("\n"), "note": "timed via the CLI (interpreter start included)"}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    os.makedirs(os.path.dirname(os.path.abspath(spec["out"])), exist_ok=True)
    try:
        out = compile_api(spec)
        if not out["ok"] and not out.get("api"):
            cli = compile_cli(spec)
            out = cli if cli["ok"] else {"ok": False, "error": f"{out['error']}; {cli['error']}"}
    except Exception as exc:
        tb = traceback.format_exc(limit=3).strip().splitlines()
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400], "trace": tb[-4:]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
