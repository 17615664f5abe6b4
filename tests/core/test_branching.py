"""SPEC §8: if_/elif_/else_, skipping, coalesce, per-frame routing, build errors."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from operonx.core import (
    END,
    PARENT,
    START,
    Engine,
    Frame,
    GraphError,
    GraphOp,
    OpError,
    coalesce,
    if_,
    op,
    ordered,
)
from operonx.ir.condition import describe
from tests.core.branch_ops import (
    classify,
    labels,
    large,
    measure,
    note,
    numbers,
    passthrough,
    publish,
    slow_large,
    small,
    tag,
    transcribe,
)


def _line() -> int:
    return sys._getframe(1).f_lineno


def spec_route() -> GraphOp:
    """SPEC §8's example, as written there."""
    with GraphOp(name="route") as graph:
        kind = classify(text=PARENT["text"])
        audio = transcribe(text=PARENT["text"])
        plain = passthrough(text=PARENT["text"])
        out = publish(text=coalesce(audio["text"], plain["text"]))
        START >> kind >> if_(kind["kind"] == "audio", audio).else_(plain)
        [audio, plain] >> out >> END
    return graph


async def frames_of(graph: GraphOp, inputs: dict[str, Any], **kw: Any) -> list[Frame]:
    return [f async for f in Engine(graph, **kw).stream(inputs)]


# ------------------------------------------------------------------- exactly one arm


async def test_exactly_the_first_true_arm_runs_and_the_others_are_skipped() -> None:
    graph = spec_route()
    engine = Engine(graph)
    assert await engine.run({"text": "a.wav"}) == {"published": "transcript of a.wav"}
    assert await engine.run({"text": "hello"}) == {"published": "hello"}
    ran = [f.op_name for f in await frames_of(graph, {"text": "a.wav"})]
    assert ran == ["classify", "transcribe", "publish", "END"]


@pytest.mark.parametrize(("n", "expected"), [(1, "small 1"), (50, "medium 50"),
                                             (500, "large 500")])
def test_elif_takes_the_first_condition_that_holds(n: int, expected: str) -> None:
    @op
    def medium(n: int) -> dict[str, str]:
        return {"label": f"medium {n}"}

    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s, md, lg = small(n=m["size"]), medium(n=m["size"]), large(n=m["size"])
        # 1 also satisfies the second condition: only the first that holds is taken.
        START >> m >> if_(m["size"] < 10, s).elif_(m["size"] < 100, md).else_(lg)
        [s, md, lg] >> (t := tag(label=coalesce(s["label"], md["label"], lg["label"]))) >> END
    assert t is not None
    assert Engine(g).run_sync({"n": n}) == {"tagged": f"<{expected}>"}


def test_without_else_nothing_runs_when_no_condition_holds() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s = small(n=m["size"])
        START >> m >> if_(m["size"] < 10, s)
        s >> END
        m >> END
    assert Engine(g).run_sync({"n": 3}) == {"size": 3, "label": "small 3"}
    assert Engine(g).run_sync({"n": 30}) == {"size": 30}  # small's key is absent


def test_a_target_is_a_node_a_list_or_a_subgraph() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        with GraphOp(name="inner", inputs={"n": m["size"]}) as inner:
            big = measure(n=PARENT["n"])
            START >> big >> END
        s = small(n=m["size"])
        t = note(text="many")
        START >> m >> if_(m["size"] < 10, [s, t]).else_(inner)
        [s, t, inner] >> END
    assert Engine(g).run_sync({"n": 3}) == {"label": "small 3", "note": "many"}
    assert Engine(g).run_sync({"n": 30}) == {"size": 30}


def test_branch_on_a_run_input_from_start() -> None:
    with GraphOp(name="g") as g:
        s, lg = small(n=PARENT["n"]), measure(n=PARENT["n"])
        START >> if_(PARENT["mode"] == "small", s).else_(lg)
        [s, lg] >> END
    assert Engine(g).run_sync({"n": 2, "mode": "small"}) == {"label": "small 2"}
    assert Engine(g).run_sync({"n": 2, "mode": "big"}) == {"size": 2}
    assert g.ir.required_inputs == ("n", "mode")  # a key read only by a condition is an input


# ---------------------------------------------------------------------- conditions


@pytest.mark.parametrize(("build", "true_for", "false_for"), [
    (lambda m: m["size"] == 3, 3, 4),
    (lambda m: m["size"] != 3, 4, 3),
    (lambda m: m["size"] < 3, 2, 3),
    (lambda m: m["size"] <= 3, 3, 4),
    (lambda m: m["size"] > 3, 4, 3),
    (lambda m: m["size"] >= 3, 3, 2),
    (lambda m: 3 < m["size"], 4, 3),  # noqa: SIM300 - reflected: the ref on the right
    (lambda m: m["size"].isin([1, 3, 5]), 5, 4),
    (lambda m: m["size"].isin({1, 3}), 3, 4),
    (lambda m: (m["size"] > 1) & (m["size"] < 5), 4, 5),
    (lambda m: (m["size"] < 1) | (m["size"] > 5), 6, 3),
    (lambda m: ~(m["size"] == 3), 4, 3),
    (lambda m: m["size"], 1, 0),  # a bare ref: its truth value
    (lambda m: ~m["size"], 0, 1),
    (lambda m: m["size"] == PARENT["target"], 7, 8),  # ref against ref
])
def test_condition_operators(build: Any, true_for: int, false_for: int) -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        yes = note(text="yes")
        START >> m >> if_(build(m), yes)
        yes >> END
    engine = Engine(g)
    inputs = {"target": 7} if "target" in g.ir.required_inputs else {}
    assert engine.run_sync({"n": true_for, **inputs}) == {"note": "yes"}
    assert engine.run_sync({"n": false_for, **inputs}) == {}


def test_is_none_tests_for_none() -> None:
    @op
    def maybe(n: int) -> dict[str, int | None]:
        return {"value": n if n else None}

    with GraphOp(name="g") as g:
        m = maybe(n=PARENT["n"])
        missing = note(text="none")
        START >> m >> if_(m["value"].is_none(), missing)
        missing >> END
    assert Engine(g).run_sync({"n": 0}) == {"note": "none"}
    assert Engine(g).run_sync({"n": 1}) == {}


def test_conditions_are_data_printed_never_evaluated_as_code() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        cond = (m["size"] == "__import__('os').system('exit 3')") | ~PARENT["flag"].isin([1])
        yes = note(text="yes")
        START >> m >> if_(cond, yes)
        yes >> END
    text = describe(g.ir.branches[0].arms[0].condition)  # type: ignore[arg-type]
    assert text == ("measure['size'] == \"__import__('os').system('exit 3')\" or "
                    "(PARENT['flag'] not in (1,))")
    assert Engine(g).run_sync({"n": 1, "flag": 1}) == {}


def test_a_condition_has_no_truth_value_while_building() -> None:
    with GraphOp(name="g"):
        m = measure(n=PARENT["n"])
        with pytest.raises(TypeError, match="no truth value"):
            if m["size"] > 3:
                pass
        with pytest.raises(TypeError, match="Chained comparisons"):
            assert 0 < m["size"] < 10
        START >> m >> END


def test_refs_keep_identity_hash_and_membership() -> None:
    with GraphOp(name="g"):
        m = measure(n=PARENT["n"])
        a, b = m["size"], m["size"]
        p = PARENT["n"]
        assert hash(a) == hash(a) and hash(a) != hash(b)
        assert {a: 1, b: 2}[a] == 1 and len({a, b, a}) == 2
        assert a in [b, a] and b not in [a] and [a, b].index(b) == 1
        assert a not in [1, "size", None] and p in [p] and PARENT["n"] not in [p]
        assert bool(a == a) and not bool(a == b) and bool(a != b) and not bool(a != a)
        START >> m >> END


def test_mistakes_in_conditions_are_located_build_errors() -> None:
    with GraphOp(name="g"):
        m = measure(n=PARENT["n"])
        yes = note(text="yes")
        with pytest.raises(GraphError, match="got the bool") as info:
            line = _line() + 1
            if_(m["size"] in [1, 2], yes)
        assert (info.value.file, info.value.line) == (__file__, line)
        assert ".isin" in str(info.value)
        with pytest.raises(GraphError, match="parenthesise"):
            _ = m["size"] == 1 & m["size"]  # & binds tighter than ==
        with pytest.raises(GraphError, match="per frame, not a collected stream"):
            _ = m["size"].collect() == 1
        with pytest.raises(GraphError, match="list of literals"):
            m["size"].isin("abc")
        with pytest.raises(GraphError, match="holds a reference"):
            _ = m["size"] == [PARENT["n"]]
        with pytest.raises(GraphError, match="conditions route with if_"):
            note(text=m["size"] == 1)
        START >> m >> yes >> END


# -------------------------------------------------------------- skipping, coalesce


async def test_a_skipped_node_emits_no_frame_and_is_no_error() -> None:
    frames = await frames_of(spec_route(), {"text": "hello"}, on_error="collect")
    assert [f.op_name for f in frames] == ["classify", "passthrough", "publish", "END"]
    assert frames[-1].outputs == {"published": "hello", "$errors": []}


def test_what_needs_a_skipped_node_is_skipped_transitively() -> None:
    ran: list[str] = []

    @op
    def after(label: str) -> dict[str, str]:
        ran.append(label)
        return {"after": label}

    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s = small(n=m["size"])
        t = tag(label=s["label"])  # reads the skipped node
        a = after(label=t["tagged"])  # and what reads that
        START >> m >> if_(m["size"] < 10, s)
        s >> t >> a >> END
        m >> END
    assert Engine(g).run_sync({"n": 50}) == {"size": 50}
    assert ran == []


def test_coalesce_reads_the_first_option_whose_producer_ran() -> None:
    graph = spec_route()
    assert Engine(graph).run_sync({"text": "x.wav"}) == {"published": "transcript of x.wav"}
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s, lg = small(n=m["size"]), large(n=m["size"])
        START >> m >> if_(m["size"] < 10, s)
        m >> lg  # always runs: coalesce prefers s when it ran
        [s, lg] >> (t := tag(label=coalesce(s["label"], lg["label"]))) >> END
    assert t is not None
    assert Engine(g).run_sync({"n": 1}) == {"tagged": "<small 1>"}
    assert Engine(g).run_sync({"n": 20}) == {"tagged": "<large 20>"}


def test_coalesce_with_every_option_skipped_skips_the_reader() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s, lg = small(n=m["size"]), large(n=m["size"])
        START >> m >> if_(m["size"] < 10, s).elif_(m["size"] > 100, lg)
        [m, s, lg] >> (t := tag(label=coalesce(s["label"], lg["label"])))
        t >> END
        m >> END
    assert t is not None
    assert Engine(g).run_sync({"n": 50}) == {"size": 50}  # m >> t ran, but no option did
    assert Engine(g).run_sync({"n": 500}) == {"size": 500, "tagged": "<large 500>"}


def test_coalesce_default_is_a_parent_ref_or_literal_given_last() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s = small(n=m["size"])
        START >> m >> if_(m["size"] < 10, s)
        [m, s] >> (t := tag(label=coalesce(s["label"], PARENT["fallback"])))
        [m, s] >> (u := note(text=coalesce(s["label"], "none")))
        [t, u] >> END
    assert Engine(g).run_sync({"n": 50, "fallback": "fb"}) == {"tagged": "<fb>", "note": "none"}
    assert Engine(g).run_sync({"n": 5, "fallback": "fb"}) == {
        "tagged": "<small 5>", "note": "small 5"}


async def test_a_node_after_several_targets_waits_for_those_that_run() -> None:
    events: list[str] = []

    @op
    async def slow_small(n: int) -> dict[str, str]:
        await asyncio.sleep(0.01)
        events.append("small finished")
        return {"label": f"small {n}"}

    @op
    def join(label: str) -> dict[str, str]:
        events.append("join")
        return {"joined": label}

    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s, lg = slow_small(n=m["size"]), large(n=m["size"])
        START >> m >> if_(m["size"] < 10, s).else_(lg)
        [s, lg] >> (j := join(label=coalesce(s["label"], lg["label"]))) >> END
    assert j is not None
    assert await Engine(g).run({"n": 3}) == {"joined": "small 3"}
    assert events == ["small finished", "join"]


def test_a_node_whose_predecessors_were_all_skipped_is_skipped() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s, lg = small(n=m["size"]), large(n=m["size"])
        START >> m >> if_(m["size"] < 10, s).elif_(m["size"] > 100, lg)
        [s, lg] >> (t := note(text="after")) >> END
        m >> END
    assert t is not None
    assert Engine(g).run_sync({"n": 50}) == {"size": 50}
    assert Engine(g).run_sync({"n": 5}) == {"size": 5, "note": "after"}


def test_start_always_runs_so_a_node_after_start_runs() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s = small(n=m["size"])
        START >> m >> if_(m["size"] < 10, s)
        [START, s] >> (t := note(text="always")) >> END
    assert t is not None
    assert Engine(g).run_sync({"n": 50}) == {"note": "always"}


def test_a_result_key_whose_producer_was_skipped_at_depth_zero_is_absent() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s, lg = small(n=m["size"]), note(text="big")
        START >> m >> if_(m["size"] < 10, s).else_(lg)
        [s, lg] >> END
    assert Engine(g).run_sync({"n": 1}) == {"label": "small 1"}
    assert Engine(g).run_sync({"n": 11}) == {"note": "big"}
    assert g.ir.optional_results == {"label", "note"}
    assert spec_route().ir.optional_results == frozenset()  # else_ + coalesce: always there


# ------------------------------------------------------------------------- streams


async def test_per_frame_routing_filters_end_lists_in_yield_order() -> None:
    with GraphOp(name="g") as g:
        gen = numbers(items=PARENT["items"])
        s, lg = small(n=gen["n"]), slow_large(n=gen["n"])
        START >> gen >> if_(gen["n"] < 3, s).else_(lg)
        [s, lg] >> END
    result = await Engine(g).run({"items": [5, 1, 9, 2, 7, 6]})
    assert result == {"label": ["small 1", "small 2"],
                      "big": ["large 5", "large 9", "large 7", "large 6"]}
    assert await Engine(g).run({"items": [1]}) == {"label": ["small 1"], "big": []}


async def test_collect_holds_only_the_frames_where_the_producer_ran() -> None:
    with GraphOp(name="g") as g:
        gen = numbers(items=PARENT["items"])
        s, lg = small(n=gen["n"]), slow_large(n=gen["n"])
        START >> gen >> if_(gen["n"] < 3, s).else_(lg)
        by_completion = labels(values=lg["big"].collect())
        by_yield = tag(label="done")
        in_order = labels(values=ordered(lg["big"]))
        lg >> by_completion
        lg >> in_order
        [by_completion, in_order] >> by_yield
        s >> END
        by_yield >> END
    items = [5, 1, 9, 2, 7, 6, 0]
    result = await Engine(g).run({"items": items})
    assert result["label"] == ["small 1", "small 2", "small 0"]  # END list: yield order
    assert result["tagged"] == "<done>"
    frames = await frames_of(g, {"items": items})
    collected = [f.outputs["all"] for f in frames if f.op_name in ("labels", "labels_2")]
    expected = [f"large {n}" for n in items if n >= 3]
    assert sorted(collected[0]) == sorted(expected)  # completion order
    assert collected[1] == expected  # yield order
    ran = [(f.op_name, f.index) for f in frames]
    assert ("small", (0,)) not in ran and ("small", (1,)) in ran  # skipped frames: no frame
    assert sum(name == "slow_large" for name, _ in ran) == len(expected)


def test_a_target_reading_only_outer_values_runs_per_frame_of_its_branch() -> None:
    with GraphOp(name="g") as g:
        gen = numbers(items=PARENT["items"])
        hit = note(text=PARENT["word"])  # reads nothing from the stream
        START >> gen >> if_(gen["n"] > 2, hit)
        hit >> END
    assert g.ir.nodes["note"].context == ("numbers",)
    assert Engine(g).run_sync({"items": [1, 3, 5, 2], "word": "w"}) == {"note": ["w", "w"]}


def test_branches_in_nested_streams_filter_each_level() -> None:
    @op
    def pairs(n: int) -> Any:
        for i in range(n):
            yield {"i": i}

    @op
    def cell(n: int, i: int) -> dict[str, str]:
        return {"cell": f"{n}.{i}"}

    with GraphOp(name="g") as g:
        outer = numbers(items=PARENT["items"])
        inner = pairs(n=outer["n"])
        c = cell(n=outer["n"], i=inner["i"])
        START >> outer >> if_(outer["n"] != 2, inner)
        inner >> if_(inner["i"] != 1, c)
        c >> END
    assert Engine(g).run_sync({"items": [3, 2, 2, 1]}) == {"cell": ["3.0", "3.2", "1.0"]}


# ------------------------------------------------------------------- build errors


def test_a_condition_on_a_node_that_is_not_an_ancestor_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="'note' is not before the branch") as info:
        with GraphOp(name="g"):
            m = measure(n=PARENT["n"])
            other = note(text="x")
            s = small(n=m["size"])
            START >> other >> END
            START >> m >> if_(other["note"] == "x", s); line = _line()  # noqa: E702
            s >> END
    assert (info.value.file, info.value.line) == (__file__, line)
    assert "did you mean to add `note >> ...`" in str(info.value)


def test_a_target_also_reachable_around_the_branch_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="also reached without it: START >> note >> small") \
            as info:
        with GraphOp(name="g"):
            m = measure(n=PARENT["n"])
            other = note(text="x")
            s = small(n=m["size"])
            START >> other >> s
            START >> m >> if_(m["size"] < 3, s); line = _line()  # noqa: E702
            s >> END
    assert (info.value.file, info.value.line) == (__file__, line)
    with pytest.raises(GraphError, match="both directly"):
        with GraphOp(name="g"):
            m = measure(n=PARENT["n"])
            s = small(n=m["size"])
            START >> m >> s >> END
            m >> if_(m["size"] < 3, s)


def test_coalesce_of_refs_with_different_stream_depths_is_a_build_error() -> None:
    with pytest.raises(GraphError, match="mixes stream depths") as info:
        with GraphOp(name="g"):
            m = measure(n=PARENT["n"])
            gen = numbers(items=PARENT["items"])
            s = small(n=gen["n"])
            START >> [m, gen]
            gen >> s
            t = tag(label=coalesce(s["label"], m["size"])); line = _line()  # noqa: E702
            [m, s] >> t >> END
    assert (info.value.file, info.value.line) == (__file__, line)
    assert "per frame of 'numbers'" in str(info.value) and "once per run" in str(info.value)


def test_other_branch_mistakes_are_located_build_errors() -> None:
    cases = {
        "not placed after anything": lambda m, s, t: if_(m["size"] < 3, s),
        "two arms of one branch": lambda m, s, t: m >> if_(m["size"] < 3, s).else_(s),
        "target of two branches": lambda m, s, t: [m >> if_(m["size"] < 3, s),
                                                   m >> if_(m["size"] > 3, s)],
        "after .else_": lambda m, s, t: m >> if_(m["size"] < 3, s).else_(t).elif_(
            m["size"] > 1, t),
        "already placed": lambda m, s, t: (lambda b: [m >> b, t >> b])(if_(m["size"] < 3, s)),
        "cannot be a branch target": lambda m, s, t: m >> if_(m["size"] < 3, END),
    }
    for message, wire in cases.items():
        with pytest.raises(GraphError, match=message):
            with GraphOp(name="g"):
                m = measure(n=PARENT["n"])
                s, t = small(n=m["size"]), note(text="t")
                START >> m
                wire(m, s, t)
                [s, t] >> END


def test_arms_cannot_be_added_after_the_branch_is_placed() -> None:
    with pytest.raises(GraphError, match="after the branch was placed"):
        with GraphOp(name="g"):
            m = measure(n=PARENT["n"])
            s, t = small(n=m["size"]), note(text="t")
            branch = if_(m["size"] < 3, s)
            START >> m >> branch
            branch.else_(t)


def test_a_branch_on_the_left_of_rshift_stands_for_its_targets() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s, lg = small(n=m["size"]), large(n=m["size"])
        START >> m >> if_(m["size"] < 10, s).else_(lg) >> (
            t := tag(label=coalesce(s["label"], lg["label"]))) >> END
    assert t is not None
    assert ("small", "tag") in g.ir.edges and ("large", "tag") in g.ir.edges
    assert Engine(g).run_sync({"n": 12}) == {"tagged": "<large 12>"}


# --------------------------------------------------- errors, sub-graphs and loops


def test_a_condition_that_raises_is_an_op_error_naming_the_branch() -> None:
    @op
    def maybe(n: int) -> dict[str, int | None]:
        return {"value": n or None}

    with GraphOp(name="g") as g:
        m = maybe(n=PARENT["n"])
        s = note(text="s")
        START >> m >> if_(m["value"] > 3, s)
        s >> END
        m >> END
    with pytest.raises(OpError, match=r"branch 'branch' raised TypeError: .* \(deciding "
                                      r"maybe\['value'\] > 3\)") as info:
        Engine(g).run_sync({"n": 0})
    assert info.value.op_name == "branch" and isinstance(info.value.__cause__, TypeError)
    result = Engine(g, on_error="collect").run_sync({"n": 0})
    assert result["value"] is None and "note" not in result
    assert [(e["op"], e["type"]) for e in result["$errors"]] == [("branch", "TypeError")]


def test_collect_mode_failure_of_a_target_is_reported_and_its_join_skipped() -> None:
    @op(outputs=["text"])
    def broken(text: str) -> dict[str, str]:
        raise ValueError("no transcriber")

    with GraphOp(name="g") as g:
        kind = classify(text=PARENT["text"])
        audio = broken(text=PARENT["text"])
        plain = passthrough(text=PARENT["text"])
        out = publish(text=coalesce(audio["text"], plain["text"]))
        START >> kind >> if_(kind["kind"] == "audio", audio).else_(plain)
        [audio, plain] >> out >> END
    engine = Engine(g, on_error="collect")
    assert engine.run_sync({"text": "a"}) == {"published": "a", "$errors": []}
    failed = engine.run_sync({"text": "a.wav"})
    assert failed["$errors"][0]["op"] == "broken" and "published" not in failed


def test_branches_inside_a_subgraph_leave_skipped_keys_absent_and_readers_skipped() -> None:
    @op
    def either(label: str) -> dict[str, str]:
        return {"either": f"<{label}>"}

    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        with GraphOp(name="inner", inputs={"n": m["size"]}) as inner:
            s, lg = small(n=PARENT["n"]), note(text="big")
            START >> if_(PARENT["n"] < 10, s).else_(lg)
            [s, lg] >> END
        t = tag(label=inner["label"])  # skipped when inner's small was
        u = either(label=coalesce(inner["label"], inner["note"]))
        START >> m >> inner >> [t, u]
        [t, u] >> END
    assert inner.ir.optional_results == {"label", "note"}
    assert Engine(g).run_sync({"n": 3}) == {"tagged": "<small 3>", "either": "<small 3>"}
    assert Engine(g).run_sync({"n": 30}) == {"either": "<big>"}


def test_branch_in_a_loop_body_keeps_state_a_skipped_writeback_would_set() -> None:
    @op
    def step(count: int) -> dict[str, int]:
        return {"count": count + 1}

    @op
    def bump(total: int) -> dict[str, int]:
        return {"total": total + 10}

    with GraphOp.loop(until="count >= 4", count=0, total=0) as loop:
        s = step(count=PARENT["count"])
        b = bump(total=PARENT["total"])
        s["count"] >> PARENT["count"]
        b["total"] >> PARENT["total"]
        START >> s >> if_(s["count"].isin([2, 4]), b)
        [s, b] >> END
    assert Engine(loop).run_sync() == {"count": 4, "total": 20}


def test_a_subgraph_key_skipped_inside_is_left_out_of_end_lists_and_collects() -> None:
    with GraphOp(name="g") as g:
        gen = numbers(items=PARENT["items"])
        with GraphOp(name="inner", inputs={"n": gen["n"]}) as inner:
            s = small(n=PARENT["n"])
            START >> if_(PARENT["n"] < 3, s)
            s >> END
        everything = labels(values=inner["label"].collect(ordered=True))
        START >> gen >> inner >> END
        inner >> everything >> END
    assert Engine(g).run_sync({"items": [1, 5, 2]}) == {
        "label": ["small 1", "small 2"], "all": ["small 1", "small 2"]}
    with GraphOp(name="top") as top:
        with GraphOp(name="inner", inputs={"n": PARENT["n"]}) as once:
            s = small(n=PARENT["n"])
            START >> if_(PARENT["n"] < 3, s)
            s >> END
        START >> once >> END
    assert Engine(top).run_sync({"n": 5}) == {}
    assert top.ir.optional_results == {"label"}


def test_a_skipped_generator_leaves_its_lists_absent_and_coalesce_picks_the_other_arm() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        gen = numbers(items=PARENT["items"])
        s = small(n=gen["n"])
        single = note(text="single")
        either = labels(values=coalesce(s["label"].collect(), single["note"]))
        START >> m >> if_(m["size"] > 0, gen).else_(single)
        gen >> s >> END
        [s, single] >> either >> END
    assert g.ir.optional_results == {"label"}  # `all` is there whichever arm ran
    engine = Engine(g)
    assert engine.run_sync({"n": 1, "items": [1, 2]}) == {
        "label": ["small 1", "small 2"], "all": ["small 1", "small 2"]}
    assert engine.run_sync({"n": 1, "items": []}) == {"label": [], "all": []}  # ran, empty
    assert engine.run_sync({"n": 0, "items": [1, 2]}) == {"all": "single"}  # never started


def test_a_branch_after_several_sources_is_decided_once_they_have_run() -> None:
    with GraphOp(name="g") as g:
        a, b = measure(n=PARENT["x"]), measure(n=PARENT["y"], name="other")
        s, lg = small(n=a["size"]), large(n=b["size"])
        START >> [a, b]
        [a, b] >> if_(a["size"] < b["size"], s).else_(lg)
        [s, lg] >> (t := tag(label=coalesce(s["label"], lg["label"]))) >> END
    assert t is not None
    assert set(g.ir.branches[0].sources) == {"measure", "other"}
    assert Engine(g).run_sync({"x": 1, "y": 2}) == {"tagged": "<small 1>"}
    assert Engine(g).run_sync({"x": 3, "y": 2}) == {"tagged": "<large 2>"}


def test_a_branch_whose_sources_were_all_skipped_takes_no_arm_not_even_else() -> None:
    with GraphOp(name="g") as g:
        m = measure(n=PARENT["n"])
        s = small(n=m["size"])
        yes, no = note(text="yes"), tag(label="no")
        START >> m >> if_(m["size"] < 10, s)
        s >> if_(s["label"] == "small 1", yes).else_(no)
        [yes, no] >> END
    assert g.ir.optional_results == {"note", "tagged"}
    assert Engine(g).run_sync({"n": 1}) == {"note": "yes"}
    assert Engine(g).run_sync({"n": 2}) == {"tagged": "<no>"}
    assert Engine(g).run_sync({"n": 20}) == {}
