"""Run the examples through the Engine and print what each returns.

The seed's three, then branching (SPEC §8) and policies (SPEC §9), which the
compiler does not support yet: they run through the Engine only.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
from typing import Any

from operonx.core import Engine, GraphOp

HERE = pathlib.Path(__file__).parent
EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("streaming.py", {"numbers": [1, 2, 3]}),
    ("collect.py", {"numbers": [1, 2, 3]}),
    ("loop.py", {}),
    ("branching.py", {"paths": ["a.wav", "b.png", "c.txt"]}),
    ("policies.py", {"urls": ["a", "b", "a", "c"]}),
]


def load_graph(path: pathlib.Path) -> GraphOp:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if isinstance(v, GraphOp) and not v.is_nested)


def main() -> int:
    for name, inputs in EXAMPLES:
        graph = load_graph(HERE / name)
        result = Engine(graph).run_sync(inputs)
        print(f"engine  {name:<13} inputs={json.dumps(inputs)} -> {json.dumps(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
