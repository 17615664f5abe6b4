"""Lean output: a generated module holds the runtime helpers and imports it reads, no more.

The runtime library (compiler/codegen/runtime.py) splits the runtime templates into
snippets and includes the closure of what the module's own code reads; what a snippet
needs is read from its code. Tested on small libraries written here, and on every
golden module: each runtime definition it includes is read by something in it.
"""

from __future__ import annotations

import ast
import symtable

import pytest

from compiler.codegen.render import PUBLIC_NAMES, RUNTIME_IMPORTS, environment
from compiler.codegen.runtime import Library, library, library_text, parse_library, select
from tests.golden.cases import CASES, golden_path

LIBRARY = '''\
{{ banner("base") }}


class Base(Exception):
    """The base."""


def helper() -> int:
    return _CONST


_CONST = 1  # read only inside a function: its place does not matter


{{ banner("things") }}


class Thing(Base):
    """A thing."""

    KIND = "x"

    def __init__(self) -> None:
        import json  # a local import: json is not read from the module

        self.n = helper() + len(json.dumps(1))

    def used(self) -> int:
        return self.inner()

    # What inner does.
    def inner(self) -> int:
        return int(time.time())

    def unused(self) -> int:
        return unused_helper()


def unused_helper() -> int:
    return 2
'''


def _library(text: str) -> Library:
    return Library(tuple(parse_library(environment().from_string(text).render(), 0)))


def test_the_closure_of_what_is_read_in_library_order() -> None:
    lib = _library(LIBRARY)
    chosen = select(["Thing"], [], ("import json", "import time"), lib)
    tree = ast.parse(chosen.code)
    assert [n.name if hasattr(n, "name") else ast.unparse(n) for n in tree.body] == [
        "Base", "helper", "_CONST = 1", "Thing"]
    thing = tree.body[-1]
    assert isinstance(thing, ast.ClassDef)
    assert [getattr(n, "name", None) for n in thing.body[1:]] == [None, "__init__"]
    assert chosen.imports == ()  # json is imported where it is used; time is not read
    assert "# -------- base" in chosen.code and "# -------- things" in chosen.code


def test_a_method_comes_with_a_read_of_its_name_and_brings_what_it_reads() -> None:
    chosen = select(["Thing"], ["used"], ("import json", "import time"), _library(LIBRARY))
    thing = ast.parse(chosen.code).body[-1]
    assert isinstance(thing, ast.ClassDef)
    assert [getattr(n, "name", None) for n in thing.body[2:]] == ["__init__", "used", "inner"]
    assert "    # What inner does.\n    def inner" in chosen.code
    assert "unused" not in chosen.code
    assert chosen.imports == ("import time",)


def test_a_snippet_comes_after_what_it_needs_when_it_is_defined() -> None:
    text = '''\
class Late(Early):
    pass


X = make()


def make() -> int:
    return 1


class Early:
    pass
'''
    chosen = select(["Late", "X"], [], (), _library(text))
    names = [getattr(n, "name", None) or ast.unparse(n) for n in ast.parse(chosen.code).body]
    assert names == ["make", "X = make()", "Early", "Late"]
    exec(compile(chosen.code, "<runtime>", "exec"), {})  # it runs: each name defined in time


def test_every_runtime_definition_of_a_golden_module_is_read_in_it() -> None:
    runtime_names = library().names
    for case in CASES:
        for level in ("O0", "O2"):
            with open(golden_path(case, level), encoding="utf-8") as f:
                source = f.read()
            tree = ast.parse(source)
            defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef,
                                                                   ast.ClassDef))}
            defined |= {t.id for n in tree.body if isinstance(n, ast.Assign)
                        for t in n.targets if isinstance(t, ast.Name)}
            read = _reads(source)
            unread = sorted((defined & runtime_names) - read - set(PUBLIC_NAMES))
            assert not unread, f"{case.name} {level}: {unread} included but never read"


def test_a_sync_graph_has_no_async_helpers_and_an_async_one_has_them() -> None:
    by_name = {case.name: case for case in CASES}
    with open(golden_path(by_name["streaming"], "O2"), encoding="utf-8") as f:
        sync_module = f.read()
    with open(golden_path(by_name["asyncgen"], "O2"), encoding="utf-8") as f:
        async_module = f.read()
    for helper in ("def _agen_failed", "def acall", "def cpucall", "import functools",
                   "def worker_main", "class CpuPool", "import multiprocessing"):
        assert helper not in sync_module
    assert "def _agen_failed" in async_module
    # Its bound="cpu" op runs in worker processes: the pool comes with it, as operonx's text.
    assert "def cpucall" in async_module and "def worker_main" in async_module
    assert "copied from operonx: operonx/engine/cpu_pool.py" in async_module


def test_source_libraries_are_operonx_modules_included_as_text() -> None:
    """The Engine imports operonx/engine/cpu_pool.py; a compiled module includes its text."""
    from operonx.engine import cpu_pool

    with open(cpu_pool.__file__, encoding="utf-8") as f:
        source = f.read()
    chosen = select(["shared_pool"], [], RUNTIME_IMPORTS)
    shared = ast.parse(chosen.code).body
    mine = {ast.unparse(n) for n in ast.parse(source).body}
    assert any(isinstance(n, ast.FunctionDef) and n.name == "shared_pool" for n in shared)
    assert {ast.unparse(n) for n in shared if getattr(n, "name", "") == "shared_pool"} <= mine
    assert "import multiprocessing as _multiprocessing" in chosen.imports


def test_a_source_library_may_import_only_runtime_imports() -> None:
    text = "import json\nimport subprocess\n\n\ndef f() -> str:\n    return json.dumps(1)\n"
    with pytest.raises(ValueError, match="example: `import subprocess` is not in RUNTIME_IMPORTS"):
        library_text(text, "example", ())
    assert "def f()" in library_text(text.replace("import subprocess\n", ""), "example", ())


@pytest.mark.parametrize("line", RUNTIME_IMPORTS)
def test_runtime_imports_are_imports(line: str) -> None:
    assert all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.parse(line).body)


def _reads(source: str) -> set[str]:
    """Names read anywhere in the module (any scope), and attribute names."""
    found: set[str] = set()
    stack = [symtable.symtable(source, "<module>", "exec")]
    while stack:
        table = stack.pop()
        stack.extend(table.get_children())
        found.update(s.get_name() for s in table.get_symbols() if s.is_referenced())
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            found.add(node.id)  # annotations too (symtable does not see them here)
    return found


def test_code_above_the_runtime_may_not_read_it_at_import_time() -> None:
    """The runtime is defined after main(): a module-level statement above it that read a
    runtime name when the module is imported would fail at import; the compiler refuses."""
    from compiler.codegen.generate import _runtime_defined_in_time
    from compiler.errors import EXIT_INTERNAL, CompileError

    _runtime_defined_in_time({"TypedDict", "ErrorInfo", "_Limits"}, "g.py", 3)  # not runtime
    with pytest.raises(CompileError) as info:
        _runtime_defined_in_time({"_SKIPPED", "Any"}, "g.py", 3)
    assert info.value.exit_code == EXIT_INTERNAL and "_SKIPPED" in str(info.value)
