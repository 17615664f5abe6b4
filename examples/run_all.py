"""Run every example on the Engine and as the module ``operonx compile`` makes of it, and
print what each returns: the same, or this script fails.

The seed's three, then branching (SPEC §8) and policies (SPEC §9).
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

from compiler import compile_graph
from compiler.frontend.load import find_graphs, load_module, select_graph
from operonx.core import Engine, GraphOp

HERE = pathlib.Path(__file__).parent
OUT = HERE.parent / "out"  # where `make run` writes compiled modules
EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("streaming.py", {"numbers": [1, 2, 3]}),
    ("collect.py", {"numbers": [1, 2, 3]}),
    ("loop.py", {}),
    ("branching.py", {"paths": ["a.wav", "b.png", "c.txt"]}),
    ("policies.py", {"urls": ["a", "b", "a", "c"]}),
]


def load_graph(path: pathlib.Path) -> tuple[str, GraphOp]:
    """The example's graph and its name, imported as ``operonx run`` and ``operonx compile``
    import it."""
    return select_graph(find_graphs(load_module(str(path))), None, str(path))


def compiled(path: pathlib.Path, name: str, graph: GraphOp) -> Any:
    """The module ``operonx compile path -O2`` writes, imported."""
    OUT.mkdir(exist_ok=True)
    target = OUT / f"{path.stem}_compiled.py"
    source = compile_graph(graph, source_path=str(path), graph_name=name).source
    target.write_text(source, encoding="utf-8")
    return load_module(str(target))


def main() -> int:
    for name, inputs in EXAMPLES:
        graph_name, graph = load_graph(HERE / name)
        result = Engine(graph).run_sync(inputs)
        print(f"engine    {name:<13} inputs={json.dumps(inputs)} -> {json.dumps(result)}")
        again = compiled(HERE / name, graph_name, graph).run_sync(inputs)
        print(f"compiled  {name:<13} inputs={json.dumps(inputs)} -> {json.dumps(again)}")
        if again != result:
            print(f"{name}: the compiled module returned something else", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
