"""The compiler frontend: loading graph.py, extracting op sources, type text."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compiler.errors import CompileError
from compiler.frontend.extract import Extraction, extract
from compiler.frontend.load import find_graphs, load_module, select_graph
from compiler.frontend.types import output_types, param_type, return_annotation

FIXTURES = Path(__file__).parent / "fixtures" / "frontend"
REPO = Path(__file__).resolve().parents[2]


def extract_fixture(name: str, graph: str = "graph") -> Extraction:
    module = load_module(str(FIXTURES / f"{name}.py"))
    return extract(find_graphs(module)[graph].ir)


def write(directory: Path, files: dict[str, str]) -> str:
    """Write dedented sources; return the path of the first one (the graph file)."""
    for name, source in files.items():
        (directory / name).write_text(textwrap.dedent(source))
    return str(directory / next(iter(files)))


def extract_error(directory: Path, files: dict[str, str]) -> CompileError:
    module = load_module(write(directory, files))
    graphs = find_graphs(module)
    with pytest.raises(CompileError) as info:
        extract(next(iter(graphs.values())).ir)
    return info.value


def load_error(path: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        load_module(path)
    return info.value


def sources(extraction: Extraction) -> dict[str, str]:
    return {block.name: block.source for block in extraction.blocks}


# ---------------------------------------------------------------------- extraction


def test_seed_example_gives_exactly_the_op_functions_without_decorators() -> None:
    extraction = extract_fixture("seed_graph")
    assert sources(extraction) == {
        "each_item": ("def each_item(items: list[Any]) -> Iterator[dict[str, Any]]:\n"
                      "    for item in items:\n"
                      '        yield {"value": item}\n'),
        "double": ("def double(value: int) -> dict[str, Any]:\n"
                   '    return {"result": value * 2}\n'),
    }
    assert extraction.imports == ("from collections.abc import Iterator", "from typing import Any")
    assert sorted(extraction.function_names.values()) == ["double", "each_item"]
    assert all(b.origin.file.endswith("seed_graph.py") for b in extraction.blocks)
    assert [b.origin.line for b in extraction.blocks] == [4, 10]


def test_closure_copies_helpers_constants_classes_and_aliased_imports_once() -> None:
    extraction = extract_fixture("closure_graph")
    assert [b.name for b in extraction.blocks] == [
        "SCALE", "OFFSET", "Item", "_clean", "measure", "describe", "tally"]
    assert extraction.imports == (
        "import collections as col", "import math", "from os import path as osp",
        "from typing import Any", "from typing import TypedDict")
    text = sources(extraction)
    assert text["OFFSET"] == "OFFSET = SCALE + 1  # depends on SCALE\n"
    assert "# comments inside op bodies are kept" in text["describe"]
    assert "@op" not in text["describe"] and "osp.basename" in text["describe"]
    assert text["_clean"].startswith("def _clean(text: Any) -> Any:\n    # strip and lower")
    assert "UNUSED" not in "".join(text.values())
    assert not any("operonx" in line for line in extraction.imports)


def test_op_imported_from_a_sibling_module_is_copied_from_that_file() -> None:
    extraction = extract_fixture("sibling_graph")
    assert [b.name for b in extraction.blocks] == ["FACTOR", "scale", "scaled"]
    assert {Path(b.origin.file).name for b in extraction.blocks} == {"sibling_ops.py"}
    assert extraction.imports == ()


def test_colliding_helpers_from_two_modules_are_renamed_with_their_references() -> None:
    text = sources(extract_fixture("collide_graph"))
    assert text["clean"] == "def clean(text: str) -> str:\n    return text.strip()\n"
    assert text["clean_2"] == "def clean_2(text: str) -> str:\n    return text.upper()\n"
    assert 'return {"a": clean(text)}' in text["first"]
    assert 'return {"b": clean_2(a)}' in text["second"]


def test_renamed_imports_get_an_alias_and_names_never_shadow_builtins(tmp_path: Path) -> None:
    module = load_module(write(tmp_path, {
        "graph.py": """\
            from operonx.core import END, PARENT, START, GraphOp, op
            from json import dumps as run


            def max(a, b):
                return a


            @op
            def f(x: int) -> dict[str, str]:
                return {"y": run(max(x, 1))}


            with GraphOp(name="g") as graph:
                START >> f(x=PARENT["x"]) >> END
            """}))
    extraction = extract(find_graphs(module)["graph"].ir)
    assert "from json import dumps as run_2" in extraction.imports
    assert 'return {"y": run_2(max_2(x, 1))}' in sources(extraction)["f"]
    assert extraction.renames[module.f.fn] == {"run": "run_2", "max": "max_2"}


def test_untyped_code_gets_annotations_and_until_lambda_becomes_a_function() -> None:
    extraction = extract_fixture("untyped_graph", graph="loop")
    text = sources(extraction)
    assert text["maybe"].startswith(
        "def maybe(value: Any, limit: Any = 10) -> dict[str, Any] | None:\n"
        "    def inner(x: Any) -> Any:\n")
    assert "    def __init__(self, value: Any) -> None:\n" in text["Box"]
    assert text["drip"].startswith("async def drip(waited: Any) -> AsyncIterator[dict[str, Any]]:")
    assert text["sink"].startswith("def sink(drop: Any) -> None:")
    assert text["loop_until"] == ('def loop_until(state: Any) -> Any:\n'
                                  '    return state["count"] >= 2\n')
    assert "loop_until" in extraction.function_names.values()


def test_named_until_function_is_copied(tmp_path: Path) -> None:
    module = load_module(write(tmp_path, {
        "graph.py": """\
            from operonx.core import END, PARENT, START, GraphOp, op

            LIMIT = 3


            def done(state):
                return state["n"] >= LIMIT


            @op
            def inc(n: int) -> dict[str, int]:
                return {"n": n + 1}


            with GraphOp.loop(until=done, n=0) as graph:
                i = inc(n=PARENT["n"])
                i["n"] >> PARENT["n"]
                START >> i >> END
            """}))
    extraction = extract(find_graphs(module)["graph"].ir)
    assert [b.name for b in extraction.blocks] == ["LIMIT", "done", "inc"]
    assert extraction.function_names[module.done] == "done"


# ------------------------------------------------------------------------ refusals

_GRAPH_TAIL = """
with GraphOp(name="g") as graph:
    START >> bad(value=PARENT["v"]) >> END
"""
_HEAD = "from operonx.core import END, PARENT, START, GraphOp, op\n"


@pytest.mark.parametrize(("body", "line", "message"), [
    ("bad = op(name='bad', outputs=['y'])(lambda value: {'y': value})\n", 2,
     "op 'bad' is a lambda"),
    ("ns = {}\nexec('def bad(value):\\n    return {\"y\": value}', ns)\n"
     "bad = op(outputs=['y'])(ns['bad'])\n", None, "op 'bad' has no source file"),
    ("def make(k):\n    @op\n    def bad(value):\n        return {'y': value * k}\n"
     "    return bad\nbad = make(2)\n", 3, "closure over local variable(s) k"),
    ("from math import *\n@op\ndef bad(value):\n    return {'y': sqrt(value)}\n", 5,
     "may come from `from math import *`"),
    ("COUNT = 0\n@op\ndef bad(value):\n    global COUNT\n    COUNT += 1\n"
     "    return {'y': value}\n", 3, "assigns the module-level name(s) COUNT through `global`"),
    ("@op\ndef bad(value):\n    return {'y': missing_helper(value)}\n", 4,
     "name 'missing_helper' used by function 'bad' is not defined"),
    ("from operonx.core import GraphError\n@op\ndef bad(value):\n"
     "    raise GraphError('no')\n", 5, "uses 'GraphError' from operonx.core at run time"),
])
def test_refusals_are_located(tmp_path: Path, body: str, line: int | None,
                              message: str) -> None:
    error = extract_error(tmp_path, {"graph.py": _HEAD + body + _GRAPH_TAIL})
    assert message in error.message
    assert error.hint
    if line is None:
        assert error.file is None or error.file == "<string>"
    else:
        assert (error.file, error.line) == (str(tmp_path / "graph.py"), line)


def test_literal_strings_in_annotations_are_values_not_names(tmp_path: Path) -> None:
    module = load_module(write(tmp_path, {"graph.py": """
        import typing
        from typing import Literal

        from operonx.core import END, PARENT, START, GraphOp, op


        @op
        def run(mode: Literal["fast", "slow"], n: "typing.Literal['x']") -> dict[str, str]:
            return {"done": mode}


        with GraphOp(name="graph") as graph:
            r = run(mode=PARENT["mode"], n="x")
            START >> r >> END
        """}))
    copied = sources(extract(find_graphs(module)["graph"].ir))
    assert 'mode: Literal["fast", "slow"]' in copied["run_2"]  # `run` is the module's


def test_refuses_an_op_using_a_project_module_object(tmp_path: Path) -> None:
    error = extract_error(tmp_path, {
        "graph.py": _HEAD + "import helpers_mod\n@op\ndef bad(value):\n"
                    "    return {'y': helpers_mod.f(value)}\n" + _GRAPH_TAIL,
        "helpers_mod.py": "def f(x):\n    return x\n",
    })
    assert "module 'helpers_mod' of your project" in error.message
    assert error.line == 5


# --------------------------------------------------------------------------- load


def test_syntax_error_is_located_with_line_and_column(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, {"graph.py": "x = 1\ny = (2\n"}))
    assert error.message.startswith("invalid syntax:")
    assert (error.file, error.line, error.col) == (str(tmp_path / "graph.py"), 2, 5)


def test_exception_during_import_points_at_the_deepest_user_line(tmp_path: Path) -> None:
    path = write(tmp_path, {
        "graph.py": "import json\nfrom helper_raise import boom\n\nboom()\n",
        "helper_raise.py": "def boom():\n    raise ValueError('bad value')\n",
    })
    error = load_error(path)
    assert error.message == "importing graph.py raised ValueError: bad value"
    assert (error.file, error.line) == (str(tmp_path / "helper_raise.py"), 2)


def test_exception_inside_a_library_call_points_at_the_users_call(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, {"graph.py": "import json\n\njson.loads('{')\n"}))
    assert error.message.startswith("importing graph.py raised JSONDecodeError:")
    assert (error.file, error.line) == (str(tmp_path / "graph.py"), 3)


def test_graph_error_passes_through_with_its_location_and_hint(tmp_path: Path) -> None:
    path = write(tmp_path, {"graph.py": _HEAD + "@op\ndef f(x):\n    return {'y': x}\n"
                                                "with GraphOp(name='g') as graph:\n"
                                                "    f(1)\n"})
    error = load_error(path)
    assert "positional argument" in error.message
    assert (error.file, error.line) == (path, 6)
    assert error.hint == "write f(name_of_param=...)"


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    error = load_error(str(tmp_path / "nope.py"))
    assert error.exit_code == 2 and "cannot read" in error.message


def test_second_load_sees_edited_sources_not_cached_modules(tmp_path: Path) -> None:
    path = write(tmp_path, {"graph.py": "from sib_value import VALUE\n",
                            "sib_value.py": "VALUE = 1\n"})
    first = load_module(path)
    (tmp_path / "sib_value.py").write_text("VALUE = 2\n")
    second = load_module(path)
    assert (first.VALUE, second.VALUE) == (1, 2)
    assert first is not second and str(tmp_path) not in sys.path


def _graphs(tmp_path: Path, names: list[str]) -> dict[str, object]:
    body = "".join(f"with GraphOp(name={n!r}) as {n}:\n    START >> f(x=PARENT['x']) >> END\n"
                   for n in names)
    module = load_module(write(tmp_path, {
        "graph.py": _HEAD + "@op\ndef f(x):\n    return {'y': x}\n" + body}))
    return find_graphs(module)  # type: ignore[return-value]


def test_find_and_select_graphs(tmp_path: Path) -> None:
    graphs = find_graphs(load_module(str(FIXTURES / "seed_graph.py")))
    assert list(graphs) == ["graph"]
    assert select_graph(graphs, None, "graph.py")[0] == "graph"
    assert select_graph(graphs, "iterate", "graph.py")[0] == "graph"  # by GraphOp name too


def test_no_graph(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as info:
        select_graph({}, None, str(tmp_path / "graph.py"))
    assert info.value.message == "no graph found in graph.py"
    assert "GraphOp" in (info.value.hint or "")


def test_several_graphs_need_a_name(tmp_path: Path) -> None:
    graphs = _graphs(tmp_path, ["alpha", "beta"])
    with pytest.raises(CompileError) as info:
        select_graph(graphs, None, "graph.py")  # type: ignore[arg-type]
    assert info.value.message.startswith("2 graphs found in graph.py: alpha (line ")
    assert info.value.line == graphs["beta"].loc.line  # where the ambiguity begins
    assert "--graph NAME" in (info.value.hint or "")


def test_unknown_graph_name_suggests_the_closest(tmp_path: Path) -> None:
    graphs = _graphs(tmp_path, ["alpha", "beta"])
    with pytest.raises(CompileError) as info:
        select_graph(graphs, "alpah", "graph.py")  # type: ignore[arg-type]
    assert info.value.hint is not None and info.value.hint.startswith("did you mean 'alpha'?")
    assert info.value.exit_code == 2


def test_nested_graphs_are_not_listed(tmp_path: Path) -> None:
    module = load_module(write(tmp_path, {"graph.py": _HEAD + """
@op
def f(x):
    return {'y': x}
with GraphOp(name="outer") as outer:
    with GraphOp(name="inner", inputs={"x": PARENT["x"]}) as inner:
        START >> f(x=PARENT["x"]) >> END
    START >> inner >> END
alias = outer
"""}))
    assert list(find_graphs(module)) == ["outer"]


# -------------------------------------------------------------------------- types


def test_type_text_from_annotations_typeddicts_and_literals(tmp_path: Path) -> None:
    closure = load_module(str(FIXTURES / "closure_graph.py"))
    describe, tally = closure.describe.definition, closure.tally.definition
    assert param_type(describe, "text") == "str"
    assert output_types(describe) == {"name": "str", "size": "int"}  # TypedDict Item
    assert output_types(tally) == {"distinct": "int", "root": "int"}
    seed = load_module(str(FIXTURES / "seed_graph.py"))
    each_item, double = seed.each_item.definition, seed.double.definition
    assert param_type(each_item, "items") == "list[Any]"
    assert output_types(each_item) == {"value": "Any"}
    assert output_types(double) == {"result": "int"}  # value * 2 with value: int
    assert return_annotation(each_item) == "Iterator[dict[str, Any]]"
    assert return_annotation(double) == "dict[str, Any]"
    assert return_annotation(tally) == "dict[str, int]"


# --------------------------------------------------------------- generated module


def test_extracted_code_imports_and_passes_mypy_strict(tmp_path: Path) -> None:
    fixtures = [("seed_graph", "graph"), ("closure_graph", "graph"),
                ("collide_graph", "graph"), ("untyped_graph", "loop")]
    files = []
    for name, graph in fixtures:
        extraction = extract_fixture(name, graph)
        code = "\n".join(extraction.imports) + "\n\n\n" + "\n\n".join(
            b.source for b in extraction.blocks)
        assert "operonx" not in code
        target = tmp_path / f"out_{name}.py"
        target.write_text(code)
        files.append(str(target))
    env = {**os.environ, "PYTHONPATH": ""}
    for file in files:
        subprocess.run([sys.executable, "-c", f"import runpy; runpy.run_path({file!r})"],
                       check=True, cwd=tmp_path, env=env)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *files],
        capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
