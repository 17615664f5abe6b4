"""Big generated functions are split into parts (compiler/codegen/outline.py) that behave
exactly as the statements they replace.

The limits are lowered here so that every golden graph and random graph gets split:
the split modules must still agree with the Engine on everything the differential
tests compare, and pass mypy --strict and ruff. The flow rules that decide what may
move are pinned on small hand-written functions, run before and after.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_graph
from compiler.codegen import outline as outline_module
from compiler.codegen.names import Namespace
from compiler.codegen.outline import count_statements, outline
from compiler.frontend.load import find_graphs, load_module, select_graph
from operonx.core import END, PARENT, START, GraphOp, op
from tests.compiler import oplib
from tests.compiler.helpers import assert_equivalent, load_source, mypy_strict, ruff_check
from tests.golden.cases import CASES, Case


@pytest.fixture
def tiny_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Split every function of more than 6 statements into parts of about 3."""
    monkeypatch.setattr(outline_module, "FUNCTION_STATEMENTS", 6)
    monkeypatch.setattr(outline_module, "PART_STATEMENTS", 3)
    monkeypatch.setattr(outline_module, "MAX_PART_STATEMENTS", 12)
    yield


def _graph(case: Case) -> Any:
    return select_graph(find_graphs(load_module(case.abspath)), None, case.abspath)[1]


# ------------------------------------------------------------------- golden graphs


@pytest.mark.parametrize("level", (0, 2))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_split_golden_graphs_agree_with_the_engine(case: Case, level: int, tmp_path: Path,
                                                   tiny_parts: None) -> None:
    graph = _graph(case)
    source = compile_graph(graph, source_path=case.abspath, graph_name="graph",
                           opt_level=level).source
    module = load_source(source, tmp_path, f"split_O{level}")
    for inputs in case.inputs:
        assert_equivalent(graph, module, inputs)


def test_every_golden_graph_gets_parts_when_the_limit_is_low(tiny_parts: None) -> None:
    """The test above is only worth something if the splitting happens."""
    split = [case.name for case in CASES
             if "_part(" in compile_graph(_graph(case), source_path=case.abspath,
                                          graph_name="graph", opt_level=2).source]
    assert len(split) >= len(CASES) - 2, split


def test_split_modules_pass_mypy_strict_and_ruff(tmp_path: Path, tiny_parts: None) -> None:
    files = []
    for case in CASES:
        for level in (0, 2):
            source = compile_graph(_graph(case), source_path=case.abspath,
                                   graph_name="graph", opt_level=level).source
            path = tmp_path / f"{case.name}_O{level}.py"
            path.write_text(source)
            files.append(str(path))
    mypy = mypy_strict(files, tmp_path)
    assert mypy.returncode == 0, mypy.stdout
    ruff = ruff_check(files, tmp_path)
    assert ruff.returncode == 0, ruff.stdout


def test_golden_graphs_are_not_split_at_the_real_limit() -> None:
    """Small graphs keep one function per scope (their golden files are unchanged)."""
    for case in CASES:
        source = compile_graph(_graph(case), source_path=case.abspath, graph_name="graph",
                               opt_level=2).source
        assert "_part(" not in source, case.name


# ------------------------------------------------------------------- a big graph


@op
def step(x: int) -> dict[str, int]:
    return {"x": x + 1}


def test_a_long_chain_is_split_into_bounded_parts_that_run_as_the_engine(
        tmp_path: Path) -> None:
    n = 3 * outline_module.FUNCTION_STATEMENTS // 4  # about 4 statements per stage
    with GraphOp(name="long") as graph:
        prev = step(x=PARENT["x"])
        START >> prev
        for _ in range(n - 1):
            nxt = step(x=prev["x"])
            prev >> nxt
            prev = nxt
        prev >> END
    source = compile_graph(graph, source_path=__file__, graph_name="graph", opt_level=2).source
    functions = [node for node in ast.parse(source).body
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    parts = [fn for fn in functions if "_part" in fn.name]
    assert len(parts) >= 4
    biggest = max(count_statements(fn.body) for fn in functions)
    assert biggest <= outline_module.MAX_PART_STATEMENTS + 20
    module = load_source(source, tmp_path, "long")
    assert_equivalent(graph, module, {"x": 0})
    assert module.run_sync({"x": 5}) == {"x": 5 + n}


# ------------------------------------------------------------------ random graphs


def test_split_random_graphs_agree_with_the_engine(tmp_path: Path, tiny_parts: None) -> None:
    import random

    from tests.compiler.test_properties import STEPS, build

    rng = random.Random(11)
    for i in range(12):
        steps = [rng.choice(STEPS) for _ in range(rng.randint(1, 6))]
        graph = build(steps, rng.choice([-1, 2, 21]))
        for level in (0, 2):
            source = compile_graph(graph, source_path=oplib.__file__, graph_name="prop",
                                   opt_level=level).source
            module = load_source(source, tmp_path, f"prop_{i}_O{level}")
            for items in ([], [1, 2, 3], [0, 4]):
                assert_equivalent(graph, module, {"items": items})


# ------------------------------------------------------------- the rules, one by one


def _split(source: str) -> tuple[list[ast.stmt], dict[str, Any]]:
    """Outline the one function in ``source`` with tiny limits; its statements, and the
    namespace the split module ran in."""
    fn = ast.parse(textwrap.dedent(source)).body[0]
    assert isinstance(fn, ast.FunctionDef)
    saved = (outline_module.FUNCTION_STATEMENTS, outline_module.PART_STATEMENTS,
             outline_module.MAX_PART_STATEMENTS)
    outline_module.FUNCTION_STATEMENTS, outline_module.PART_STATEMENTS = 2, 2
    outline_module.MAX_PART_STATEMENTS = 4
    try:
        stmts = outline([fn], Namespace({fn.name}))
    finally:
        (outline_module.FUNCTION_STATEMENTS, outline_module.PART_STATEMENTS,
         outline_module.MAX_PART_STATEMENTS) = saved
    from compiler.codegen import pyast

    namespace: dict[str, Any] = {"Any": Any}
    exec(compile(pyast.render(stmts, check=True), "<split>", "exec"), namespace)
    return stmts, namespace


def _run_both(source: str, *calls: tuple[Any, ...]) -> list[ast.stmt]:
    """The function in ``source`` gives the same result (or error) split as whole."""
    whole: dict[str, Any] = {"Any": Any}
    exec(textwrap.dedent(source), whole)
    stmts, split = _split(source)
    name = next(s.name for s in stmts if isinstance(s, ast.FunctionDef))
    for args in calls:
        assert _outcome(split[name], args) == _outcome(whole[name], args), args
    return stmts


def _outcome(fn: Any, args: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except Exception as exc:  # the error is the outcome compared
        return "error", (type(exc).__name__, str(exc))


def _moved(stmts: list[ast.stmt]) -> list[str]:
    """The source of every part's statements."""
    return [ast.unparse(s) for s in stmts if isinstance(s, ast.FunctionDef)
            and "_part" in s.name]


def test_a_run_returns_what_is_read_after_it_and_takes_what_it_reads() -> None:
    stmts = _run_both("""
        def f(x: int) -> int:
            a: int = x + 1
            b: int = a * 2
            c: int = b + a
            d: int = c - 1
            e: int = d * d
            return e + a
    """, (1,), (5,))
    assert _moved(stmts)
    assert "a, d = f_part(x)" in ast.unparse(stmts[0])


def test_a_result_mypy_could_only_infer_keeps_its_first_assignment_in_the_function() -> None:
    # Moved, ``a`` would be typed as what the part returns: Any.
    stmts = _run_both("""
        def f(x: int) -> int:
            a = x + 1
            b: int = a * 2
            c: int = b + a
            d: int = c - 1
            return d + a
    """, (1,))
    assert all("a = x + 1" not in part for part in _moved(stmts))


def test_a_local_that_may_be_unbound_is_never_passed() -> None:
    # ``y`` is bound only when x > 0, and read only then: passing it would raise.
    stmts = _run_both("""
        def f(x: int) -> int:
            if x > 0:
                y = x
            a: int = x + 1
            b: int = a + 1
            if x > 0:
                a = a + y
            c: int = a + b
            d: int = c * 2
            return c + d
    """, (1,), (-1,))
    assert _moved(stmts)
    assert all("a + y" not in part for part in _moved(stmts))


def test_a_result_read_by_an_exception_handler_stays_in_place() -> None:
    # Moved, ``n = 1`` would be lost when ``10 // x`` raises in the same part.
    stmts = _run_both("""
        def f(x: int) -> int:
            n = 0
            try:
                n = 1
                a: int = 10 // x
                n = 2
                b: int = a + 1
                n = 3
                c: int = b + 1
            except ZeroDivisionError:
                return -n
            return c + n
    """, (1,), (0,))
    assert all("n = 1" not in part for part in _moved(stmts))


def test_break_continue_return_and_bare_raise_stay_in_place() -> None:
    stmts = _run_both("""
        def f(xs: list[int]) -> int:
            total = 0
            for x in xs:
                if x == 0:
                    continue
                a = x + 1
                b = a + 1
                if b > 100:
                    break
                total = total + b
            try:
                c = 1 // total
            except ZeroDivisionError:
                if total == 0:
                    raise
            return total
    """, ([1, 2, 0, 3],), ([200, 1],), ([],))
    assert _moved(stmts)
    for part in _moved(stmts):
        assert "continue" not in part and "break" not in part


def test_closures_see_the_function_variables_they_saw_before() -> None:
    stmts = _run_both("""
        def f(x: int) -> int:
            a: int = x
            get = lambda: a
            b: int = get()
            a = a + 1
            c: int = get() + b
            d: int = c + 1
            e: int = d + c
            return e
    """, (1,))
    assert _moved(stmts)
    assert all("a = a + 1" not in part for part in _moved(stmts))  # the lambda reads ``a``


def test_loop_variables_read_in_the_next_pass_are_results() -> None:
    stmts = _run_both("""
        def f(n: int) -> list[int]:
            out: list[int] = []
            prev = 0
            for i in range(n):
                a: int = prev + i
                b: int = a * 2
                out.append(b)
                prev = b + 1
                out.append(prev)
            return out
    """, (0,), (4,))
    assert any("prev = b + 1" in part and "return prev" in part for part in _moved(stmts))


def test_comprehension_variables_are_their_own() -> None:
    stmts = _run_both("""
        def f(xs: list[int]) -> list[int]:
            x = 100
            a: list[int] = [x * 2 for x in xs]
            b: list[int] = [y + x for y in a]
            c: dict[int, int] = {x: y for x, y in zip(xs, b)}
            d: list[int] = sorted(c.values())
            return d + [x]
    """, ([1, 2, 3],))
    assert len(_moved(stmts)) >= 2


def test_a_global_declaration_keeps_the_function_whole() -> None:
    stmts, _ = _split("""
        def f(x: int) -> int:
            global COUNT
            a = x + 1
            b = a + 1
            c = b + 1
            return c
    """)
    assert len(stmts) == 1
