"""Regression tests for issue 8: the compiler never miscompiles, never runs user text,
never loses an error. One test (or a few) per class of bug found, each on both paths:
the Engine and the compiled module (-O0, -O1, -O2) agree, or the compiler refuses.
"""

from __future__ import annotations

import os
import subprocess
import symtable
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_graph
from compiler.frontend.load import find_graphs, load_module, select_graph
from operonx.core import Engine, OpError
from tests.compiler import projects
from tests.compiler.helpers import assert_equivalent, load_source
from tests.compiler.projects import LEVELS, engine_graph, write_project

HEADER = """\
import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from operonx.core import END, PARENT, START, GraphOp, op
"""


def graph_file(tmp_path: Path, body: str, name: str = "graph_src") -> tuple[str, Any]:
    """Write a graph file (the header's imports + ``body``) and load its one graph."""
    path = write_project(tmp_path, {f"{name}.py": HEADER + textwrap.dedent(body)})
    return path, engine_graph(path)


def each_level(tmp_path: Path, body: str, *inputs: dict[str, Any]) -> list[Any]:
    """Compile ``body``'s graph at every level and check it against the Engine."""
    return projects.each_level(tmp_path, HEADER + textwrap.dedent(body), *inputs)


def compiled(path: str, graph: Any, tmp_path: Path, level: int) -> Any:
    result = compile_graph(graph, source_path=path, graph_name="graph", opt_level=level)
    return load_source(result.source, tmp_path, f"O{level}")


# ----------------------------------------------------------- class 1: layout and meaning

def test_class1_long_names_and_keys_keep_their_meaning(tmp_path: Path) -> None:
    each_level(tmp_path, """
        @op
        def normalise_the_customer_billing_address_for_the_invoice(raw: str) -> dict[str, str]:
            return {"customer_billing_address": raw.upper(),
                    "customer_shipping_address_when_different": raw.lower()}

        @op
        def format_the_customer_billing_address_for_printing_on_paper(
                customer_billing_address: str, customer_shipping_address_when_different: str
        ) -> dict[str, str]:
            return {"printed": customer_billing_address + "/" +
                    customer_shipping_address_when_different}

        with GraphOp(name="graph") as graph:
            a = normalise_the_customer_billing_address_for_the_invoice(raw=PARENT["raw"])
            b = format_the_customer_billing_address_for_printing_on_paper(
                customer_billing_address=a["customer_billing_address"],
                customer_shipping_address_when_different=a[
                    "customer_shipping_address_when_different"])
            START >> a >> b >> END
    """, {"raw": "Main St"})


def test_class1_long_parenthesised_until_is_not_a_tuple(tmp_path: Path) -> None:
    modules = each_level(tmp_path, """
        @op
        def step(counter_of_the_iterations_so_far: int) -> dict[str, int]:
            return {"counter_of_the_iterations_so_far": counter_of_the_iterations_so_far + 1}

        with GraphOp.loop(until="(counter_of_the_iterations_so_far >= 5 and "
                                "counter_of_the_iterations_so_far % 5 == 0)",
                          counter_of_the_iterations_so_far=0) as graph:
            s = step(counter_of_the_iterations_so_far=PARENT["counter_of_the_iterations_so_far"])
            s["counter_of_the_iterations_so_far"] >> PARENT["counter_of_the_iterations_so_far"]
            START >> s >> END
    """, {})
    assert modules[-1].run_sync({}) == {"counter_of_the_iterations_so_far": 5}


# -------------------------------------------------------- class 2: user text is never code

HOSTILE_KEYS = ["{__import__('os').system('touch PWNED')}", "it's", 'say "hi"', "back\\slash",
                "{{ jinja }}", "{% raw %}", "new\nline", "tab\tkey", "\u2028sep"]


@pytest.mark.parametrize("level", LEVELS)
def test_class2_hostile_input_keys_are_data_not_code(level: int, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    keys = ", ".join(repr(k) for k in HOSTILE_KEYS)
    path, graph = graph_file(tmp_path, f"""
        KEYS = [{keys}]

        @op(outputs=KEYS)
        def echo(**values: Any) -> dict[str, Any]:
            return dict(values)

        with GraphOp(name="graph") as graph:
            node = echo(**{{k: PARENT[k] for k in KEYS}})
            START >> node >> END
    """)
    module = compiled(path, graph, tmp_path, level)
    given = {k: i for i, k in enumerate(HOSTILE_KEYS)}
    assert module.run_sync(given) == Engine(graph).run_sync(given) == given
    with pytest.raises(module.InputError) as info:
        module.run_sync({})  # the message names every missing key: it must not run one
    assert repr(HOSTILE_KEYS[0]) in str(info.value)
    assert not (tmp_path / "PWNED").exists()
    assert_equivalent(graph, module, {HOSTILE_KEYS[1]: 1})


def test_class2_every_template_interpolation_goes_through_a_filter() -> None:
    """The templates' only way in for text is a filter (or a value already made code)."""
    import re

    from compiler.codegen.render import template_dir

    # ``runtime``: the runtime library snippets a module uses (compiler.codegen.runtime),
    # rendered from the templates scanned here.
    allowed_plain = {"fn", "line", "block.source", "field.type", "field.ident", "s.attr",
                     "s.size", "limits", "input_check", "fast_top", "traced_top",
                     "policy_objects", "plan", "runtime"}
    for path in Path(template_dir()).rglob("*.j2"):  # the Ray target's templates too
        name = path.name
        text = path.read_text(encoding="utf-8")
        for expr in re.findall(r"{{(.*?)}}", text):
            expr = expr.strip()
            if "|" in expr:
                assert expr.rsplit("|", 1)[1].strip() in ("py", "ident", "comment", "docstring")
            elif not expr.startswith("banner("):
                assert expr in allowed_plain, f"{name}: {{{{ {expr} }}}} is not filtered"


def test_class2_a_plain_string_cannot_reach_a_template() -> None:
    from compiler.codegen.render import TemplateRuleError, environment

    with pytest.raises(TemplateRuleError):
        environment().from_string("x = {{ value }}").render(value="os.system('id')")
    assert environment().from_string("x = {{ value|py }}").render(value="a'b") == 'x = "a\'b"'


# ------------------------------------------------------------------------- class 3: names

GENERATED_LOCALS = ("idx", "span", "rt", "inp", "exc", "result", "scope", "state", "out")


@pytest.mark.parametrize("name", GENERATED_LOCALS)
def test_class3_ops_named_like_generated_locals(name: str, tmp_path: Path) -> None:
    each_level(tmp_path, f"""
        def helper(v: int) -> int:
            return v + 1

        {name} = helper

        @op
        def each(items: list[int]) -> Iterator[dict[str, int]]:
            for item in items:
                yield {{"v": {name}(item)}}

        @op
        def {name}_op(v: int) -> dict[str, int]:
            return {{"v": {name}(v)}}

        @op(name="{name}")
        async def later(v: int) -> dict[str, int]:
            await asyncio.sleep(0)
            return {{"{name}": v}}

        with GraphOp(name="graph") as graph:
            gen = each(items=PARENT["{name}"])
            node = {name}_op(v=gen["v"])
            last = later(v=node["v"])
            START >> gen >> node >> last >> END
    """, {name: [1, 2, 3]})


def test_class3_an_op_named_underscore_runs_in_an_inlined_loop(tmp_path: Path) -> None:
    """The run path's loop batches once iterated under ``_``, which hid the op ``_``."""
    each_level(tmp_path, """
        @op
        def _(n: int) -> dict[str, int]:
            return {"n": n + 1}

        with GraphOp(name="graph") as graph:
            with GraphOp.loop(until="n >= 3", n=0) as loop:
                s = _(n=PARENT["n"])
                s["n"] >> PARENT["n"]
                START >> s >> END
            START >> loop >> END
    """, {})


def test_class3_keys_that_are_not_identifiers(tmp_path: Path) -> None:
    each_level(tmp_path, """
        @op
        def area(width_m: float) -> dict[str, float]:
            return {"area_m²": width_m * width_m, "class": 1.0, "2nd": 2.0, "a-b": 3.0}

        @op(name="ﬁx")
        def first(v: float) -> dict[str, float]:
            return {"ﬁx": v, "fix": -v}

        @op
        def combine(a: float, b: float, c: float) -> dict[str, float]:
            return {"sum": a + b + c}

        with GraphOp(name="graph") as graph:
            a = area(width_m=PARENT["width m²"])
            f = first(v=a["area_m²"])
            g = first(v=a["class"])
            s = combine(a=g["ﬁx"], b=g["fix"], c=a["a-b"])
            START >> a >> [f, g]
            g >> s
            [f, s] >> END
    """, {"width m²": 3.0})


def test_class3_nfkc_twin_keys_stay_apart(tmp_path: Path) -> None:
    modules = each_level(tmp_path, """
        @op
        def twins(v: int) -> dict[str, int]:
            return {"ﬁx": v, "fix": v + 1}

        @op
        def add(a: int, b: int) -> dict[str, int]:
            return {"total": a * 10 + b}

        with GraphOp(name="graph") as graph:
            t = twins(v=PARENT["v"])
            s = add(a=t["ﬁx"], b=t["fix"])
            START >> t >> s >> END
    """, {"v": 1})
    assert modules[-1].run_sync({"v": 1}) == {"total": 12}


# ------------------------------------------------------------------------- class 4: until

@pytest.mark.parametrize("until", ["len(xs) >= 3", "max(xs) >= 7 and min(xs) >= 0",
                                   "abs(total) > 5", "xs == [1, 2, 3]", "xs[-1:] == [9]"])
def test_class4_until_builtins_and_list_literals(until: str, tmp_path: Path) -> None:
    body = f"""
        @op
        def grow(xs: list[int], total: int) -> dict[str, Any]:
            nxt = [*xs, len(xs) + 1] if len(xs) < 8 else [*xs[:-1], 9]
            return {{"xs": nxt, "total": total - 2}}

        with GraphOp.loop(until={until!r}, xs=[], total=0, max_iterations=20) as graph:
            g = grow(xs=PARENT["xs"], total=PARENT["total"])
            g["xs"] >> PARENT["xs"]
            g["total"] >> PARENT["total"]
            START >> g >> END
    """
    modules = each_level(tmp_path, body, {})
    assert "xs" in modules[-1].run_sync({})


def test_class4_until_builtins_inside_a_graph(tmp_path: Path) -> None:
    each_level(tmp_path, """
        @op
        def grow(xs: list[int]) -> dict[str, list[int]]:
            return {"xs": [*xs, len(xs)]}

        @op
        def total(xs: list[int]) -> dict[str, int]:
            return {"total": sum(xs)}

        with GraphOp(name="graph") as graph:
            with GraphOp.loop(until="len(xs) >= max(2, 3) and xs == [0, 1, 2]",
                              xs=[]) as loop:
                g = grow(xs=PARENT["xs"])
                g["xs"] >> PARENT["xs"]
                START >> g >> END
            t = total(xs=loop["xs"])
            START >> loop >> t >> END
    """, {})


# ---------------------------------------------------------------- class 5: errors not lost

ERRORS = textwrap.dedent("""
    class Boom(Exception):
        pass

    @op
    def each(items: list[int]) -> Iterator[dict[str, int]]:
        for item in items:
            yield {"v": item}

    @op
    async def own_group(v: int) -> dict[str, int]:
        async def fail() -> None:
            raise Boom(f"in a task {v}")
        if v == 2:
            async with asyncio.TaskGroup() as group:
                group.create_task(fail())
        return {"v": v}

    @op
    async def cancels_itself(v: int) -> dict[str, int]:
        if v == 2:
            raise asyncio.CancelledError("the op gave up")
        return {"v": v}

    @op
    def sync_cancels(v: int) -> dict[str, int]:
        if v == 3:
            raise asyncio.CancelledError()
        return {"v": v}

    @op
    def messy(items: list[int]) -> Iterator[dict[str, int]]:
        try:
            for item in items:
                yield {"v": item}
        finally:
            raise RuntimeError("clean-up failed")

    @op
    def strict(v: int) -> dict[str, int]:
        if v == 2:
            raise Boom("the real failure")
        return {"v": v}

    @op
    def raises_op_error(v: int) -> dict[str, int]:
        from operonx.errors import OpError as Theirs
        if v == 1:
            raise Theirs("an OpError of my own", "someone_else", (7,))
        return {"v": v}
""")


def with_errors(body: str) -> str:
    return ERRORS + textwrap.dedent(body)


@pytest.mark.parametrize("consumer", ["own_group", "cancels_itself", "sync_cancels",
                                      "raises_op_error"])
def test_class5_op_failures_are_op_errors_on_both_paths(consumer: str, tmp_path: Path) -> None:
    modules = each_level(tmp_path, with_errors(f"""
        with GraphOp(name="graph") as graph:
            gen = each(items=PARENT["items"])
            node = {consumer}(v=gen["v"])
            START >> gen >> node >> END
    """), {"items": [1, 2, 3]})
    for module in modules:
        with pytest.raises(module.OpError) as info:
            module.run_sync({"items": [1, 2, 3]})
        assert info.value.op_name == consumer
        collected = module.run_sync({"items": [1, 2, 3]}, on_error="collect")
        assert len(collected["$errors"]) == 1  # the failure is recorded, never dropped


def test_class5_a_failing_generator_clean_up_does_not_hide_the_error(tmp_path: Path) -> None:
    body = with_errors("""
        with GraphOp(name="graph") as graph:
            gen = messy(items=PARENT["items"])
            node = strict(v=gen["v"])
            START >> gen >> node >> END
    """)
    modules = each_level(tmp_path, body, {"items": [1, 2, 3]})
    _path, graph = graph_file(tmp_path, body, "again")
    for run in [lambda: Engine(graph).run_sync({"items": [1, 2, 3]}),
                *(lambda m=m: m.run_sync({"items": [1, 2, 3]}) for m in modules)]:
        with pytest.raises(Exception) as info:
            run()
        assert type(info.value).__name__ == "OpError" and info.value.op_name == "strict"
        assert "the real failure" in str(info.value)
        notes = "".join(getattr(info.value, "__notes__", []))
        assert "clean-up failed" in notes


def test_class5_an_op_error_raised_by_an_op_is_wrapped(tmp_path: Path) -> None:
    _path, graph = graph_file(tmp_path, with_errors("""
        with GraphOp(name="graph") as graph:
            node = raises_op_error(v=PARENT["v"])
            START >> node >> END
    """))
    with pytest.raises(OpError) as info:
        Engine(graph).run_sync({"v": 1})
    assert info.value.op_name == "raises_op_error"
    assert isinstance(info.value.__cause__, OpError)


# ---------------------------------------------------------------------- class 7: shapes

def test_class7_a_generator_nobody_reads(tmp_path: Path) -> None:
    each_level(tmp_path, """
        SEEN: list[int] = []

        @op
        def side_effects(items: list[int]) -> Iterator[dict[str, Any]]:
            for item in items:
                SEEN.append(item)
                yield {}

        @op
        def after() -> dict[str, int]:
            return {"done": 1}

        with GraphOp(name="graph") as graph:
            gen = side_effects(items=PARENT["items"])
            last = after()
            START >> gen >> last >> END
    """, {"items": [1, 2]}, {"items": []})


def _nested_generators(depth: int, async_every: int = 0) -> str:
    lines = ["""
        @op
        def fan(v: int) -> Iterator[dict[str, int]]:
            for j in range(2):
                yield {"v": v * 2 + j}

        @op
        async def afan(v: int) -> AsyncIterator[dict[str, int]]:
            for j in range(2):
                await asyncio.sleep(0)
                yield {"v": v * 2 + j}

        @op
        def seed(n: int) -> Iterator[dict[str, int]]:
            for i in range(n):
                yield {"v": i}

        with GraphOp(name="graph") as graph:
            prev = seed(n=PARENT["n"])
            START >> prev"""]
    for level in range(depth - 1):
        maker = "afan" if async_every and level % async_every == 0 else "fan"
        lines.append(f"""
            node = {maker}(v=prev["v"])
            prev >> node
            prev = node""")
    lines.append("""
            prev >> END
    """)
    return "".join(lines)


@pytest.mark.parametrize("depth,async_every", [(7, 0), (10, 0), (9, 3)])
def test_class7_deeply_nested_generators(depth: int, async_every: int, tmp_path: Path) -> None:
    modules = each_level(tmp_path, _nested_generators(depth, async_every), {"n": 1})
    assert len(modules[-1].run_sync({"n": 1})["v"]) == 2 ** (depth - 1)


def _nested_loops(depth: int) -> str:
    return f"""
        @op
        def bump(c: int) -> dict[str, int]:
            return {{"c": c + 1}}

        def nest(level: int) -> Any:
            with GraphOp.loop(until="c >= 2", c=0, name=f"l{{level}}") as loop:
                if level + 1 < {depth}:
                    inner = nest(level + 1)
                    inner["c"] >> PARENT["c"]
                    START >> inner >> END
                else:
                    b = bump(c=PARENT["c"])
                    b["c"] >> PARENT["c"]
                    START >> b >> END
            return loop

        with GraphOp(name="graph") as graph:
            outer = nest(0)
            START >> outer >> END
    """


def test_class7_deeply_nested_loops(tmp_path: Path) -> None:
    each_level(tmp_path, _nested_loops(25), {})


def test_class7_a_thousand_op_chain_in_one_expression(tmp_path: Path) -> None:
    """``START >> n0 >> ... >> END`` nests a thousand ``>>`` deep; the compile once died on
    it with an internal RecursionError (exit 70)."""
    n = 1000
    steps = "".join(f"    n{i} = step(x=n{i - 1}['x'])\n" for i in range(1, n))
    chain = " >> ".join(f"n{i}" for i in range(n))
    each_level(tmp_path, (
        "@op\n"
        "def step(x: int) -> dict[str, int]:\n"
        '    return {"x": x + 1}\n'
        "\n"
        'with GraphOp(name="graph") as graph:\n'
        '    n0 = step(x=PARENT["x"])\n'
        f"{steps}"
        f"    START >> {chain} >> END\n"), {"x": 0})


def test_class7_mixed_type_loop_state_passes_mypy(tmp_path: Path) -> None:
    path, graph = graph_file(tmp_path, """
        @op
        def tick(count: int, tag: str) -> dict[str, Any]:
            return {"count": count + 1, "tag": tag + "!"}

        with GraphOp.loop(until="count >= 3", count=0, tag="go") as graph:
            t = tick(count=PARENT["count"], tag=PARENT["tag"])
            t["count"] >> PARENT["count"]
            t["tag"] >> PARENT["tag"]
            START >> t >> END
    """)
    for level in LEVELS:
        out = tmp_path / f"mixed_O{level}.py"
        out.write_text(compile_graph(graph, source_path=path, graph_name="graph",
                                     opt_level=level).source, encoding="utf-8")
        checked = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                                  "--cache-dir", str(tmp_path / ".mypy"), str(out)],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout


# -------------------------------------------------------------------- class 8: determinism

def test_class8_output_does_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    path, _graph = graph_file(tmp_path, """
        @op
        def pick(v: str, allowed: Any, other: Any) -> dict[str, bool]:
            return {"ok": v in allowed or v in other}

        with GraphOp(name="graph") as graph:
            p = pick(v=PARENT["v"], allowed={"alpha", "beta", "gamma", "delta", "epsilon",
                                             frozenset({"x", "y", "z"})},
                     other=frozenset({"north", "south", "east", "west"}))
            START >> p >> END
    """)
    outputs = set()
    for seed in ("1", "2", "3"):
        out = tmp_path / f"seed{seed}.py"
        done = subprocess.run([sys.executable, "-c", "from operonx.cli import main; main()",
                               "compile", path, "-o", str(out)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        outputs.add(out.read_text(encoding="utf-8"))
    assert len(outputs) == 1


def test_class3_runtime_names_cover_what_the_templates_bind() -> None:
    """Copied code is renamed away from RUNTIME_NAMES: the list must hold every name the
    module's fixed parts bind, or a user helper could silently replace one."""
    from compiler.codegen.render import RUNTIME_NAMES
    from compiler.frontend.extract import extract, module_level_names
    from tests.golden.cases import CASES

    for case in CASES:
        _name, graph = select_graph(find_graphs(load_module(case.abspath)), None, case.abspath)
        source = compile_graph(graph, source_path=case.abspath, graph_name="g").source
        user = module_level_names(extract(graph.ir, reserved=RUNTIME_NAMES))
        bound = {s.get_name() for s in symtable.symtable(source, "<module>", "exec").get_symbols()
                 if s.is_assigned() or s.is_imported() or s.is_namespace()}
        # Scope functions and policy objects: named by the module's Namespace, which avoids
        # every name the copied code binds.
        generated = {n for n in bound
                     if n.startswith(("_fast_", "_traced_", "_policy_", "_invoke_"))}
        assert bound - user - generated <= RUNTIME_NAMES, case.name
