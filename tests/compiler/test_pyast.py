"""The round-trip proof of generated code: text must parse back to the very tree built."""

from __future__ import annotations

import ast

import pytest

from compiler.codegen import pyast


def _built(source: str) -> list[ast.stmt]:
    return ast.parse(source).body


@pytest.mark.parametrize(("built", "text"), [
    ("x = 1", "x = 1.0"),  # 1 == 1.0, but they are different code
    ("x = 1", "x = True"),
    ("x = 0.0", "x = -0.0"),
    ("f(a, b)", "f(b, a)"),
    ("f(a)", "f(a, b)"),
    ("if a:\n    b()", "if a:\n    b()\nelse:\n    c()"),
    ("x: int = 1", "x: str = 1"),
])
def test_a_text_that_means_something_else_is_refused(built: str, text: str) -> None:
    with pytest.raises(AssertionError, match="does not parse back"):
        pyast.check_roundtrip(_built(built), text)


def test_comments_are_not_code_and_an_empty_block_gets_a_pass() -> None:
    body = pyast.stmts("""
        for X in Y:
            BODY
    """, X=pyast.Ident("item"), Y=pyast.Ident("items"), BODY=[pyast.comment("nothing {here}")])
    body.append(pyast.comment("the end"))
    text = pyast.render(body)
    assert text == "for item in items:\n    # nothing {here}\n    pass\n# the end"
    pyast.check_roundtrip(body, text)


def test_every_field_counts_an_absent_optional_one_is_none() -> None:
    built = [ast.Return(value=ast.Constant(value=None))]
    pyast.check_roundtrip(built, pyast.render(built))
    assert pyast.first_difference(ast.parse("return None").body, built) is None
    assert pyast.first_difference(ast.parse("return").body, built) is not None
