"""A hostile graph-program generator for the fuzzer (tests/compiler/test_hostile.py).

It writes whole ``graph.py`` files, because what breaks compilers lives in the
source: names and keys (unicode, NFKC twins, keywords, quotes, backslashes,
braces, jinja delimiters, names of the generated module's own locals and
helpers, very long ones), ``until`` expressions from the whole grammar, op
bodies with fall-through paths, context managers, try/finally, decorators and
registries, and deep nesting of streams, loops and sub-graphs.
"""

from __future__ import annotations

import itertools
import keyword
import unicodedata
from dataclasses import dataclass, field

from hypothesis import strategies as st

# Identifiers a user may well write that the generated module also wants.
IDENTS = ("idx", "span", "rt", "inp", "exc", "result", "out", "state", "scope", "group",
          "level", "window", "frames", "i", "_", "_op_error", "_SKIPPED", "_outputs",
          "_gen_failed", "_Limits", "_Run", "run", "run_sync", "stream", "main", "Frame",
          "Inputs", "Result", "OpError", "ErrorInfo", "asyncio", "time", "json", "sys", "cast",
          "Any", "ﬁx", "fix", "área", "Ωmega", "ｆｕｌｌ", "x" * 64, "match", "case", "type",
          "double", "values", "items", "keys", "copy", "update", "fail", "TRACE", "REG")
# Names the generated programs use themselves: not for their functions.
_RESERVED_IN_PROGRAM = {"asyncio", "contextlib", "functools", "Any", "AsyncIterator",
                        "Iterator", "op", "GraphOp", "PARENT", "START", "END", "TRACE", "REG",
                        "register", "keep", "graph", "fail", "v", "n", "vs", "items", "values",
                        "coalesce", "if_", "prev", "node", "kind", "s", "inner", "t0", "t1",
                        "t2", "FAIL", "KEPT", "CALLS", "first_call_fails", "Retry"}
KEYS = ("{__import__('os').system('touch PWNED')}", "it's", 'say "hi"', "back\\slash",
        "{{ jinja }}", "{% block x %}", "{#", "new\nline", "tab\tkey", "\u2028", "", " ",
        "área m²", "ﬁx", "fix", "$errors_not", "END", "PARENT", "__class__", "%(x)s", "{}",
        "k" * 70, "é" * 3, "\x00nul", "🙂", "None", "True", "import os")


def _identifier() -> st.SearchStrategy[str]:
    made = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,12}\Z").filter(
        lambda s: not keyword.iskeyword(s))
    return st.one_of(st.sampled_from(IDENTS), made)


def _key() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(KEYS), st.text(max_size=12), _identifier())


def canonical(name: str) -> str:
    return unicodedata.normalize("NFKC", name)


# ------------------------------------------------------------------------ until grammar

def _until_expr(state: tuple[str, ...]) -> st.SearchStrategy[str]:
    atoms = st.one_of(st.sampled_from(state), st.integers(-3, 9).map(str),
                      st.lists(st.integers(0, 5), max_size=3).map(repr),
                      st.sampled_from(["True", "False", "None", "'a'", "2.5"]))

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binop = st.tuples(inner, st.sampled_from(["+", "-", "*", "//", "%", "/"]), inner)
        compare = st.tuples(inner, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in",
                                                    "not in", "is", "is not"]), inner)
        return st.one_of(
            binop.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            compare.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, st.integers(0, 3)).map(lambda t: f"({t[0]} ** {t[1]})"),
            inner.map(lambda e: f"(not {e})"), inner.map(lambda e: f"(-{e})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]} and {t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]} or {t[1]})"),
            inner.map(lambda e: f"len({e})"), inner.map(lambda e: f"abs({e})"),
            st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(
                lambda t: f"{t[0]}({t[1]}, {t[2]})"),
            st.lists(inner, min_size=1, max_size=2).map(lambda es: f"[{', '.join(es)}]"),
            st.lists(inner, min_size=1, max_size=2).map(lambda es: f"({', '.join(es)},)"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
            st.tuples(inner, st.integers(-2, 2)).map(lambda t: f"{t[0]}[{t[1]}:]"),
        )

    return st.recursive(atoms, extend, max_leaves=6)


# ----------------------------------------------------------------------------- programs

SHAPES = ("plain", "declared", "suppress", "suppress_none", "tryfinally", "halfreturn",
          "decorated", "registry", "async", "async_suppress", "retry", "cached",
          "async_policy")


@dataclass
class Step:
    kind: str  # map, gen, collect, ordered, loop, sub, branch
    fn: str
    key: str
    node: str | None = None  # name=...
    shape: str = "plain"
    const: int = 1
    width: int = 2  # gen: yields per frame
    until: str = ""
    state: str = "n"
    # branch: the classifier is ``fn``; the arms' targets, the condition of the first arm,
    # whether there is an else arm, and the coalesce default (None: none)
    arms: list[Step] = field(default_factory=list)
    condition: str = "eq"
    has_else: bool = True
    default: int | None = None


@dataclass
class Program:
    graph_name: str
    input_key: str
    source_key: str
    steps: list[Step] = field(default_factory=list)
    fail: int = -1

    def render(self) -> str:
        """The program as a ``graph.py`` file."""
        out = [_HEADER, f"FAIL = {self.fail!r}\n",
               _op("source", "gen", self.source_key, "plain", 0, 0)]
        for step in self.steps:
            out.append(_op(step.fn, step.kind, step.key, step.shape, step.const, step.width))
            for arm in step.arms:
                out.append(_op(arm.fn, "map", arm.key, arm.shape, arm.const, 0))
        out.append(f"\nwith GraphOp(name={self.graph_name!r}) as graph:\n")
        out.append(f"    prev = source(v=0, items=PARENT[{self.input_key!r}])\n"
                   "    START >> prev\n")
        key = self.source_key
        for step in self.steps:
            named = f", name={step.node!r}" if step.node else ""
            ref = f"prev[{key!r}]"
            if step.kind in ("map", "gen"):
                out.append(f"    node = {step.fn}(v={ref}{named})\n")
            elif step.kind in ("collect", "ordered"):
                how = ".collect()" if step.kind == "collect" else ".collect(ordered=True)"
                out.append(f"    node = {step.fn}(vs={ref}{how}{named})\n")
            elif step.kind == "loop":
                loop_name = step.node
                out.append(
                    f"    with GraphOp.loop(until={step.until!r}, name={loop_name!r}, "
                    f"max_iterations=6, inputs={{{step.state!r}: {ref}}}, n=0) as node:\n"
                    f"        s = {step.fn}(v=PARENT[{step.state!r}], n=PARENT['n'])\n"
                    f"        s[{step.key!r}] >> PARENT[{step.state!r}]\n"
                    "        s['n'] >> PARENT['n']\n"
                    "        START >> s >> END\n")
                key = step.state
                out.append("    prev >> node\n    prev = node\n")
                continue
            elif step.kind == "branch":
                out.append(_branch(step, ref))
                key = step.key
                continue
            else:  # sub
                sub_name = step.node
                out.append(
                    f"    with GraphOp(name={sub_name!r}, inputs={{'x': {ref}}}) as node:\n"
                    f"        inner = {step.fn}(v=PARENT['x'])\n"
                    "        START >> inner >> END\n")
            out.append("    prev >> node\n    prev = node\n")
            key = step.key
        out.append("    prev >> END\n")
        return "".join(out)


_HEADER = '''\
import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from operonx.core import END, PARENT, START, GraphOp, Retry, coalesce, if_, op

TRACE: list[int] = []
KEPT: list[str] = []
REG: dict[str, Callable[[int], int]] = {}


def register(fn: Callable[[int], int]) -> Callable[[int], int]:
    REG[fn.__name__] = fn
    return fn


@register
def bump(v: int) -> int:
    return v + 1


REG["twice"] = lambda v: v * 2


def keep(fn: Any) -> Any:  # a decorator that marks, and keeps the function as it is
    KEPT.append(fn.__name__)
    return fn


def fail(v: int) -> None:
    if v == FAIL:
        raise ValueError(f"bad value {v}")


CALLS: dict[int, int] = {}


def first_call_fails(v: int) -> None:  # for retried ops: the first call per value fails
    CALLS[v] = CALLS.get(v, 0) + 1
    if CALLS[v] == 1:
        raise ConnectionError(f"first call for {v}")
'''


CONDITIONS = {  # the first arm's condition over the classifier's outputs ("k": v % 3)
    "eq": 'kind["k"] == 0', "isin": 'kind["k"].isin([0, 2])', "lt": 'kind["k"] < 1',
    "and": '(kind["k"] >= 0) & (kind["k"] < 1)', "or": '(kind["k"] == 0) | (kind["k"] == 2)',
    "not": '~(kind["k"] != 0)', "is_none": 'kind["n"].is_none()',
    "raises": 'kind["n"] < 3',  # None < 3 for odd values: the branch fails
}


def _branch(step: Step, ref: str) -> str:
    """``classify >> if_(c0, a0).elif_(k == 1, a1)[.else_(a2)]``, joined by ``coalesce``."""
    targets = [f"t{i}" for i in range(len(step.arms))]
    code = [f"    kind = {step.fn}(v={ref})\n"]
    for t, arm in zip(targets, step.arms, strict=True):
        code.append(f"    {t} = {arm.fn}(v={ref})\n")
    chain = f"if_({CONDITIONS[step.condition]}, t0)"
    middle = targets[1:-1] if step.has_else else targets[1:]
    for i, t in enumerate(middle, 1):
        chain += f'.elif_(kind["k"] == {i}, {t})'
    if step.has_else:
        chain += f".else_({targets[-1]})"
    options = [f"{t}[{arm.key!r}]" for t, arm in zip(targets, step.arms, strict=True)]
    if step.default is not None:
        options.append(repr(step.default))
    named = f", name={step.node!r}" if step.node else ""
    code.append(f"    prev >> kind >> {chain}\n"
                f"    node = join_{step.fn}(v=coalesce({', '.join(options)}){named})\n"
                f"    [{', '.join(targets)}] >> node\n"
                "    prev = node\n")
    return "".join(code)


def _op(fn: str, kind: str, key: str, shape: str, const: int, width: int) -> str:
    k = repr(key)
    if kind == "branch":  # the classifier, and the op that joins the arms
        return (f"\n\n@op\ndef {fn}(v: int) -> dict[str, Any]:\n"
                f"    fail(v)\n"
                f"    return {{'k': v % 3, 'n': None if v % 2 else v}}\n"
                f"\n\n@op\ndef join_{fn}(v: int) -> dict[str, int]:\n"
                f"    return {{{k}: v}}\n")
    if kind == "gen":
        return (f"\n\n@op\ndef {fn}(v: int, items: list[int] | None = None) -> "
                f"Iterator[dict[str, int]]:\n"
                f"    for j in (items if items is not None else range({width})):\n"
                f"        fail(v * 3 + j)\n"
                f"        yield {{{k}: v * 3 + j}}\n")
    if kind == "collect":  # completion order may differ between runs: an order-free sum
        return (f"\n\n@op\ndef {fn}(vs: list[int]) -> dict[str, int]:\n"
                f"    return {{{k}: sum(vs)}}\n")
    if kind == "ordered":  # yield order: a sum that depends on it
        return (f"\n\n@op\ndef {fn}(vs: list[int]) -> dict[str, int]:\n"
                f"    return {{{k}: sum(i * w for i, w in enumerate(vs, 1))}}\n")
    if kind == "loop":
        return (f"\n\n@op\ndef {fn}(v: int, n: int) -> dict[str, int]:\n"
                f"    fail(v)\n"
                f"    return {{{k}: v + {const}, 'n': n + 1}}\n")
    decorators = "@op\n"
    head = f"def {fn}(v: int) -> dict[str, int]:\n    fail(v)\n"
    body = f"    return {{{k}: v + {const}}}\n"
    if shape == "declared":
        decorators = f"@op(outputs=[{k}])\n"
        head = f"def {fn}(v: int) -> dict[str, int]:\n    fail(v)\n"
        body = f"    out = {{}}\n    out[{k}] = v + {const}\n    return out\n"
    elif shape == "suppress":
        body = (f"    with contextlib.suppress(ZeroDivisionError):\n"
                f"        return {{{k}: (v + {const}) // (v % 3)}}\n"
                f"    return {{{k}: -(v + {const})}}\n")
    elif shape == "suppress_none":
        head = f"def {fn}(v: int) -> dict[str, int] | None:\n    fail(v)\n"
        body = (f"    with contextlib.suppress(ZeroDivisionError):\n"
                f"        return {{{k}: (v + {const}) // (v % 3)}}\n"
                f"    return None\n")
    elif shape == "tryfinally":
        body = (f"    try:\n        return {{{k}: v + {const}}}\n"
                f"    finally:\n        TRACE.append(v)\n")
    elif shape == "halfreturn":
        head = f"def {fn}(v: int) -> dict[str, int] | None:\n    fail(v)\n"
        body = (f"    if v % 2 == 0:\n        return {{{k}: v + {const}}}\n"
                f"    return None\n")
    elif shape == "decorated":
        decorators = "@op\n@keep\n"
    elif shape == "retry":
        decorators = "@op(retry=Retry(attempts=2, on=(ConnectionError,)))\n"
        head = f"def {fn}(v: int) -> dict[str, int]:\n    fail(v)\n    first_call_fails(v)\n"
    elif shape == "cached":
        decorators = "@op(cache=2)\n"
    elif shape == "async_policy":
        decorators = "@op(timeout=30.0, retry=Retry(attempts=2, delay=0.001), cache=True)\n"
        head = (f"async def {fn}(v: int) -> dict[str, int]:\n    await asyncio.sleep(0)\n"
                f"    fail(v)\n    first_call_fails(v)\n")
    elif shape == "registry":
        body = f"    return {{{k}: REG['bump'](v) + REG['twice']({const})}}\n"
    elif shape in ("async", "async_suppress"):
        head = f"async def {fn}(v: int) -> dict[str, int]:\n    await asyncio.sleep(0)\n" \
               f"    fail(v)\n"
        if shape == "async_suppress":
            body = (f"    with contextlib.suppress(ZeroDivisionError):\n"
                    f"        return {{{k}: (v + {const}) // (v % 3)}}\n"
                    f"    return {{{k}: v}}\n")
    return f"\n\n{decorators}{head}{body}"


@st.composite
def programs(draw: st.DrawFn, max_steps: int = 5, max_depth: int = 4,
             well_typed_until: bool = False) -> Program:
    """A random program; ``well_typed_until``: loops stop on ``n >= k`` alone (an ``until`` that
    is a type error is one at run time on both paths, and mypy reports it in the module)."""
    used_fns: set[str] = set()
    used_nodes: set[str] = set()

    def fresh_fn() -> str:
        while True:
            name = draw(_identifier())
            if (canonical(name) not in used_fns and name not in _RESERVED_IN_PROGRAM
                    and not name.startswith(("__", "join_")) and name != "source"
                    and canonical(name) not in used_nodes):
                used_fns.add(canonical(name))
                # its node's default name: Python reads ``def ﬁx`` as ``def fix``
                used_nodes.add(canonical(name))
                return name

    def node_name() -> str | None:
        if not draw(st.booleans()):
            return None
        name = draw(_identifier())
        if name in used_nodes or name in ("START", "END", "PARENT", "source", "prev", "node"):
            return None
        used_nodes.add(name)
        return name

    program = Program(graph_name=draw(_identifier()), input_key=draw(_key()),
                      source_key=draw(_key()), fail=draw(st.sampled_from([-1, -1, -1, 2, 4])))
    depth = 1
    for _ in range(draw(st.integers(1, max_steps))):
        kinds = ["map", "map", "loop", "sub", "branch", "branch"]
        if depth < max_depth:
            kinds.append("gen")
        if depth > 0:
            kinds += ["collect", "ordered"]
        kind = draw(st.sampled_from(kinds))
        fn = fresh_fn()
        step = Step(kind=kind, fn=fn, key=draw(_key()), node=node_name(),
                    shape=draw(st.sampled_from(SHAPES)), const=draw(st.integers(0, 3)),
                    width=draw(st.integers(0, 2)))
        if kind == "branch":
            step.arms = [Step(kind="map", fn=fresh_fn(), key=draw(_key()),
                              shape=draw(st.sampled_from(SHAPES)), const=draw(st.integers(0, 3)))
                         for _ in range(draw(st.integers(2, 3)))]
            step.condition = draw(st.sampled_from(sorted(CONDITIONS)))
            step.has_else = draw(st.booleans())
            step.default = draw(st.one_of(st.none(), st.integers(-9, -1)))
        if step.node is None and kind in ("loop", "sub"):  # a `with` block needs a name
            step.node = next(f"{kind}{n}" for n in itertools.count()
                             if f"{kind}{n}" not in used_nodes)
            used_nodes.add(step.node)
        if kind == "loop":
            state = draw(st.one_of(st.just("v"), _key()))
            state = "v" if state == "n" else state
            step.state = state
            names = ("n", state) if state.isidentifier() and not keyword.iskeyword(state) \
                else ("n",)
            step.until = f"n >= {draw(st.integers(1, 4))}"
            if not well_typed_until:
                step.until += f" or {draw(_until_expr(names))}"
        depth += {"gen": 1, "collect": -1, "ordered": -1}.get(kind, 0)
        program.steps.append(step)
    return program
