"""The hostile fuzzer: generated graph programs through the Engine and the compiled module.

Every example is a whole ``graph.py`` (see ``tests/compiler/hostile.py``). The
property: at -O0, -O1 and -O2 the compiled module agrees with the Engine on
results, collect-mode results (``$errors`` as a multiset), errors (type, op,
index, cause) and frames — or the compiler refuses with a located error. Never a
crash, never a difference. ``OPERONX_PROPERTY_EXAMPLES`` runs it longer.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import CompileError, compile_graph
from compiler.frontend.load import find_graphs, load_module, select_graph
from compiler.typecheck.model import TypeCheckError
from operonx.core import Engine
from tests.compiler.helpers import (
    compiled_stream,
    engine_stream,
    frames_multiset,
    load_source,
    mypy_strict,
    normalise_collect,
    outcome,
    ruff_check,
)
from tests.compiler.hostile import Program, programs

EXAMPLES = int(os.environ.get("OPERONX_PROPERTY_EXAMPLES", "25"))
_files = itertools.count()


def _errors(result: Any) -> set[tuple[str, tuple[int, ...]]]:
    return {(e["op"], tuple(e["index"])) for e in result.get("$errors", [])}


def check_program(program: Program, items: list[int], directory: Path) -> None:
    source = program.render()
    path = directory / f"hostile_{next(_files)}.py"
    path.write_text(source, encoding="utf-8")
    _name, graph = select_graph(find_graphs(load_module(str(path))), None, str(path))
    inputs = {program.input_key: items}
    want = outcome(lambda: Engine(graph).run_sync(inputs))
    want_collect = normalise_collect(Engine(graph, on_error="collect").run_sync(inputs))
    want_frames = frames_multiset(engine_stream(graph, inputs)) if want[0] == "ok" else None
    for level in (0, 1, 2):
        try:
            result = compile_graph(graph, source_path=str(path), graph_name="g",
                                   opt_level=level)
        except CompileError as err:
            assert err.file is not None and err.line is not None, err  # located
            assert err.exit_code == 1, err  # a refusal, never an internal error
            # The programs are well typed: a type-check refusal would be a false positive.
            assert not isinstance(err, TypeCheckError), err
            continue
        module = load_source(result.source, directory, f"hostile_O{level}")
        got = outcome(lambda m=module: m.run_sync(inputs))
        if want[0] == "ok" or got[0] == "ok":
            assert got == want, (level, source)
        else:  # concurrent failures may race: one the Engine also sees, same type
            assert got[1][0] == want[1][0], (level, source)
            if got[1][0] == "OpError":
                assert (got[1][1], got[1][2]) in _errors(want_collect), (level, source)
        got_collect = normalise_collect(module.run_sync(inputs, on_error="collect"))
        assert got_collect == want_collect, (level, source)
        if want_frames is not None:
            assert frames_multiset(compiled_stream(module, inputs)) == want_frames, \
                (level, source)
    assert not Path("PWNED").exists() and not (directory / "PWNED").exists()


# A generated `until` may subscript a literal (``3[0]``): compiling it warns, running it fails.
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(program=programs(), items=st.lists(st.integers(0, 5), max_size=3))
def test_hostile_programs_compile_exactly_or_are_refused(program: Program,
                                                         items: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_program(program, items, Path(tmp))


@settings(max_examples=max(5, EXAMPLES // 5), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(program=programs(max_steps=10, max_depth=9), items=st.lists(st.integers(0, 2),
                                                                    max_size=2))
def test_deep_hostile_programs(program: Program, items: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_program(program, items, Path(tmp))


def test_hostile_modules_pass_mypy_strict_and_ruff(tmp_path: Path) -> None:
    """Hostile names, branches, policies, typed locals: every module still type-checks."""

    found: list[Program] = []

    @settings(max_examples=8, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(program=programs(well_typed_until=True))
    def collect(program: Program) -> None:
        found.append(program)

    collect()
    files = []
    for i, program in enumerate(found):
        path = tmp_path / f"hostile_src_{i}.py"
        path.write_text(program.render(), encoding="utf-8")
        _name, graph = select_graph(find_graphs(load_module(str(path))), None, str(path))
        for level in (0, 2):
            try:
                source = compile_graph(graph, source_path=str(path), graph_name="g",
                                       opt_level=level).source
            except CompileError:
                continue
            out = tmp_path / f"hostile_{i}_O{level}.py"
            out.write_text(source, encoding="utf-8")
            files.append(str(out))
    assert len(files) >= 8
    mypy = mypy_strict(files, tmp_path)
    assert mypy.returncode == 0, mypy.stdout
    ruff = ruff_check(files, tmp_path)
    assert ruff.returncode == 0, ruff.stdout
