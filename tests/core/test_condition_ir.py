"""The condition IR: the Python text ``to_python`` prints means what the Engine evaluates.

The compiler will write conditions into generated modules with ``to_python``;
the Engine evaluates the same trees with ``compile_condition``. Here random
trees are printed, the text is compiled as Python (the test plays the part of
the generated module) and both must agree on random values.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from operonx.ir.condition import (
    AllOf,
    AnyOf,
    Compare,
    Condition,
    IsIn,
    IsNone,
    Not,
    Truth,
    compile_condition,
    describe,
    refs,
    to_python,
)
from operonx.ir.model import Const, InputRef, OutputRef

EXAMPLES = int(os.environ.get("OPERONX_PROPERTY_EXAMPLES", "25")) * 4
REFS = [OutputRef("a", "x"), OutputRef("b", "it's"), InputRef("p")]
NAMES = {REFS[0]: "v_a_x", REFS[1]: "v_b", REFS[2]: "inputs_p"}

values = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["", "a", "it's", '"q"']))
operands = st.one_of(st.sampled_from(REFS), values.map(Const))
leaves_ = st.one_of(
    st.builds(Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
              st.sampled_from(REFS), operands),
    st.builds(IsIn, st.sampled_from(REFS), st.lists(values, max_size=3).map(tuple)),
    st.builds(IsNone, st.sampled_from(REFS)),
    st.builds(Truth, st.sampled_from(REFS)),
)
conditions: st.SearchStrategy[Condition] = st.recursive(leaves_, lambda inner: st.one_of(
    st.lists(inner, min_size=2, max_size=3).map(lambda ps: AllOf(tuple(ps))),
    st.lists(inner, min_size=2, max_size=3).map(lambda ps: AnyOf(tuple(ps))),
    inner.map(Not),
), max_leaves=6)


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except TypeError:  # e.g. None < 1: both sides must fail the same way
        return TypeError


@settings(max_examples=EXAMPLES, deadline=None)
@given(cond=conditions, env=st.tuples(values, values, values))
def test_printed_text_means_what_the_engine_evaluates(cond: Condition,
                                                      env: tuple[Any, Any, Any]) -> None:
    bound = dict(zip(REFS, env, strict=True))
    text = to_python(cond, lambda r: NAMES[r])
    code = compile(text, "<condition>", "eval")  # the text is a valid expression
    namespace = {NAMES[r]: v for r, v in bound.items()}
    printed = _outcome(lambda: bool(eval(code, {"__builtins__": {}}, namespace)))
    evaluate = compile_condition(cond, lambda r: lambda ctx: ctx[r])
    assert printed == _outcome(lambda: evaluate(bound))


def test_describe_spells_refs_as_the_user_wrote_them() -> None:
    cond = AnyOf((AllOf((Compare(">", REFS[0], Const(1)), IsNone(REFS[2]))),
                  Not(IsIn(REFS[1], ("a", "b")))))
    assert describe(cond) == ("(a['x'] > 1 and PARENT['p'] is None) or "
                              "(b[\"it's\"] not in ('a', 'b'))")
    assert describe(Not(IsNone(REFS[0]))) == "a['x'] is not None"
    assert list(refs(cond)) == [REFS[0], REFS[2], REFS[1]]
