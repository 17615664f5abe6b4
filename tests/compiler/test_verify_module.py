"""The last guard before a module is written: what Python would refuse is an internal error.

``verify_module`` byte-compiles the generated text in batches; these feed it modules
Python refuses and check the error says so, located, with the internal-error exit code
(so ``operonx compile`` writes nothing and asks for a report).
"""

from __future__ import annotations

import pytest

from compiler.codegen.generate import verify_module
from compiler.errors import EXIT_INTERNAL, CompileError


def _nested_blocks(depth: int) -> str:
    lines = ["def f() -> None:"]
    for level in range(depth):
        lines.append("    " * (level + 1) + "for _x in ():")
    lines.append("    " * (depth + 1) + "pass")
    return "from __future__ import annotations\n\n" + "\n".join(lines) + "\n"


def test_a_module_python_can_compile_passes() -> None:
    verify_module(_nested_blocks(19), "graph.py", 3)


@pytest.mark.parametrize(("text", "said"), [
    (_nested_blocks(21), "too many statically nested blocks"),
    ("from __future__ import annotations\n\ndef f(:\n    pass\n", "SyntaxError"),
    ("from __future__ import annotations\n\nx = 1\nreturn x\n", "'return' outside function"),
])
def test_a_module_python_refuses_is_an_internal_error_located_at_the_graph(
        text: str, said: str) -> None:
    with pytest.raises(CompileError) as caught:
        verify_module(text, "graph.py", 7)
    err = caught.value
    assert err.exit_code == EXIT_INTERNAL
    assert (err.file, err.line) == ("graph.py", 7)
    assert "the generated module does not compile" in str(err) and said in str(err)
