"""The wiring type check (SPEC §7.1): located errors for wrong wiring, silence for good graphs.

Fixture graphs live in ``tests/compiler/fixtures/typecheck/``: ``bad/`` (each with the
exact diagnostics it must produce, below) and ``good/`` (must pass, with the types the
code generator will be given).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from compiler import check_file, compile_file
from compiler.api import typecheck
from compiler.codegen.render import RUNTIME_NAMES
from compiler.errors import CompileError
from compiler.frontend.extract import extract
from compiler.frontend.load import find_graphs, load_module, select_graph
from compiler.typecheck import (
    GraphTypes,
    TypeCheckError,
    TypeCheckWarning,
    analyse_types,
    probe,
)
from compiler.typecheck.probe import probe_function
from operonx.ir.model import Graph

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "typecheck"
BAD = FIXTURES / "bad"
GOOD = FIXTURES / "good"

# fixture -> every line `operonx check` prints for it (paths relative to bad/)
WRONG_WIRING = {
    "wrong_scalar.py": [
        'wrong_scalar.py:19:19: error: double(value=...) expects int, got str from '
        'each_word["word"]'],
    "collect_into_scalar.py": [
        'collect_into_scalar.py:21:24: error: describe(value=...) expects int, got list[int] '
        'from each_item["value"].collect()'],
    "scalar_into_list.py": [
        'scalar_into_list.py:18:20: error: total(values=...) expects list[int], got int from '
        'measure["size"]'],
    "optional_into_required.py": [
        'optional_into_required.py:18:22: error: square(n=...) expects int, got int | None '
        'from parse["number"]'],
    "loop_writeback.py": [
        'loop_writeback.py:13:5: error: PARENT["text"] (state of loop \'loop\') expects str, '
        'got int from grow["text"]',
        '  hint: state "text" starts as \'\'; a write-back must keep the type of its initial '
        'value'],
    "none_state.py": [
        'none_state.py:12:17: error: grow(best=...) expects int, got int | None from '
        'PARENT["best"]',
        '  hint: PARENT["best"] is the state of loop \'loop\' (starts as None, written back '
        'from grow["best"])'],
    "parent_conflict.py": [
        'parent_conflict.py:18:18: error: shout(text=...) expects str, but PARENT["value"] is '
        'also read as int by double(value=...) (line 17)',
        "  hint: one input has one type: make the annotations agree"],
    "nested_conflict.py": [
        'nested_conflict.py:19:22: error: shout(text=...) expects str, but PARENT["x"] is also '
        'read as int by double(x=...) (line 17)',
        "  hint: one input has one type: make the annotations agree"],
    "wrong_literal.py": [
        "wrong_literal.py:12:39: error: repeat(times=...) expects int, got str from the "
        "literal '3'"],
    "wrong_literal_choice.py": [
        "wrong_literal_choice.py:14:36: error: run(mode=...) expects Literal['fast', 'slow'], "
        "got Literal['medium'] from the literal 'medium'"],
    "input_default.py": [
        'input_default.py:11:39: error: input "times" of graph \'defaults\' expects int, got '
        'str from its default value'],
    "mixed_dict.py": [
        'mixed_dict.py:18:33: error: fetch(name=...) expects int, got str from lookup["name"]'],
    "several_returns.py": [
        'several_returns.py:20:19: error: half(value=...) expects int, got str | int from '
        'classify["value"]'],
    "subgraph_input.py": [
        'subgraph_input.py:19:22: error: shout(word=...) expects str, got int from '
        'PARENT["word"]',
        '  hint: PARENT["word"] of sub-graph \'inner\' is count["n"]'],
    "subgraph_output.py": [
        'subgraph_output.py:24:19: error: shout(word=...) expects str, got list[str] from '
        'inner["loud"]'],
    "typeddict_output.py": [
        'typeddict_output.py:25:19: error: stars(count=...) expects int, got float from '
        'score["score"]'],
    "async_generator.py": [
        'async_generator.py:22:19: error: label(tick=...) expects int, got float from '
        'ticks["tick"]'],
    "coalesce_mixed.py": [
        'coalesce_mixed.py:24:22: error: double(value=...) expects int, got str | int from '
        'coalesce(spell["text"], keep["n"])',
        '  hint: spell["text"] is str'],
    "coalesce_default.py": [
        'coalesce_default.py:24:22: error: double(value=...) expects int, got int | str from '
        'coalesce(small["n"], big["n"], \'none\')',
        "  hint: the default 'none' is str"],
    "coalesce_parent_default.py": [
        'coalesce_parent_default.py:25:18: error: shout(text=...) expects str, but '
        'PARENT["fallback"] is also read as int by double(value=...) (line 24)',
        "  hint: one input has one type: make the annotations agree"],
    "several_problems.py": [
        'several_problems.py:24:9: error: needs_int(value=...) expects int, got str from '
        'source["text"]',
        'several_problems.py:26:20: error: needs_list(values=...) expects list[str], got str '
        'from source["text"]'],
}


def rendered(err: CompileError, directory: Path) -> list[str]:
    return err.render().replace(f"{directory}/", "").splitlines()


def test_every_bad_fixture_is_in_the_table() -> None:
    assert sorted(p.name for p in BAD.glob("*.py")) == sorted(WRONG_WIRING)


@pytest.mark.parametrize("fixture", sorted(WRONG_WIRING))
def test_wrong_wiring_is_reported_at_the_wiring_site(fixture: str) -> None:
    with pytest.raises(TypeCheckError) as caught:
        check_file(str(BAD / fixture))
    assert rendered(caught.value, BAD) == WRONG_WIRING[fixture]
    assert caught.value.exit_code == 1


@pytest.mark.parametrize("fixture", ["wrong_scalar.py", "loop_writeback.py"])
def test_compile_refuses_a_wrongly_typed_graph_unless_told_not_to(fixture: str) -> None:
    with pytest.raises(TypeCheckError) as caught:
        compile_file(str(BAD / fixture))
    assert rendered(caught.value, BAD) == WRONG_WIRING[fixture]
    source = compile_file(str(BAD / fixture), typecheck=False).source
    assert source.startswith("# Generated by operonx")


# ------------------------------------------------------------------------- good graphs

GOOD_GRAPHS = sorted(p.name for p in GOOD.glob("*.py") if find_graphs(load_module(str(p))))


def typed_graph(path: Path) -> tuple[GraphTypes, Graph]:
    _, graph_op = select_graph(find_graphs(load_module(str(path))), None, str(path))
    return typecheck(graph_op), graph_op.ir


def types_of(path: Path) -> GraphTypes:
    return typed_graph(path)[0]


@pytest.mark.parametrize("fixture", GOOD_GRAPHS)
def test_well_typed_graphs_pass_and_compile(fixture: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", TypeCheckWarning)  # the analysis really ran
        assert check_file(str(GOOD / fixture))
        compile_file(str(GOOD / fixture))


def op_outputs(types: GraphTypes) -> dict[str, dict[str, str]]:
    return {op.name: dict(t.outputs) for op, t in types.ops.items()}


def test_unannotated_ops_get_inferred_types_per_key() -> None:
    types = types_of(GOOD / "inferred.py")
    assert op_outputs(types) == {
        "each_word": {"word": "str", "length": "int"},
        "describe": {"line": "str", "long": "bool"},
        "count_long": {"count": "int"},
    }
    assert {k: (f.text, f.required) for k, f in types.inputs.items()} == {"text": ("str", True)}
    assert {k: f.text for k, f in types.result.items()} == {"count": "int"}


def test_typeddict_mapping_and_generator_annotations() -> None:
    types = types_of(GOOD / "typeddict_and_mapping.py")
    assert op_outputs(types) == {
        "items": {"name": "str", "price": "float"},
        "tax": {"taxed": "float"},
        "maybe_discount": {"discount": "float | None"},
        "final": {"line": "str"},
    }
    assert types.result["line"].text == "list[str]"


def test_async_ops_and_collected_lists() -> None:
    types = types_of(GOOD / "async_ops.py")
    assert op_outputs(types)["ticks"] == {"tick": "int"}
    assert op_outputs(types)["pairs"] == {"pair": "tuple[float, float]"}
    assert types.result["spread"].text == "list[float]"


def test_loop_state_is_typed_per_key() -> None:
    types, graph = typed_graph(GOOD / "loops.py")
    loop = graph.nodes["loop"].body
    assert loop is not None
    assert dict(types.scope(loop).state) == {
        "seen": "list[int]",  # [] (list[Any]) refined by its write-back
        "label": "str",
        "best": "int | None",  # None, then an int
        "value": "int",  # from inputs={"value": first["start"]}
    }
    assert dict(types.scope(graph).outputs["loop"]) == dict(types.scope(loop).state)


def test_top_level_loop_inputs_are_optional_and_typed_by_state() -> None:
    types = types_of(GOOD / "top_loop_none.py")
    assert {k: (f.text, f.required) for k, f in types.inputs.items()} == {
        "position": ("int", False), "last": ("str | None", False)}
    assert {k: f.text for k, f in types.result.items()} == {"position": "int",
                                                             "last": "str | None"}


def test_sub_graph_results_are_lists_outside_the_stream() -> None:
    types, graph = typed_graph(GOOD / "subgraphs.py")
    assert dict(types.scope(graph).outputs["inner"]) == {"loud": "list[str]"}
    inner = graph.nodes["inner"].body
    assert inner is not None
    assert dict(types.scope(inner).inputs) == {"text": "str"}
    assert dict(types.scope(inner).outputs["deeper"]) == {"loud": "str"}
    assert {k: f.text for k, f in types.inputs.items()} == {"prefix": "str", "text": "str"}


def test_a_coalesce_gives_the_union_of_its_options() -> None:
    """Two int arms feed a sub-graph an ``int``; a PARENT default takes the reader's type."""
    types, graph = typed_graph(GOOD / "coalesce.py")
    inner = graph.nodes["inner"].body
    assert inner is not None
    assert dict(types.scope(inner).inputs) == {"n": "int"}
    assert {k: f.text for k, f in types.inputs.items()} == {
        "v": "int", "fallback": "int", "items": "list[int]"}


UNKNOWN_OPTION = """\
from typing import Any

from operonx.core import END, PARENT, START, GraphOp, coalesce, if_, op


@op
def known(n: int) -> dict[str, str]:
    return {"v": str(n)}


@op
def unknown(n: int) -> dict[str, Any]:
    return {"v": n}


@op
def use(value: int) -> dict[str, int]:
    return {"out": value}


with GraphOp(name="g") as graph:
    a = known(n=PARENT["n"])
    b = unknown(n=PARENT["n"])
    c = use(value=coalesce(OPTIONS))
    START >> if_(PARENT["n"] > 1, a).else_(b)
    [a, b] >> c >> END
"""


@pytest.mark.parametrize("options", [
    'a["v"], b["v"]',  # b's output is Any
    'a["v"], frozenset({1})',  # a default whose type the probe cannot read back
])
def test_a_coalesce_with_an_unknown_option_checks_nothing(options: str, tmp_path: Path) -> None:
    """One option of unknown type could be anything: the union is unknown, not refused."""
    path = tmp_path / "unknown_option.py"
    path.write_text(UNKNOWN_OPTION.replace("OPTIONS", options))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TypeCheckWarning)  # the analysis ran: it knows nothing
        assert check_file(str(path)) == ("graph",)
    assert types_of(path).inputs["n"].text == "int"


def test_what_cannot_be_known_is_any_and_checks_nothing() -> None:
    types = types_of(GOOD / "any_typed.py")
    assert op_outputs(types) == {
        "load": {"data": "Any", "size": "Literal[3]"},  # a dict display: typed by context
        "identity": {"value": "Any"},  # a type variable: unknown without solving it
        "wrapped": {"value": "Any"},  # another decorator may change what it returns
        "dynamic": {"total": "Any"},
        "use": {"out": "str"},
    }
    assert types.inputs["path"].text == "Any"
    assert types.problems == ()


def test_values_typed_by_context_in_python_are_not_refused() -> None:
    """``"fast"`` fits ``Literal["fast", "slow"]``; a dict display may be a TypedDict."""
    types = types_of(GOOD / "literals.py")
    assert op_outputs(types)["choose"] == {"mode": "Literal['fast'] | Literal['slow']",
                                           "row": "Any"}
    assert types.problems == ()


def test_user_classes_keep_their_names() -> None:
    types = types_of(GOOD / "classes.py")
    assert op_outputs(types)["squares"] == {"shape": "Square"}


def test_renamed_and_imported_classes_are_spelled_as_the_generated_module_names_them() -> None:
    types = types_of(GOOD / "renamed_types.py")
    assert op_outputs(types) == {
        "make_a": {"point": "Point", "when": "datetime.date", "price": "Decimal"},
        "make_b": {"point": "Point_2", "match": "re.Match[str] | None",
                   "path": "Path"},
        "combine": {"text": "str"},
    }
    combine = next(t for op, t in types.ops.items() if op.name == "combine")
    assert dict(combine.params) == {"a": "Point", "b": "Point_2", "when": "datetime.date",
                                    "price": "Decimal", "path": "Path"}


def all_texts(types: GraphTypes) -> list[str]:
    texts = [f.text for f in [*types.inputs.values(), *types.result.values()]]
    for op_types in types.ops.values():
        texts += [*op_types.params.values(), *op_types.outputs.values()]
    for scope in types.scopes.values():
        texts += [*scope.inputs.values(), *scope.results.values(), *scope.state.values()]
        texts += [t for outputs in scope.outputs.values() for t in outputs.values()]
    return texts


def test_every_type_text_is_valid_in_the_generated_module(tmp_path: Path) -> None:
    """Each text, as an annotation after the module's copied code and imports, passes mypy."""
    files = []
    for fixture in GOOD_GRAPHS:
        path = GOOD / fixture
        _, graph_op = select_graph(find_graphs(load_module(str(path))), None, str(path))
        extraction = extract(graph_op.ir, reserved=RUNTIME_NAMES)
        types = analyse_types(graph_op.ir, extraction, reserved=RUNTIME_NAMES)
        params = "".join(f"    t{i}: {text},\n" for i, text in enumerate(all_texts(types)))
        module = "\n".join(["from __future__ import annotations", *extraction.imports,
                            *types.imports, "", *(b.source for b in extraction.blocks),
                            f"def _types(\n{params}) -> None:\n    pass\n"])
        out = tmp_path / fixture
        out.write_text(module)
        files.append(str(out))
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir", str(tmp_path / ".mypy"), *files],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------ no false positives anywhere


def repo_graph_files() -> list[Path]:
    patterns = ["examples/*.py", "tests/golden/graphs/*.py", "bench/graphs/*.py",
                "tests/**/fixtures/**/*.py"]
    found = {p for pattern in patterns for p in REPO.glob(pattern)}
    return sorted(p for p in found if BAD not in p.parents)


# Fixtures that are broken on purpose, before the type check could run.
BROKEN_ON_PURPOSE = {"graph_error.py", "import_error.py", "refusal_closure.py",
                     "refusal_operonx.py"}


@pytest.mark.parametrize("path", repo_graph_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_graph_in_the_repo_passes_the_check(path: Path) -> None:
    try:
        graphs = find_graphs(load_module(str(path)))
    except CompileError:
        assert path.name in BROKEN_ON_PURPOSE
        return
    for graph in graphs.values():
        try:
            types = typecheck(graph)
        except CompileError:  # an extraction refusal, not a type problem
            assert path.name in BROKEN_ON_PURPOSE
            continue
        assert types.problems == (), [p.render() for p in types.problems]
        assert types.warnings == ()


GOLDEN = ["examples/streaming.py", "examples/collect.py", "examples/loop.py",
          *sorted(str(p.relative_to(REPO)) for p in (REPO / "tests/golden/graphs").glob("*.py"))]


@pytest.mark.parametrize("relative", GOLDEN)
def test_fully_annotated_graphs_have_no_any(relative: str) -> None:
    types = types_of(REPO / relative)
    assert "Any" not in " ".join(all_texts(types)), all_texts(types)


# --------------------------------------------------------------------- robustness


def test_a_mypy_crash_degrades_to_unknown_types_with_a_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import mypy.build

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("mypy fell over")

    monkeypatch.setattr(mypy.build, "build", crash)
    monkeypatch.setattr(probe, "_last", None)
    with pytest.warns(TypeCheckWarning, match="mypy fell over"):
        types = types_of(BAD / "wrong_scalar.py")
    assert types.problems == ()
    assert {k: f.text for k, f in types.result.items()} == {"result": "list[Any]"}
    with pytest.warns(TypeCheckWarning):
        assert check_file(str(BAD / "wrong_scalar.py")) == ("graph",)


def test_the_probe_infers_each_returned_value_on_its_own() -> None:
    source = ('def f(x: int, xs: list[int]) -> dict[str, Any]:\n'
              '    if x:\n'
              '        return {"a": [x], **extra(xs)}  # keep me\n'
              '    return {\n'
              '        "a": [*xs],\n'
              '    }\n')
    assert probe_function(source, generator=False) == (
        'def f(x: int, xs: list[int]):\n'
        '    if x:\n'
        "        return (('a', [x]), (None, extra(xs)), )  # keep me\n"
        "    return (('a', [*xs]), )\n")
    generator = 'def g(n: int) -> Iterator[dict[str, Any]]:\n    yield {"i": n}\n'
    assert probe_function(generator, generator=True) == (
        "def g(n: int):\n    yield (('i', n), )\n")
