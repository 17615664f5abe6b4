"""Class 6 of issue 8: module-level statements that fill state the ops use are copied.

Statements that bind no name the ops read — ``REG["k"] = f``, ``REG.update(...)``,
``@register`` on a def, a ``for`` loop filling a table — still decide what the
ops see. The compiled module must run them too (in source order), or the
compiler must refuse with the statement's location; dropping one silently
gives the compiled op an emptier registry than the Engine's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from compiler import CompileError, compile_file
from tests.compiler.helpers import assert_equivalent
from tests.compiler.projects import HEAD, LEVELS, compiled, engine_graph, write_project

LOOKUP = HEAD + """

@op
def lookup(key: str, x: int) -> dict[str, int]:
    return {"y": REG[key](x)}


with GraphOp(name="g") as graph:
    node = lookup(key=PARENT["key"], x=PARENT["x"])
    START >> node >> END
"""


def _agree(tmp_path: Path, files: dict[str, str], inputs: list[dict[str, object]]) -> None:
    """Engine and compiled module (every level) give the same results and errors."""
    path = write_project(tmp_path, files)
    graph = engine_graph(path)
    for level in LEVELS:
        module = compiled(path, level, tmp_path)
        for given in inputs:
            assert_equivalent(graph, module, given)


def _registry(setup: str) -> str:
    """A graph whose op dispatches through ``REG``, with ``setup`` before it."""
    return HEAD + "\nREG: dict[str, object] = {}\n" + setup + LOOKUP.removeprefix(HEAD)


def test_class6_registry_filled_by_decorator_is_copied(tmp_path: Path) -> None:
    files = {"graph.py": _registry('''

def register(fn):
    REG[fn.__name__] = fn
    return fn


@register
def double(x):
    return x * 2


@register
def square(x):
    return x * x
''')}
    _agree(tmp_path, files, [{"key": "double", "x": 3}, {"key": "square", "x": 4}])
    source = compile_file(write_project(tmp_path, files)).source
    assert "@register\ndef double(x: Any) -> Any:" in source


def test_class6_registry_filled_by_decorator_factory_is_copied(tmp_path: Path) -> None:
    files = {"graph.py": _registry('''

def register(name):
    def deco(fn):
        REG[name] = fn
        return fn
    return deco


@register("twice")
def double(x):
    return x * 2
''')}
    _agree(tmp_path, files, [{"key": "twice", "x": 3}, {"key": "double", "x": 3}])


def test_class6_subscript_update_and_append_statements_are_copied(tmp_path: Path) -> None:
    files = {"graph.py": _registry('''
import operator

HOOKS: list[object] = []


def neg(x):
    return -x


REG["neg"] = neg
REG.update({"inc": lambda x: x + 1, "abs": abs})
REG.setdefault("pos", operator.pos)
HOOKS.append(neg)
REG["hooks"] = lambda x: len(HOOKS) * x
del REG["pos"]
''')}
    _agree(tmp_path, files, [{"key": k, "x": -5} for k in ("neg", "inc", "abs", "hooks", "pos")])


def test_class6_registrars_reached_indirectly_are_followed(tmp_path: Path) -> None:
    """The function that fills the registry is looked up in a dict, returned by a factory,
    or picked by an expression: whatever the callee may be is followed."""
    files = {"graph.py": _registry('''

def _register(fn):
    REG[fn.__name__] = fn
    return fn


def registrar():
    return _register


HANDLERS = {
    "add": lambda name, fn: REG.setdefault(name, fn),
}
CHOICES = [_register]


def double(x):
    return 2 * x


def triple(x):
    return 3 * x


def square(x):
    return x * x


HANDLERS["add"]("twice", double)
registrar()(triple)
CHOICES[len(REG) - 2](square)
''')}
    _agree(tmp_path, files, [{"key": k, "x": 3} for k in ("twice", "triple", "square")])


def test_class6_module_level_loops_and_augmented_assignment_are_copied(tmp_path: Path) -> None:
    files = {"graph.py": _registry('''
import functools


def scale(k, x):
    return k * x


for k in range(1, 4):
    REG[f"x{k}"] = functools.partial(scale, k)

COUNT = 0
for name in ("a", "b"):
    COUNT += 1
    REG[name] = functools.partial(scale, COUNT)

if REG:
    REG["total"] = lambda x: len(REG) + x
''')}
    _agree(tmp_path, files, [{"key": "x3", "x": 2}, {"key": "b", "x": 5},
                             {"key": "total", "x": 0}, {"key": "zz", "x": 0}])


def test_class6_aliases_and_nested_tables_are_state_too(tmp_path: Path) -> None:
    files = {"graph.py": HEAD + '''
TABLE: dict[str, dict[str, int]] = {"group": {}}
ALIAS = TABLE
SUB = TABLE["group"]
ALIAS["other"] = {"k": 7}
SUB["k"] = 5


@op
def read(group: str) -> dict[str, int]:
    return {"v": TABLE[group]["k"]}


with GraphOp(name="g") as graph:
    node = read(group=PARENT["group"])
    START >> node >> END
'''}
    _agree(tmp_path, files, [{"group": "group"}, {"group": "other"}])


def test_class6_registrations_in_sibling_modules_are_copied_in_import_order(
        tmp_path: Path) -> None:
    files = {
        "graph.py": HEAD + '''
import plugins  # noqa: F401 - imported for its registrations
from registry import REG, register


@register
def local(x):
    return x + 100


@op
def lookup(key: str, x: int) -> dict[str, object]:
    return {"y": REG[key](x), "order": list(REG)}  # the order of registration shows


with GraphOp(name="g") as graph:
    node = lookup(key=PARENT["key"], x=PARENT["x"])
    START >> node >> END
''',
        "registry.py": '''
REG = {}


def register(fn):
    REG[fn.__name__] = fn
    return fn
''',
        "plugins.py": '''
from registry import register


@register
def triple(x):
    return 3 * x
''',
    }
    _agree(tmp_path, files, [{"key": "triple", "x": 2}, {"key": "local", "x": 2}])


def test_class6_registrations_keep_the_import_order_of_their_modules(tmp_path: Path) -> None:
    """zeta is imported before alpha: it registers first, whatever the names sort to."""
    files = {
        "graph.py": HEAD + '''
from zeta import Z
from alpha import A
from registry import REG


@op
def names(x: int) -> dict[str, object]:
    return {"order": list(REG), "x": x + A + Z}


with GraphOp(name="g") as graph:
    node = names(x=PARENT["x"])
    START >> node >> END
''',
        "registry.py": "REG = {}\n",
        "zeta.py": "from registry import REG\n\nREG['zeta'] = 1\nZ = 1\n",
        "alpha.py": "from registry import REG\n\nREG['alpha'] = 2\nA = 2\n",
    }
    _agree(tmp_path, files, [{"x": 1}])
    module = compiled(str(tmp_path / "graph.py"), 2, tmp_path)
    assert module.run_sync({"x": 1})["order"] == ["zeta", "alpha"]


def test_class6_an_import_below_copied_code_that_it_could_reorder_is_refused(
        tmp_path: Path) -> None:
    """The compiled module runs plugins' registrations before all of graph.py's copies;
    here graph.py registers first, so the order would change: refused at the import."""
    path = write_project(tmp_path, {
        "graph.py": HEAD + '''
from registry import REG

REG["first"] = abs
import plugins  # noqa: E402,F401


@op
def names(x: int) -> dict[str, object]:
    return {"order": list(REG), "x": x}


with GraphOp(name="g") as graph:
    node = names(x=PARENT["x"])
    START >> node >> END
''',
        "registry.py": "REG = {}\n",
        "plugins.py": "from registry import REG\n\nREG['second'] = abs\n",
    })
    with pytest.raises(CompileError) as info:
        compile_file(path)
    assert info.value.line == _line_of(path, "import plugins")
    first = _line_of(path, 'REG["first"]')
    assert info.value.hint == f"move the import above line {first}"


def test_class6_class_registries_and_subclass_hooks_are_copied(tmp_path: Path) -> None:
    files = {"graph.py": HEAD + '''

class Handler:
    registry: dict[str, type] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Handler.registry[cls.__name__.lower()] = cls

    def handle(self, x):
        return x


class Loud(Handler):
    def handle(self, x):
        return x * 10


@op
def dispatch(kind: str, x: int) -> dict[str, int]:
    return {"y": Handler.registry[kind]().handle(x)}


with GraphOp(name="g") as graph:
    node = dispatch(kind=PARENT["kind"], x=PARENT["x"])
    START >> node >> END
'''}
    _agree(tmp_path, files, [{"kind": "loud", "x": 2}, {"kind": "quiet", "x": 2}])


def test_class6_singledispatch_registrations_are_copied(tmp_path: Path) -> None:
    files = {"graph.py": HEAD + '''
import functools


@functools.singledispatch
def describe(value):
    return "thing"


@describe.register(int)
def _(value):
    return "int"


@describe.register
def _(value: str):
    return "str"


@op
def kind(value: object) -> dict[str, str]:
    return {"kind": describe(value)}


with GraphOp(name="g") as graph:
    node = kind(value=PARENT["value"])
    START >> node >> END
'''}
    _agree(tmp_path, files, [{"value": 1}, {"value": "a"}, {"value": 1.5}])


def test_class6_library_state_the_ops_use_is_set_up_alike(tmp_path: Path) -> None:
    files = {"graph.py": HEAD + '''
import random

random.seed(1234)


@op
def draw(n: int) -> dict[str, list[float]]:
    return {"xs": [random.random() for _ in range(n)]}


with GraphOp(name="g") as graph:
    node = draw(n=PARENT["n"])
    START >> node >> END
'''}
    path = write_project(tmp_path, files)
    source = compile_file(path).source
    assert ".seed(1234)" in source  # `random` may be renamed: the runtime imports it too
    # Both a fresh Engine process and a fresh compiled process draw the same numbers.
    engine = subprocess.run(
        [sys.executable, "-m", "operonx", "run", path, "--inputs", '{"n": 3}'],
        capture_output=True, text=True, check=True, cwd=tmp_path)
    (tmp_path / "out.py").write_text(source)
    module = subprocess.run([sys.executable, "out.py", "--inputs", '{"n": 3}'],
                            capture_output=True, text=True, check=True, cwd=tmp_path)
    assert module.stdout == engine.stdout


SYS_PATH = HEAD + '''
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@op
def tell(x: int) -> dict[str, int]:
    {body}
    return {{"y": x + len(sys.argv[:0])}}


with GraphOp(name="g") as graph:
    node = tell(x=PARENT["x"])
    START >> node >> END
'''


def test_class6_import_machinery_matters_only_to_code_that_imports_at_run_time(
        tmp_path: Path) -> None:
    """``sys.path.insert(0, ... __file__ ...)`` changes ``sys``, which the op uses, but
    only imports can see it: with none in the copied code it is not copied (and its
    ``__file__`` does not make the compile fail); with one it must be, and cannot be."""
    _agree(tmp_path, {"graph.py": SYS_PATH.format(body="pass")}, [{"x": 1}])
    source = compile_file(str(tmp_path / "graph.py")).source
    assert "sys.path" not in source.split("# -------- types ", 1)[0]
    importing = write_project(tmp_path, {"graph.py": SYS_PATH.format(body="import json")})
    with pytest.raises(CompileError) as info:
        compile_file(importing)
    assert info.value.line == _line_of(importing, "sys.path.insert")
    assert "calls sys.path.insert()" in info.value.message
    assert "'__file__'" in info.value.message


def test_class6_statements_that_change_nothing_are_not_copied(tmp_path: Path) -> None:
    files = {"graph.py": _registry('''
import logging

REG["one"] = int
print("registered", len(REG), sorted(REG))
SNAPSHOT = dict(REG)
SNAPSHOT["two"] = int  # a copy: REG is not changed
log = logging.getLogger("unrelated")

if __name__ == "__main__":
    REG["main"] = int
''')}
    _agree(tmp_path, files, [{"key": "one", "x": 1}, {"key": "main", "x": 1}])
    source = compile_file(write_project(tmp_path, files)).source
    for absent in ("print(", "SNAPSHOT", "getLogger", '"main"'):
        assert absent not in source.split("# -------- types ", 1)[0], absent  # copied code


def test_class6_a_change_inside_the_graph_block_is_refused_with_its_location(
        tmp_path: Path) -> None:
    path = write_project(tmp_path, {"graph.py": _registry("").replace(
        '    node = lookup(', '    REG["late"] = abs\n    node = lookup(')})
    with pytest.raises(CompileError) as info:
        compile_file(path)
    err = info.value
    assert err.file == path
    assert err.line == _line_of(path, 'REG["late"] = abs')
    assert "assigns into REG" in err.message and "cannot be copied" in err.message
    assert err.hint


SCALAR_OPS = '''
from operonx.core import op

LIMIT = 5


def bump():
    global LIMIT
    LIMIT += 1


@op
def clamp(x: int) -> dict[str, int]:
    return {"y": min(x, LIMIT)}
'''


@pytest.mark.parametrize(("change", "words"), [
    ("import ops\nops.LIMIT = 7\n", "rebinds ops.LIMIT"),
    ("from ops import bump\nbump()\n", "calls bump(), which rebinds LIMIT"),
])
def test_class6_rebinding_a_copied_scalar_elsewhere_is_refused(tmp_path: Path, change: str,
                                                               words: str) -> None:
    """An int has no identity to follow: the names the copy binds are checked by name.
    Neither change can be copied as written (the compiled LIMIT is a plain global)."""
    path = write_project(tmp_path, {"graph.py": HEAD + "from ops import clamp\n" + change + '''

with GraphOp(name="g") as graph:
    node = clamp(x=PARENT["x"])
    START >> node >> END
''', "ops.py": SCALAR_OPS})
    with pytest.raises(CompileError) as info:
        compile_file(path)
    assert info.value.file == path
    assert info.value.line == len(HEAD.splitlines()) + 3
    assert words in info.value.message and "cannot be copied" in info.value.message


def test_class6_setattr_on_a_class_the_ops_use_is_copied(tmp_path: Path) -> None:
    files = {"graph.py": HEAD + '''

class Table:
    rows: dict[str, int] = {}


setattr(Table, "rows", {"a": 1})


@op
def get(key: str) -> dict[str, int]:
    return {"v": Table.rows.get(key, -1)}


with GraphOp(name="g") as graph:
    node = get(key=PARENT["key"])
    START >> node >> END
'''}
    _agree(tmp_path, files, [{"key": "a"}, {"key": "b"}])


def test_class6_exec_at_module_level_is_refused(tmp_path: Path) -> None:
    path = write_project(tmp_path, {"graph.py": _registry('exec("REG[\'x\'] = abs")\n')})
    with pytest.raises(CompileError) as info:
        compile_file(path)
    assert info.value.line == _line_of(path, "exec(")
    assert "cannot tell whether" in info.value.message and "exec()" in info.value.message


def test_class6_name_bound_only_under_the_main_guard_is_not_defined(tmp_path: Path) -> None:
    path = write_project(tmp_path, {"graph.py": HEAD + '''

@op
def read(x: int) -> dict[str, int]:
    return {"y": x + OFFSET}


with GraphOp(name="g") as graph:
    node = read(x=PARENT["x"])
    START >> node >> END

if __name__ == "__main__":
    OFFSET = 1
'''})
    with pytest.raises(CompileError) as info:
        compile_file(path)
    assert "'OFFSET'" in info.value.message and "not defined at module level" in \
        info.value.message


def _line_of(path: str, needle: str) -> int:
    lines = Path(path).read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if needle in text)
