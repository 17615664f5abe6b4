"""Class 5 of issue 8: what the compiler proves about an op's source must be true.

Two analyses read op bodies: "outputs proven" (which lets -O2 drop the run-time
outputs check) and the return annotation synthesized for an op the user left
unannotated (which must let ``mypy --strict`` pass). Where either is unsure it
must keep the check, or write ``Any``; it never guesses.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from compiler import compile_file
from operonx.ir.introspect import always_exits, function_ast, op_kind, proven_outputs
from tests.compiler.helpers import assert_equivalent
from tests.compiler.projects import HEAD, LEVELS, compiled, engine_graph, mypy_strict, write_project

SUPPRESSED_RETURN = HEAD + """
import contextlib


@op
def risky(x: int):
    with contextlib.suppress(ZeroDivisionError):
        return {"r": 10 // x}


@op
def use(r: int) -> dict[str, int]:
    return {"out": r + 1}


with GraphOp(name="g") as graph:
    a = risky(x=PARENT["x"])
    b = use(r=a["r"])
    START >> a >> b >> END
"""


@pytest.mark.parametrize("level", LEVELS)
def test_class5_with_suppress_return_can_fall_through(tmp_path: Path, level: int) -> None:
    """``with suppress(...): return {...}`` returns None when it suppresses: the
    outputs check stays, so every level fails like the Engine (OpError naming the op)."""
    path = write_project(tmp_path, {"graph.py": SUPPRESSED_RETURN})
    graph = engine_graph(path)
    module = compiled(path, level, tmp_path)
    assert module.run_sync({"x": 5}) == {"out": 3}
    for inputs in ({"x": 5}, {"x": 0}):
        assert_equivalent(graph, module, inputs)
    with pytest.raises(module.OpError) as info:
        module.run_sync({"x": 0})
    assert info.value.op_name == "risky"
    assert isinstance(info.value.__cause__, KeyError)


def _suppressed(x: int) -> dict[str, int] | None:
    import contextlib

    with contextlib.suppress(ZeroDivisionError):
        return {"r": 10 // x}
    return None


def _with_then_raise(x: int) -> dict[str, int]:
    import contextlib

    with contextlib.suppress(ValueError):
        raise ValueError(x)  # suppressed: falls through to the end
    return {"r": x}


def _nested_with(x: int) -> Any:
    if x:
        return {"r": 1}
    else:
        with open("/dev/null"):
            return {"r": 2}


def _while_true(x: int) -> dict[str, int]:
    while True:
        if x > 3:
            return {"r": x}
        x += 1


def test_class5_a_with_never_proves_the_function_exits() -> None:
    """The analysis itself, on the shapes it must stay unsure about."""
    tree = function_ast(_suppressed)
    assert tree is not None
    assert not always_exits(tree.body[-2:-1])  # the `with` block alone
    assert proven_outputs(function_ast(_nested_with), op_kind(_nested_with)) is None
    assert proven_outputs(function_ast(_while_true), op_kind(_while_true)) == ("r",)
    assert proven_outputs(function_ast(_with_then_raise), op_kind(_with_then_raise)) == ("r",)


class _Lib:
    """A third-party namespace whose decorator happens to be called ``op``."""

    @staticmethod
    def op(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return [fn(*args, **kwargs)]

        return wrapper


lib = _Lib()


@lib.op
def _wrapped_by_a_namesake(x: int) -> dict[str, int]:
    return {"r": x}


def test_class5_a_a_wrapper_is_never_analysed_as_the_source() -> None:
    """``@lib.op`` is spelled like ``@op`` but returns a list: the function that runs is
    the wrapper, so nothing is proven about it."""
    fn = _wrapped_by_a_namesake
    assert proven_outputs(function_ast(fn), op_kind(fn), fn) is None
    assert proven_outputs(function_ast(_while_true), op_kind(_while_true), _while_true) == (
        "r",)


UNANNOTATED = HEAD + """
import contextlib


def batches(xs):
    total = yield xs[:1]
    return total


def ratio(a, b):
    with contextlib.suppress(ZeroDivisionError):
        return a / b


@op(outputs=["s"])
def listy(x: int):
    if x > 100:
        return [x]
    return {"s": x}


@op
def maybe(x: int):
    with contextlib.suppress(ZeroDivisionError):
        return {"m": 10 // x}


@op
def either(x: int):
    if x == 7:
        return None
    return {"e": x}


@op
def nothing(x: int):
    print(x, file=open("/dev/null", "w"))


@op(outputs=["v"])
def spread(x: int):
    base = {"v": x}
    return {**base}


@op(outputs=["w"])
def pairs(n: int):
    for i in range(n):
        got = yield {"w": i}
        if got:
            return


@op
def plain_gen(n: int):
    for i in range(n):
        yield {"p": i}


@op(outputs=["q"])
def list_gen(n: int):
    if n == 50:
        yield [n]
    yield {"q": n}


@op
def total(s: int, m: int, v: int, w: list[int], p: list[int]) -> dict[str, float]:
    first = next(batches([0]))[0]
    return {"t": s + m + v + sum(w) + sum(p) + (ratio(1, 2) or 0) + first}


with GraphOp(name="g") as graph:
    a = listy(x=PARENT["x"])
    b = maybe(x=PARENT["x"])
    c = nothing(x=PARENT["x"])
    h = either(x=PARENT["x"])
    d = spread(x=PARENT["x"])
    e = pairs(n=PARENT["x"])
    f = plain_gen(n=PARENT["x"])
    g = list_gen(n=PARENT["x"])
    t = total(s=a["s"], m=b["m"], v=d["v"], w=e["w"].collect(), p=f["p"].collect())
    START >> [a, b, c, d, e, f, g, h]
    [a, b, d, e, f] >> t >> END
    [g, h] >> END
"""


def test_class5_b_synthesized_annotations_state_only_what_the_source_proves(
        tmp_path: Path) -> None:
    """No return annotation: a dict type only when every return is a dict literal (else
    ``Any``), and the compiled module passes ``mypy --strict`` with every such op."""
    path = write_project(tmp_path, {"graph.py": UNANNOTATED})
    source = compile_file(path, opt_level=2).source
    assert "def listy(x: int) -> Any:" in source
    assert "def maybe(x: int) -> Any:" in source  # may fall off its end
    assert "def either(x: int) -> dict[str, Any] | None:" in source
    assert "def nothing(x: int) -> None:" in source
    assert "def spread(x: int) -> Any:" in source
    assert "def pairs(n: int) -> Any:" in source
    assert "def plain_gen(n: int) -> Iterator[dict[str, Any]]:" in source
    assert "def list_gen(n: int) -> Any:" in source
    assert "def batches(xs: Any) -> Any:" in source  # helper: send and return value
    assert "def ratio(a: Any, b: Any) -> Any:" in source
    for level in LEVELS:
        out = tmp_path / f"out_O{level}.py"
        out.write_text(compile_file(path, opt_level=level).source, encoding="utf-8")
        done = mypy_strict(str(out), tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("level", LEVELS)
def test_class5_b_list_returning_op_fails_alike_on_both_paths(tmp_path: Path,
                                                               level: int) -> None:
    path = write_project(tmp_path, {"graph.py": UNANNOTATED})
    graph = engine_graph(path)
    module = compiled(path, level, tmp_path)
    for inputs in ({"x": 2}, {"x": 200}, {"x": 50}, {"x": 7}, {"x": 0}):
        assert_equivalent(graph, module, inputs, frames=False)


SPREADS = HEAD + """


def extra() -> dict[str, str]:
    return {"r": "text"}


@op(outputs=["r"])
def mixed(x: int):
    if x:
        return {"r": 1}
    return {**extra()}


@op(outputs=["d"])
def delegating(n: int):
    yield {"d": n}
    yield from ({"d": str(i)} for i in range(n))


@op
def literal(x: int):
    if x:
        return {"l": x * 2}
    return None


with GraphOp(name="g") as graph:
    a = mixed(x=PARENT["x"])
    b = delegating(n=PARENT["x"])
    c = literal(x=PARENT["x"])
    START >> [a, b, c] >> END
"""


def test_class5_b_output_types_are_inferred_only_from_literal_dicts(tmp_path: Path) -> None:
    """An output's type is read from the dict literals only when every returned (or
    yielded) value is one: a spread or a ``yield from`` may bring the key with any type."""
    from compiler.frontend.types import output_types

    path = write_project(tmp_path, {"graph.py": SPREADS})
    nodes = engine_graph(path).ir.nodes
    assert output_types(nodes["mixed"].op) == {"r": "Any"}
    assert output_types(nodes["delegating"].op) == {"d": "Any"}
    assert output_types(nodes["literal"].op) == {"l": "int"}
    for level in LEVELS:  # and the compiled module still types, and agrees
        out = tmp_path / f"out_O{level}.py"
        out.write_text(compile_file(path, opt_level=level).source, encoding="utf-8")
        done = mypy_strict(str(out), tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        module = compiled(path, level, tmp_path)
        for inputs in ({"x": 0}, {"x": 2}):
            assert_equivalent(engine_graph(path), module, inputs)
