"""SPEC §7.1: the generated module carries the graph's precise types.

For a fully annotated graph, every value the run path unpacks from an op's
outputs, reads from its inputs or collects into a list is annotated, and no
annotation says ``Any``; ``Inputs`` and ``Result`` are exact.
"""

from __future__ import annotations

import ast

import pytest

from compiler import compile_file
from tests.golden.cases import CASES, Case


def _fast_functions(source: str) -> list[ast.AST]:
    tree = ast.parse(source)
    return [node for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name.startswith("_fast_")]


def _policy_result(value: ast.Subscript) -> bool:
    """``P.call_sync(fn, kw)[0]`` or ``(await P.call_async(invoke, kw))[0]``: typed by the
    policy's generic signature as exactly what the op returns."""
    call = value.value.value if isinstance(value.value, ast.Await) else value.value
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and call.func.attr in ("call_sync", "call_async"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)  # every golden graph is typed
def test_the_run_path_of_an_annotated_graph_carries_no_any(case: Case) -> None:
    source = compile_file(case.abspath, opt_level=2).source
    functions = _fast_functions(source)
    assert functions
    typed = 0
    for function in functions:
        # A name declared with its type (a loop's state) may be assigned again plainly.
        declared = {node.target.id for node in ast.walk(function)
                    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript):
                target = ast.unparse(node.targets[0])
                if target in declared or _policy_result(node.value):
                    continue
                raise AssertionError(f"{case.name}: {target} = {ast.unparse(node.value)} "
                                     "is not annotated")
            if isinstance(node, ast.AnnAssign):
                annotation = ast.unparse(node.annotation)
                assert "Any" not in annotation, (case.name, ast.unparse(node))
                typed += 1
    assert typed > 0


def test_inputs_and_result_are_exact() -> None:
    source = compile_file("examples/streaming.py").source
    assert "class Inputs(TypedDict):" in source
    assert "    numbers: list[int]" in source
    assert "    'result': list[int]," in source
    loop = compile_file("examples/loop.py").source
    assert "    count: NotRequired[int]" in loop  # loop state is an optional input
