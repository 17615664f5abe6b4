"""``Inputs`` and ``Result`` field types: the same TypedDicts as the local target writes.

The rules are the local code generator's (``compiler/codegen/generate.py``): an
input's type is the annotation of the first parameter that reads it, a result's
the op's output type for that key, a list of it for a key produced inside a
stream, ``Any`` where the user left the type out. Kept here, next to the target
that uses it, until type information moves into the lowered IR (ARCHITECTURE.md
"Targets"), where both targets would read it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from compiler.frontend.types import output_types, param_type
from operonx.ir.model import Graph, InputRef, NodeKind

Renames = Mapping[Callable[..., Any], Mapping[str, str]]


@dataclass(frozen=True)
class Field:
    name: str
    type: str

    @property
    def key(self) -> str:
        return repr(self.name)


def input_type(scope: Graph, key: str, renames: Renames) -> str:
    for node in scope.nodes.values():
        for arg, source in node.args.items():
            if not (isinstance(source, InputRef) and source.key == key):
                continue
            if node.op is not None:
                return param_type(node.op, arg, renames.get(node.op.fn))
            if node.body is not None:
                return input_type(node.body, arg, renames)
    if scope.kind == "loop" and key in scope.state:
        value = scope.state[key]
        if isinstance(value, (bool, int, float, str)):
            return type(value).__name__
    return "Any"


def result_type(scope: Graph, key: str, renames: Renames) -> str:
    spec = scope.results.get(key) or scope.writebacks.get(key)
    if scope.kind == "loop" and not scope.nested:  # a top-level loop: its state
        return input_type(scope, key, renames)
    if spec is None:
        return "Any"
    node = scope.nodes[spec.node]
    inner = "Any"
    if node.op is not None:
        inner = output_types(node.op, renames.get(node.op.fn)).get(spec.key, "Any")
    elif node.kind is NodeKind.GRAPH and node.body is not None:
        inner = result_type(node.body, spec.key, renames)
    elif node.kind is NodeKind.LOOP and node.body is not None:
        inner = input_type(node.body, spec.key, renames)
    if spec.depth > 0 and not inner.startswith("list["):
        return f"list[{inner}]"
    if spec.depth > 0:
        return f"list[{inner}]" if node.op is not None else "list[Any]"
    return inner
