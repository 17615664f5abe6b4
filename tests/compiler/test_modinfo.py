"""The extractor reads a file's top-level statements without parsing the file whole.

:func:`compiler.frontend.modinfo.module_info` splits a file with :mod:`ast`, a stretch
at a time, and parses a statement with libcst only when it is copied. What it gives
must be exactly what a libcst parse of the whole file gives: every statement's first
line, the names it binds, its imports, and its libcst tree with the comments libcst
assigns to it (above it, and indented below its last block). Checked here against a
whole-file libcst parse, over this repository's own Python files and hostile layouts.
"""

from __future__ import annotations

import ast
import symtable
import textwrap
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from compiler.frontend.modinfo import module_info

REPO = Path(__file__).resolve().parents[2]

LAYOUTS = {
    "comments_everywhere": '''\
        #!/usr/bin/env python
        # header comment

        """Docstring."""
        import os, sys as system  # trailing
        from collections import (OrderedDict,
            defaultdict)

        # above f
        @decorator(1,
                   2)
        # between decorator and def
        def f():
            return 1
            # indented trailing

            # indented after a blank line
        # column 0 after f
        def g(): return 2
        # after g
        class C:
            x = 1
                # deeper
          # shallower than the body, deeper than the class
        a = 1; b = 2
        ''',
    "clauses_at_column_0": '''\
        if a:
            x = 1
        elif b:
            x = 2
            # elif trailing
        else:
            x = 3
        # after if
        try:
            pass
        except ValueError:
            pass
        finally:
            y = 1
           # odd indent
        for i in range(3):
            pass
        else:
            pass
        while False:
            pass
        def h(
        a, b):
            return (a,
        b)
        ''',
    "strings_and_continuations": '''\
        TEXT = """
        def not_a_statement():
        else:
        """
        VALUE = 1 + \\
        2
        CALL = dict(
        key=1,
        )
        if __name__ == "__main__":
            print(TEXT)
        ''',
    "match_and_tabs": '''\
        match command:
            case "go":
                pass
            case _:
                pass
                # case trailing
        LAST = [lambda s: s > 1,
                lambda t: t]
        ''',
    "tabs": '''\
        def tabbed():
        \tif x:
        \t\treturn 1
        \t# tab comment
        X = 1
        ''',
    "nested_blocks": '''\
        def outer():
            def inner():
                if x:
                    return 1
                    # deepest

            # middle
            return inner
        # top
        Z = 0
        ''',
}


def _reference(path: Path) -> list[tuple[int, tuple[str, ...], str]]:
    """(first line, names bound, code) per top-level statement, from a whole-file parse."""
    tree = cst.parse_module(path.read_text(encoding="utf-8"))
    wrapper = MetadataWrapper(tree, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    out = []
    for node in tree.body:
        decorators = getattr(node, "decorators", ())
        line = positions[decorators[0] if decorators else node].start.line
        table = symtable.symtable(tree.code_for_node(node), "<statement>", "exec")
        binds = tuple(s.get_name() for s in table.get_symbols()
                      if s.is_assigned() or s.is_imported() or s.is_namespace())
        out.append((line, binds, cst.Module(body=[node]).code))
    return out


def _ours(path: Path) -> list[tuple[int, tuple[str, ...], str]]:
    info = module_info(str(path), "m", None)
    return [(s.line, s.binds, cst.Module(body=[s.node]).code) for s in info.statements]


def _files() -> list[Path]:
    """Real code of every layout this repository has: the compiler, the examples and the
    test fixtures (graphs, projects, hostile layouts)."""
    found = []
    for folder in ("compiler/frontend", "compiler/codegen", "examples", "tests/golden",
                   "tests/compiler/fixtures"):
        found += sorted((REPO / folder).rglob("*.py"))
    return found


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_statements_match_a_whole_file_libcst_parse(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(LAYOUTS[name]), encoding="utf-8")
    ast.parse(path.read_text(encoding="utf-8"))  # the layouts are valid Python
    assert _ours(path) == _reference(path)


def test_this_repositorys_files_split_as_libcst_splits_them() -> None:
    files = _files()
    assert len(files) > 30
    for path in files:
        assert _ours(path) == _reference(path), path


def test_imports_main_guard_and_lambdas(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("".join(textwrap.dedent(LAYOUTS[name]) for name in (
        "comments_everywhere", "strings_and_continuations", "match_and_tabs")), encoding="utf-8")
    info = module_info(str(path), "pkg.m", "pkg")
    imports = [(i.module, i.attr, i.bound) for s in info.statements for i in s.imports]
    assert imports == [("os", None, "os"), ("sys", None, "system"),
                       ("collections", "OrderedDict", "OrderedDict"),
                       ("collections", "defaultdict", "defaultdict")]
    assert [s.main_guard for s in info.statements].count(True) == 1
    line = next(s.line for s in info.statements if "LAST" in s.binds)
    lambdas = info.lambdas_at(line)
    assert [cst.Module([]).code_for_node(lam.body) for lam in lambdas] == ["s > 1"]
    assert [cst.Module([]).code_for_node(lam.body) for lam in info.lambdas_at(line + 1)] == ["t"]
