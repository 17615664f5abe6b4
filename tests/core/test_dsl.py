"""SPEC §1: defining a graph — ops, nodes, names, references, ordering, results."""

from __future__ import annotations

from typing import Any

import pytest

from operonx.core import END, PARENT, START, Engine, GraphError, GraphOp, OpError, op
from tests.core.seed_ops import double, each_item


@op
def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


def test_op_called_outside_a_graph_runs_the_function() -> None:
    assert double(value=4) == {"result": 8}
    assert list(each_item(items=[1, 2])) == [{"value": 1}, {"value": 2}]


async def test_async_and_async_generator_ops_are_accepted() -> None:
    @op
    async def fetch(x: int) -> dict[str, int]:
        return {"y": x + 1}

    @op
    async def agen(n: int) -> Any:
        for i in range(n):
            yield {"i": i}

    with GraphOp(name="g") as g:
        a = agen(n=PARENT["n"])
        f = fetch(x=a["i"])
        START >> a >> f >> END
    assert await Engine(g).run({"n": 3}) == {"y": [1, 2, 3]}
    assert await fetch(x=1) == {"y": 2}


def test_outputs_are_read_from_dict_literals() -> None:
    @op
    def many(x: int) -> dict[str, int]:
        if x:
            return {"a": 1, "b": 2}
        return {"c": 3}

    assert many.definition.outputs == ("a", "b", "c")


def test_dynamic_outputs_need_declaring() -> None:
    @op
    def dynamic(x: int) -> dict[str, int]:
        return dict(zip(["k"], [x], strict=True))

    with pytest.raises(GraphError, match=r"(?s)dynamically.*outputs=\["), GraphOp(name="g"):
        d = dynamic(x=1)
        s = double(value=d["k"])
        START >> d >> s >> END

    declared = op(outputs=["k"])(dynamic.fn)
    with GraphOp(name="g2") as g2:
        d = declared(x=5)
        s = double(value=d["k"])
        START >> d >> s >> END
    assert Engine(g2).run_sync() == {"result": 10}


def test_node_names_default_to_function_name_and_deduplicate() -> None:
    with GraphOp(name="g") as g:
        a = double(value=1)
        b = double(value=2)
        c = double(value=3)
        d = double(value=4, name="custom")
        START >> [a, b, c, d]
    assert [a.name, b.name, c.name, d.name] == ["double", "double_2", "double_3", "custom"]
    assert list(g.ir.nodes) == ["double", "double_2", "double_3", "custom"]


def test_explicit_duplicate_name_and_non_identifier_are_errors() -> None:
    with pytest.raises(GraphError, match="already has a node named 'x'"), GraphOp(name="g"):
        double(value=1, name="x")
        double(value=2, name="x")
    with pytest.raises(GraphError, match="not a valid identifier"), GraphOp(name="g"):
        double(value=1, name="not-ok")


def test_positional_argument_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="positional") as info, GraphOp(name="g"):
        double(3)
    assert info.value.file == __file__


def test_reference_hidden_in_a_container_is_a_build_error() -> None:
    @op
    def takes(xs: list[int]) -> dict[str, int]:
        return {"n": len(xs)}

    with pytest.raises(GraphError, match="hides the reference"), GraphOp(name="g"):
        gen = each_item(items=[1])
        takes(xs=[gen["value"], 1])
    with pytest.raises(GraphError, match="hides the reference"), GraphOp(name="g"):
        takes(xs={"k": PARENT["x"]})


def test_unknown_parameter_gets_did_you_mean() -> None:
    with pytest.raises(GraphError) as info, GraphOp(name="g"):
        double(valeu=1)
    assert "did you mean 'value'" in str(info.value)


def test_missing_argument_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="missing argument"), GraphOp(name="g"):
        add(a=1)


def test_misspelled_output_key_gets_did_you_mean_with_file_and_line() -> None:
    with pytest.raises(GraphError) as info, GraphOp(name="g"):
        gen = each_item(items=PARENT["numbers"])
        step = double(value=gen["valeu"]); line = _line()  # noqa: E702
        START >> gen >> step >> END
    err = info.value
    assert err.file == __file__ and err.line == line
    assert "did you mean 'value'" in str(err)


def _line() -> int:
    import sys

    return sys._getframe(1).f_lineno


def test_read_without_ordering_edge_is_a_build_error() -> None:
    with pytest.raises(GraphError) as info, GraphOp(name="g"):
        gen = each_item(items=PARENT["numbers"])
        step = double(value=gen["value"])
        START >> gen
        step >> END
    assert "nothing orders 'each_item' before 'double'" in str(info.value)
    assert "each_item >> double" in str(info.value)


def test_ordering_through_intermediate_node_is_enough() -> None:
    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        mid = double(value=gen["value"])
        last = add(a=gen["value"], b=mid["result"])
        START >> gen >> mid >> last >> END
    assert Engine(g).run_sync({"numbers": [1, 2]}) == {"sum": [3, 6]}


def test_cycle_is_a_build_error_naming_it() -> None:
    with pytest.raises(GraphError, match=r"cycle in graph 'g': .*double.*>>"):
        with GraphOp(name="g"):
            a = double(value=1)
            b = double(value=2)
            a >> b >> a


def test_list_fan_out_and_fan_in() -> None:
    order: list[str] = []

    @op
    def mark(tag: str) -> dict[str, str]:
        order.append(tag)
        return {"tag": tag}

    with GraphOp(name="g") as g:
        a = mark(tag="a")
        b = mark(tag="b")
        c = mark(tag="c")
        d = mark(tag="d")
        START >> a >> [b, c] >> d >> END
    assert Engine(g).run_sync() == {"tag": "d"}
    assert order[0] == "a" and sorted(order[1:3]) == ["b", "c"] and order[3] == "d"
    assert set(g.ir.edges) == {("START", "mark"), ("mark", "mark_2"), ("mark", "mark_3"),
                               ("mark_2", "mark_4"), ("mark_3", "mark_4"), ("mark_4", "END")}


def test_ops_wired_to_end_make_up_the_result() -> None:
    with GraphOp(name="g") as g:
        a = add(a=PARENT["x"], b=1)
        b = double(value=a["sum"])
        START >> a >> b >> END
    assert Engine(g).run_sync({"x": 1}) == {"result": 4}


def test_result_key_from_two_end_ops_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="produced by both"), GraphOp(name="g"):
        a = double(value=1)
        b = double(value=2)
        START >> [a, b] >> END


def test_non_dict_return_is_an_op_error_naming_the_op() -> None:
    @op(outputs=["x"])
    def bad(v: int) -> Any:
        return v

    with GraphOp(name="g") as g:
        b = bad(v=1)
        START >> b >> END
    with pytest.raises(OpError, match=r"'bad' .*returned int, not a dict") as info:
        Engine(g).run_sync()
    assert info.value.op_name == "bad"


def test_returning_none_means_no_outputs() -> None:
    seen: list[int] = []

    @op
    def sink(v: int) -> None:
        seen.append(v)

    with GraphOp(name="g") as g:
        gen = each_item(items=PARENT["numbers"])
        s = sink(v=gen["value"])
        START >> gen >> s >> END
    assert Engine(g).run_sync({"numbers": [1, 2]}) == {}
    assert seen == [1, 2]


def test_unwired_node_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="not wired"), GraphOp(name="g"):
        double(value=1)


def test_passing_a_node_instead_of_an_output_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="is the node 'each_item' itself"), GraphOp(name="g"):
        gen = each_item(items=[1])
        double(value=gen)


def test_collect_of_a_non_stream_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="not a stream"), GraphOp(name="g"):
        a = double(value=1)
        b = double(value=a["result"].collect())
        START >> a >> b >> END


def test_two_independent_streams_cannot_be_paired() -> None:
    with pytest.raises(GraphError, match="two independent streams"), GraphOp(name="g"):
        g1 = each_item(items=[1])
        g2 = each_item(items=[2])
        s = add(a=g1["value"], b=g2["value"])
        START >> [g1, g2] >> s >> END


def test_user_exception_in_with_block_propagates_untouched() -> None:
    with pytest.raises(ZeroDivisionError), GraphOp(name="g"):
        1 / 0  # noqa: B018


def test_decorator_name_sets_the_default_node_name() -> None:
    @op(name="twice")
    def double_it(value: int) -> dict[str, int]:
        return {"result": value * 2}

    with GraphOp(name="g") as g:
        a = double_it(value=1)
        b = double_it(value=a["result"])
        START >> a >> b >> END
    assert list(g.ir.nodes) == ["twice", "twice_2"]
    assert Engine(g).run_sync() == {"result": 4}


def test_importing_the_dsl_is_cheap() -> None:
    """A graph file imports operonx.core; that must not load the compiler or the interpreter."""
    import subprocess
    import sys

    code = ("import sys, operonx.core; "
            "print(sorted(m for m in ('compiler', 'libcst', 'jinja2', 'uvloop', "
            "'operonx.engine.engine') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
