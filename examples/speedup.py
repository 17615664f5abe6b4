"""Time the seed example through the Engine and through its compiled module.

    python examples/speedup.py out/streaming.py      # after `operonx compile`

Both run the same graph on the same inputs, in this process, on uvloop; the
compiled module is loaded from the file the compiler wrote (it imports nothing
from operonx). Prints the median time of each and the ratio.
"""

from __future__ import annotations

import importlib.util
import pathlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from operonx.core import Engine

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from run_all import load_graph  # the sibling script (examples/ is not a package)

ROUNDS = 15


def load_compiled(path: pathlib.Path) -> Any:
    spec = importlib.util.spec_from_file_location("compiled_streaming", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as `import` would: dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def median_seconds(run: Callable[[], Awaitable[Any]]) -> float:
    await run()  # warm-up
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def compare(compiled_path: pathlib.Path, n: int) -> None:
    engine = Engine(load_graph(pathlib.Path(__file__).parent / "streaming.py"))
    compiled = load_compiled(compiled_path)
    inputs = {"numbers": list(range(n))}
    assert await engine.run(inputs) == await compiled.run(inputs)
    engine_s = await median_seconds(lambda: engine.run(inputs))
    compiled_s = await median_seconds(lambda: compiled.run(inputs))
    print(f"{n:,} yields: Engine {engine_s * 1e3:.2f} ms, compiled {compiled_s * 1e3:.2f} ms "
          f"-> compiled is {engine_s / compiled_s:.1f}x faster (median of {ROUNDS})")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    uvloop.run(compare(pathlib.Path(sys.argv[1]), 20_000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
