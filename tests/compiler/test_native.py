"""``--native``: the mypyc build of a generated module computes exactly what ``out.py`` does.

Every golden graph, plus branches, policies and the values mypyc would convert in a typed
variable (fixtures/native/values.py), through the Engine, ``out.py`` and its native build:
results, ``on_error="collect"``, frames, errors (type, op, index, message, cause) and
``main``. Results are compared by ``repr`` too, so ``1`` and ``1.0``, or ``True`` and
``1``, differ. The extensions are built once per session (mypyc takes seconds a module),
two at a time, with the C compiler at -O0 (the code is the same at every level; the CLI
test in tests/cli/test_native_cli.py builds at the default -O3).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_file
from compiler.native import (
    NativeBuild,
    NativeBuildError,
    build_native,
    extension_path,
    missing_toolchain,
)
from tests.compiler.helpers import (
    compiled_stream,
    engine_stream,
    frames_multiset,
    normalise_collect,
    outcome,
)
from tests.compiler.projects import engine_graph
from tests.golden.cases import CASES, golden_path

pytestmark = pytest.mark.skipif(missing_toolchain() is not None,
                                reason=f"no native build here: {missing_toolchain()}")

FIXTURES = Path(__file__).parent / "fixtures" / "native"
EXTRA = {  # graph name -> (graph file, inputs)
    "policies": (str(FIXTURES / "policies.py"), ({"items": [1, 2, 2, 5]}, {"items": [3, 4]})),
    "values": (str(FIXTURES / "values.py"), (
        {"xs": [1, 2.5, True], "n": 2, "limit": 1},  # int, float, bool where float is said
        {"xs": (1, 2), "n": 0, "limit": 1},  # a tuple where a list is said
        {"xs": [1, 99, 3], "n": 1, "limit": 1},  # `checked` fails at index (1,)
        {"xs": ["a"], "n": 1, "limit": 1},  # `halve` fails on a str
        {"xs": [1], "n": 1, "limit": 9},  # the loop reaches max_iterations
    )),
}


@dataclass(frozen=True)
class Built:
    graph: Any  # what the Engine runs
    pure: types.ModuleType  # out.py
    native: types.ModuleType  # its extension
    build: NativeBuild
    out_py: Path
    inputs: tuple[dict[str, Any], ...]


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """Every graph compiled at -O2 into ``native_<name>.py`` and built, once."""
    directory = tmp_path_factory.mktemp("native")
    graphs = {c.name: (c.abspath, c.inputs) for c in CASES} | EXTRA
    paths = {}
    for name, (graph_file, _inputs) in graphs.items():
        out_py = directory / f"native_{name}.py"
        out_py.write_text(compile_file(graph_file).source, encoding="utf-8")
        paths[name] = out_py
    with ThreadPoolExecutor(2) as pool:
        builds = dict(zip(paths, pool.map(lambda p: build_native(str(p), opt_level="0"),
                                          paths.values()), strict=True))
    return {name: Built(engine_graph(graphs[name][0]), _load(f"pure_{name}", out_py),
                        _load(f"native_{name}", Path(builds[name].path)), builds[name],
                        out_py, graphs[name][1])
            for name, out_py in paths.items()}


def run_once(module: Any, inputs: dict[str, Any], mode: str) -> tuple[str, Any]:
    return outcome(lambda: normalise_collect(module.run_sync(inputs, on_error=mode)))


def strict(seen: tuple[str, Any]) -> tuple[str, Any]:
    """An outcome whose values compare by ``repr``: ``1`` is not ``1.0``, nor ``True``."""
    kind, value = seen
    return kind, repr(value) if kind == "ok" else value


def assert_same(case: Built, inputs: dict[str, Any]) -> None:
    """The Engine, out.py and the native module agree (out.py and native: exactly), step
    by step, so ops that keep state in their module see the same calls in all three."""
    from operonx.core import Engine

    assert case.native.__file__ == extension_path(str(case.out_py))
    completes = {}
    for mode in ("raise", "collect"):
        engine = outcome(lambda m=mode: normalise_collect(
            Engine(case.graph, on_error=m).run_sync(inputs)))
        pure = run_once(case.pure, inputs, mode)
        native = run_once(case.native, inputs, mode)
        assert strict(native) == strict(pure)
        assert pure == engine
        completes[mode] = engine[0] == "ok"
    if completes["raise"]:  # the stream of a run that raises nothing
        want = frames_multiset(engine_stream(case.graph, inputs))
        pure_frames = frames_multiset(compiled_stream(case.pure, inputs))
        native_frames = compiled_stream(case.native, inputs)
        assert frames_multiset(native_frames) == pure_frames == want
        assert native_frames[-1].op_name == "END"


@pytest.mark.parametrize("name", [c.name for c in CASES] + list(EXTRA))
def test_native_equals_engine_and_out_py(built: dict[str, Built], name: str) -> None:
    case = built[name]
    for inputs in case.inputs:
        assert_same(case, inputs)


def test_values_pass_through_unconverted(built: dict[str, Built]) -> None:
    native, pure = built["values"].native, built["values"].pure
    seen = len(native.SEEN), len(pure.SEEN)
    result = native.run_sync({"xs": [1, 2.5, True], "n": 2, "limit": 1})
    assert repr(result["y"]) == "[1, 2.5, True]"  # typed float: no 1.0, no 1 for True
    assert repr(result["total"]) == "1.0"  # the loop state starts as int 0, typed int
    assert native.run_sync({"xs": (1, 2), "n": 0, "limit": 1})["y"] == [1, 2]  # a tuple
    pure.run_sync({"xs": [1, 2.5, True], "n": 2, "limit": 1})
    pure.run_sync({"xs": (1, 2), "n": 0, "limit": 1})
    assert repr(native.SEEN[seen[0]:]) == repr(pure.SEEN[seen[1]:])  # module state, alike


def test_what_stays_cpython_code(built: dict[str, Built]) -> None:
    case = built["values"]
    # mypyc refused `checked` (a break inside try/finally): it runs as CPython code
    assert set(case.build.refused) == {"checked"}
    assert "break inside try/finally" in case.build.refused["checked"][0]
    assert isinstance(case.native.checked, types.FunctionType)
    assert isinstance(case.native.ticks, types.FunctionType)  # an async generator
    assert isinstance(case.native.stream, types.FunctionType)
    assert not isinstance(case.native.keep, types.FunctionType)  # compiled
    assert not isinstance(case.native.run, types.FunctionType)
    box = case.native.Box(1)  # a CPython class: its instances take new attributes
    box.anything = 2
    assert type(case.native.Box) is type and box.anything == 2


def test_errors_keep_their_class_attributes_and_cause(built: dict[str, Built]) -> None:
    native = built["values"].native
    with pytest.raises(native.OpError) as info:
        native.run_sync({"xs": [1, 99, 3], "n": 1, "limit": 1})
    err = info.value
    assert isinstance(err, native.OperonxError) and isinstance(err, Exception)
    assert (err.op_name, err.index) == ("checked", (1,))
    assert isinstance(err.__cause__, ValueError) and err.__suppress_context__
    err.add_note("a note")  # an exception of a compiled class still takes notes
    assert err.__notes__ == ["a note"]
    with pytest.raises(native.InputError) as bad:
        native.run_sync([1])  # type: ignore[arg-type]  # not a mapping: InputError, as out.py
    assert "inputs must be a mapping" in str(bad.value)
    with pytest.raises(native.LoopLimitExceeded) as loop:
        native.run_sync({"xs": [1], "n": 1, "limit": 9})
    assert (loop.value.loop_name, loop.value.max_iterations) == ("loop", 5)
    nothing = {"xs": [], "n": 0, "limit": 1}
    assert run_once(native, nothing, "never") == run_once(built["values"].pure, nothing, "never")


def _tracebacks(exc: BaseException) -> Iterator[tuple[str, int, str]]:
    for entry in traceback.extract_tb(exc.__traceback__):
        yield os.path.basename(entry.filename), entry.lineno or 0, entry.name


def test_tracebacks_point_at_out_py_lines(built: dict[str, Built]) -> None:
    """Compiled and CPython code alike report out.py's own line numbers."""
    case = built["values"]
    lines = case.out_py.read_text().splitlines()
    for inputs, op_name, needle in (({"xs": [1, 99], "n": 0, "limit": 1}, "checked", "raise "),
                                    ({"xs": ["a"], "n": 0, "limit": 1}, "halve", "w / 2")):
        with pytest.raises(case.native.OpError) as info:
            case.native.run_sync(inputs)
        cause = info.value.__cause__
        assert cause is not None
        entries = [e for e in _tracebacks(cause) if e[2] == op_name]
        assert entries, list(_tracebacks(cause))
        filename, line, _name = entries[-1]
        assert filename == case.out_py.name
        assert needle in lines[line - 1]


def test_stream_left_early_closes_the_run(built: dict[str, Built]) -> None:
    native = built["async_fanout"].native

    async def first_then_leave() -> int:
        agen = native.stream({"numbers": list(range(50))})
        await agen.__anext__()
        await agen.aclose()
        await asyncio.sleep(0)
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    assert asyncio.run(first_then_leave()) == 0


def test_a_run_in_a_running_loop_and_its_cancellation(built: dict[str, Built]) -> None:
    native = built["async_fanout"].native

    async def go() -> tuple[Any, int]:
        result = await native.run({"numbers": [1, 2, 3]})
        with pytest.raises(TimeoutError):  # a long run is cancelled by its caller
            await asyncio.wait_for(native.run({"numbers": list(range(10**6))}), 0.05)
        await asyncio.sleep(0)
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return result, len(left)

    assert asyncio.run(go()) == (built["async_fanout"].pure.run_sync({"numbers": [1, 2, 3]}),
                                 0)
    with pytest.raises(RuntimeError, match="inside a running event loop"):
        asyncio.run(_run_sync_inside(native))


async def _run_sync_inside(module: types.ModuleType) -> Any:
    return module.run_sync({"numbers": [1]})


MAIN = """\
import importlib.abc, importlib.util, sys

BLOCKED = {"operonx", "compiler", "mypy", "mypyc", "mypy_extensions", "librt", "setuptools"}

class _Blocker(importlib.abc.MetaPathFinder):  # what built it is not what runs it
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, _Blocker())
name, *args = sys.argv[1:]
module = __import__(name)
assert module.__file__.endswith(".py") == (name.startswith("pure_")), module.__file__
sys.exit(module.main(args))
"""


def _main(directory: Path, name: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the repo is not on it
    done = subprocess.run([sys.executable, "-c", MAIN, name, *args], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("args", [
    ("--inputs", '{"xs": [1, 2.5, true], "n": 2, "limit": 1}'),
    ("--inputs", '{"xs": [1, 99], "n": 0, "limit": 1}'),  # an op error: exit 1
    ("--inputs", '{"xs": [1, 99], "n": 0, "limit": 1}', "--on-error", "collect"),
    ("--inputs", '{"nope": 1}'),  # InputError: exit 1
    ("--inputs", "[1]"),  # not an object: exit 2
])
def test_main_runs_the_same_without_operonx_or_mypyc(built: dict[str, Built], tmp_path: Path,
                                            args: tuple[str, ...]) -> None:
    case = built["values"]
    directory = case.out_py.parent
    pure = tmp_path / "pure_values.py"  # out.py under a name no extension stands for
    pure.write_text(case.out_py.read_text())
    want = _main(tmp_path, "pure_values", *args)
    got = _main(directory, case.out_py.stem, *args)
    assert got == want


def test_main_trace_writes_the_same_trace(built: dict[str, Built], tmp_path: Path) -> None:
    case = built["streaming"]
    (tmp_path / "pure_streaming.py").write_text(case.out_py.read_text())
    inputs = json.dumps({"numbers": [1, 2, 3]})
    traces = []
    for directory, name in ((tmp_path, "pure_streaming"),
                            (case.out_py.parent, case.out_py.stem)):
        path = tmp_path / f"{name}.json"
        code, out, err = _main(directory, name, "--inputs", inputs, "--trace", str(path))
        assert (code, err) == (0, "")
        assert json.loads(out) == {"result": [2, 4, 6]}
        events = json.loads(path.read_text())["traceEvents"]
        traces.append(sorted((e["name"], e["args"]["index"], json.dumps(e["args"]["outputs"]))
                             for e in events if e.get("cat") == "op"))
    assert traces[1] == traces[0] and len(traces[0]) == 6


def test_the_build_leaves_only_the_extension(built: dict[str, Built]) -> None:
    directory = next(iter(built.values())).out_py.parent
    names = sorted(p.name for p in directory.iterdir() if p.name != "__pycache__")
    assert names == sorted([*(b.out_py.name for b in built.values()),
                            *(os.path.basename(b.build.path) for b in built.values())])


def test_cpython_parts_carry_out_py_lines(built: dict[str, Built]) -> None:
    case = built["values"]
    lines = case.out_py.read_text().splitlines()
    code = case.native.checked.__code__  # a copied function mypyc refused
    assert code.co_filename == case.out_py.name
    assert lines[code.co_firstlineno - 1].startswith("def checked(")


def test_a_module_mypyc_refuses_fails_cleanly(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An error in the generated code (here an ``except*`` added by hand): the build fails
    with mypyc's message at out.py's line, and leaves no extension and no build files."""
    source = Path(golden_path(CASES[0], "O2")).read_text()
    marker = "def _scope_inputs(inputs: Mapping[str, Any]) -> Mapping[str, Any]:\n"
    line = source[:source.index(marker)].count("\n") + 1
    out = tmp_path / "edited.py"
    out.write_text(source.replace(marker, marker + "    try:\n        pass\n"
                                  "    except* ValueError:\n        pass\n"))
    Path(extension_path(str(out))).write_bytes(b"an extension of an older edited.py")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(NativeBuildError) as info:
        build_native(str(out), opt_level="0")
    message = str(info.value)
    assert message.startswith(f"{out}: error: --native: mypyc could not compile {out}:")
    where = re.search(r"edited\.py:(\d+): error: Exception groups and except\* cannot be "
                      r"compiled yet", message)
    assert where is not None and line < int(where.group(1)) <= line + 3, message
    assert info.value.exit_code == 3
    assert sorted(os.listdir(tmp_path)) == ["edited.py", "tmp"]
    assert os.listdir(scratch) == []
