"""What ``--native`` hands to mypyc (compiler/native/variant.py): out.py's own statements,
at out.py's own lines, with no type mypyc would enforce; the rest as out.py's own text.

No C compiler needed: these read the variant's text. tests/compiler/test_native.py
builds it and runs it.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from compiler.native import compiled_functions, native_source
from compiler.native.variant import VariantError
from tests.golden.cases import CASES, golden_path

GOLDEN = [(case.name, kind) for case in CASES for kind in ("O0", "O2")]
PRIVATE = {"_Run", "_Limits", "_Policy", "_ChromeTraceWriter", "_Worker"}  # _Worker: bound="cpu"


def _exec_calls(tree: ast.Module) -> list[tuple[int, str, str]]:
    """(line, text, file name) of every ``exec(compile(TEXT, NAME, ...))`` in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "exec"):
            call = node.args[0]
            assert isinstance(call, ast.Call) and isinstance(call.args[0], ast.Constant)
            assert isinstance(call.args[1], ast.Constant)
            found.append((node.lineno, call.args[0].value, call.args[1].value))
    return found


class _Untyped(ast.NodeTransformer):
    """A tree without its types: what must be the same in out.py and the variant."""

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.returns = None
        return self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        node.returns = None
        return self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        return ast.Assign(targets=[node.target], value=self.visit(node.value), lineno=0)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        name = getattr(node.func, "id", None)
        if name == "cast" or (name == "TypedDict" and len(node.args) == 2):
            types = node.args[1] if name == "TypedDict" else None
            if isinstance(types, ast.Dict):
                types.values = [ast.Constant(None) for _ in types.values]
            elif name == "cast":
                node.args[0] = ast.Constant(None)
        return node


def _statements(node: ast.AST) -> list[tuple[str, int]]:
    """Each statement's kind and line (an annotated assignment is an assignment; a bare
    declaration, ``a: Any``, is none)."""
    return [("Assign" if isinstance(n, ast.AnnAssign) else type(n).__name__, n.lineno)
            for n in ast.walk(node) if isinstance(n, ast.stmt)
            and not (isinstance(n, ast.AnnAssign) and n.value is None)]


@pytest.mark.parametrize("name,kind", GOLDEN)
def test_mypyc_compiles_out_py_statements_at_out_py_lines(name: str, kind: str) -> None:
    case = next(c for c in CASES if c.name == name)
    source = Path(golden_path(case, kind)).read_text()
    variant = native_source(source, "out.py")
    assert variant.count("\n") == source.count("\n")
    original, changed = ast.parse(source), ast.parse(variant)
    by_line = {node.lineno: node for node in changed.body}
    skeleton = next(n.lineno for n in original.body
                    if isinstance(n, ast.ClassDef) and n.name == "ErrorInfo")
    compiled = set(compiled_functions(source))
    kept = 0
    for node in original.body:
        copied_but_compiled = isinstance(node, ast.FunctionDef) and node.name in compiled
        generated = node.lineno >= skeleton and getattr(node, "name", "") != "stream"
        if not (copied_but_compiled or generated):
            continue
        twin = by_line[node.lineno]
        assert _statements(twin) == _statements(node)
        assert ast.dump(_Untyped().visit(twin)) == ast.dump(_Untyped().visit(node))
        kept += 1
    assert kept > 20


@pytest.mark.parametrize("name,kind", GOLDEN)
def test_the_pure_parts_are_out_py_text_at_its_lines(name: str, kind: str) -> None:
    case = next(c for c in CASES if c.name == name)
    source = Path(golden_path(case, kind)).read_text()
    lines = source.splitlines(keepends=True)
    calls = _exec_calls(ast.parse(native_source(source, "out.py")))
    assert len(calls) >= 2  # the imports and copied code, and stream
    for line, text, filename in calls:
        assert filename == "out.py"
        body = text.lstrip("\n")
        assert len(text) - len(body) == line - 1  # its code objects carry out.py's lines
        assert body == "".join(lines[line - 1:line - 1 + body.count("\n")])
    stream = next(text for _line, text, _file in calls if "async def stream(" in text)
    assert stream.lstrip("\n").startswith("async def stream(")


@pytest.mark.parametrize("name,kind", GOLDEN)
def test_no_type_is_left_for_mypyc_to_enforce(name: str, kind: str) -> None:
    case = next(c for c in CASES if c.name == name)
    tree = ast.parse(native_source(Path(golden_path(case, kind)).read_text(), "out.py"))
    # no type but Any's, and the containers the module makes itself (a list display)
    allowed = {"Any", "NotRequired[Any]", "None", "NoReturn", "list[Any]", "dict[Any, Any]",
               "set[Any]", *PRIVATE}
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.AnnAssign, ast.arg)):
            annotations.append(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(node.returns)
        for annotation in filter(None, annotations):
            assert ast.unparse(annotation) in allowed, ast.unparse(node)[:200]


def _module(copied: str, generated: str = "") -> str:
    """The shape of a generated module: imports, copied code, then the skeleton."""
    return (f'"""A module."""\n\nfrom __future__ import annotations\n\nimport asyncio\n'
            f"from typing import Any, cast\n\n{textwrap.dedent(copied)}\n\n"
            f"class ErrorInfo:\n    pass\n\n\n{textwrap.dedent(generated)}")


def test_which_copied_functions_mypyc_compiles() -> None:
    source = _module("""
        def plain(x: int) -> dict[str, int]:
            return {"x": x}

        async def coroutine(x: int) -> dict[str, int]:
            return {"x": x}

        async def agen(n: int):
            yield {"n": n}

        def has_class() -> None:
            class Inner:
                pass

        def reads_frame() -> dict[str, object]:
            return locals()

        def groups() -> None:
            try:
                pass
            except* ValueError:
                pass

        def rebound() -> None:
            pass

        rebound = staticmethod(rebound)

        def left_out() -> None:
            pass

        class User:
            def method(self) -> None:
                pass
    """)
    assert set(compiled_functions(source, pure=["left_out"])) == {"plain", "coroutine"}
    tree = ast.parse(native_source(source, "out.py", pure=["left_out"]))
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef,
                                                            ast.AsyncFunctionDef))}
    assert defined == {"plain", "coroutine", "ErrorInfo"}
    pure_text = "".join(text for _line, text, _file in _exec_calls(tree))
    for name in ("agen", "has_class", "reads_frame", "groups", "rebound", "left_out", "User"):
        assert f" {name}(" in pure_text or f"class {name}:" in pure_text


def test_counters_stay_integers_and_values_become_any() -> None:
    variant = native_source(_module("", '''
        def _fast_g(rt: _Run, inp: Mapping[str, Any], out: Result) -> None:
            i = 0
            done = False
            total = 0
            half = 0
            n, m = inp["a"], 1
            made: list[int] = []
            given: list[int] = []
            given = inp["given"]
            seen = {}
            while True:
                i += 1
                done = not done or i > 3
                total = total + inp["v"]
                half = i / 2
                x: float = inp["x"]
                y = cast(Result, x)
                if i >= 10:
                    break
            Result = TypedDict("Result", {"a": list[int], "$e": NotRequired[list[int]]})
    '''), "out.py")
    body = variant[variant.index("def _fast_g"):]
    assert "def _fast_g(rt: Any, inp: Any, out: Any) -> None:" in body  # _Run not defined here
    for kept in ("    i = 0\n", "    done = False\n", "        i += 1\n"):
        assert kept in body
    for erased in ("    total: Any = 0\n", "    half: Any = 0\n", "n: Any; m: Any; n, m =",
                   '        x: Any = inp["x"]\n', "        y: Any = cast(Any, x)\n",
                   '{"a": Any, "$e": NotRequired[Any]}', "    made: list[Any] = []\n",
                   "    given: Any = []\n", "    seen: dict[Any, Any] = {}\n"):
        assert erased in body


def test_a_private_class_of_the_module_keeps_its_annotation() -> None:
    variant = native_source(_module("", '''
        class _Run:
            def call(self, index: tuple[int, ...]) -> _Run:
                return self

        def _traced(rt: _Run, idx: tuple[int, ...]) -> dict[str, Any]:
            return {}
    '''), "out.py")
    assert "def call(self, index: Any) -> _Run:" in variant
    assert "def _traced(rt: _Run, idx: Any) -> Any:" in variant


def test_a_module_operonx_did_not_generate_is_refused() -> None:
    with pytest.raises(VariantError, match="not a module operonx generated"):
        native_source("import os\n\nprint(os.getcwd())\n", "out.py")
    with pytest.raises(VariantError):
        native_source('"""doc"""\n\nclass ErrorInfo:\n    pass\n', "out.py")
