"""Compile graphs into real files and import them, run both paths, compare what they observe."""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import itertools
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

from operonx.core import Engine

_counter = itertools.count()


def load_source(source: str, directory: Path, stem: str = "compiled") -> types.ModuleType:
    """Write ``source`` to ``directory`` and import it under a fresh module name."""
    name = f"_operonx_compiled_{stem}_{next(_counter)}"
    path = directory / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def frame_key(frame: Any) -> tuple[str, tuple[int, ...], str]:
    return (frame.op_name, tuple(frame.index),
            json.dumps(frame.outputs, sort_keys=True, default=repr))


def frames_multiset(frames: list[Any]) -> collections.Counter[tuple[str, tuple[int, ...], str]]:
    return collections.Counter(frame_key(f) for f in frames)


async def _gather(agen: Any) -> list[Any]:
    return [frame async for frame in agen]


def engine_stream(graph: Any, inputs: dict[str, Any]) -> list[Any]:
    return asyncio.run(_gather(Engine(graph).stream(inputs)))


def compiled_stream(module: types.ModuleType, inputs: dict[str, Any]) -> list[Any]:
    return asyncio.run(_gather(module.stream(inputs)))


def outcome(fn: Any) -> tuple[str, Any]:
    """("ok", value) or ("error", (type name, op_name, message)) — comparable across paths."""
    try:
        return "ok", fn()
    except Exception as exc:
        return "error", (type(exc).__name__, getattr(exc, "op_name", None),
                         getattr(exc, "index", None), str(exc),
                         type(exc.__cause__).__name__ if exc.__cause__ else None)


def normalise_collect(result: Any) -> Any:
    """``$errors`` order follows completion; compare it as a sorted list."""
    if isinstance(result, dict) and "$errors" in result:
        result = dict(result)
        result["$errors"] = sorted(result["$errors"], key=lambda e: json.dumps(e, sort_keys=True))
    return result


def assert_equivalent(graph: Any, module: types.ModuleType, inputs: dict[str, Any],
                      *, frames: bool = True, unordered_keys: tuple[str, ...] = ()) -> None:
    """Engine and compiled module agree: results, errors, collect mode, frames."""

    def fix(result: Any) -> Any:
        if isinstance(result, dict):
            result = {k: sorted(v, key=repr) if k in unordered_keys else v
                      for k, v in result.items()}
        return normalise_collect(result)

    want = outcome(lambda: fix(Engine(graph).run_sync(inputs)))
    got = outcome(lambda: fix(module.run_sync(inputs)))
    assert got == want
    want_c = outcome(lambda: fix(Engine(graph, on_error="collect").run_sync(inputs)))
    got_c = outcome(lambda: fix(module.run_sync(inputs, on_error="collect")))
    assert got_c == want_c
    if frames and want[0] == "ok":
        ef = engine_stream(graph, inputs)
        cf = compiled_stream(module, inputs)
        if unordered_keys:  # END carries completion-ordered lists: compare them sorted
            ef, cf = ef[:-1], cf[:-1]
        assert frames_multiset(cf) == frames_multiset(ef)
        assert cf[-1].op_name == "END"


def mypy_strict(files: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` over generated modules (a cache of its own, nothing incremental)."""
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir", str(cwd / ".mypy"), *files],
                          capture_output=True, text=True, cwd=cwd, timeout=900, check=False)


def ruff_check(files: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """ruff over generated modules with the project's rules (pyproject.toml's, isolated from
    any config around them): names that look like others are allowed, as in the project."""
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select",
                           "E,F,W,I,B,UP,SIM,RUF", "--ignore", "RUF001,RUF002,RUF003",
                           "--line-length", "100", "--target-version", "py311", "--no-cache",
                           *files], capture_output=True, text=True, cwd=cwd, timeout=300,
                          check=False)
