"""Lower the graph IR and its execution plan into :mod:`compiler.ir.nodes`.

The plan (``operonx.ir.plan.plan_scope``) is the one the Engine executes:
regions, hoisted dependencies and levels are taken from it unchanged, so the
compiled module cannot disagree with the Engine on ordering.
"""

from __future__ import annotations

import ast
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from compiler.errors import CompileError
from compiler.frontend.types import return_annotation
from compiler.ir.nodes import (
    ArgIR,
    CollectIR,
    LoopIR,
    ModuleIR,
    OpFlavor,
    RegionIR,
    ResultIR,
    ScopeIR,
    StageIR,
)
from operonx.ir.model import (
    Const,
    Graph,
    InputRef,
    Node,
    NodeKind,
    OpKind,
    OutputRef,
    SourceLoc,
    UntilExpr,
    wrap_top_level_loop,
)
from operonx.ir.plan import plan_scope, scope_is_inline

FunctionNames = Mapping[Callable[..., Any], str]


def literal(value: Any, loc: SourceLoc, what: str) -> str:
    """Python source for a constant, refused unless it round-trips exactly."""
    text = repr(value)
    try:
        back = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        back = _Unequal()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        back = _Unequal()
    if type(back) is not type(value) or back != value:
        raise CompileError(f"{what} is {type(value).__name__} {text[:60]}, which cannot be "
                           "written into the compiled module as a literal", loc.file, loc.line,
                           hint="pass it as a run input (PARENT['key']) or build it inside an op")
    return text


class _Unequal:
    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


def _outputs_proven(node: Node, needed: list[str]) -> bool:
    """Whether the op's own source guarantees a dict with every needed key."""
    proven = node.op.proven_outputs if node.op is not None else None
    return proven is not None and set(needed) <= set(proven)


def lower_module(graph: Graph, *, source_path: str, names: FunctionNames) -> ModuleIR:
    if graph.nested:
        raise CompileError(f"{graph.name!r} is a sub-graph of another graph; compile the "
                           "top-level graph", graph.loc.file, graph.loc.line)
    transparent = graph.kind == "loop"
    scope_graph = wrap_top_level_loop(graph) if transparent else graph
    top = _lower_scope(scope_graph, "", _symbol(graph.name), names, transparent)
    optional: list[tuple[str, str]] = []
    for key, source in graph.declared_inputs.items():
        if isinstance(source, Const):
            optional.append((key, literal(source.value, graph.loc, f"input {key!r}")))
    for key, value in graph.state.items():
        optional.append((key, literal(value, graph.loc, f"loop state {key!r}")))
    routes = tuple((k, s.key) for k, s in graph.declared_inputs.items()
                   if isinstance(s, InputRef))
    return ModuleIR(graph_name=graph.name, source_path=source_path, top=top,
                    required_inputs=graph.required_inputs,
                    optional_inputs=tuple(dict(optional).items()), input_routes=routes)


def _symbol(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def _flavor(node: Node) -> OpFlavor:
    if node.kind is NodeKind.GRAPH:
        return "graph"
    if node.kind is NodeKind.LOOP:
        return "loop"
    assert node.op is not None
    if node.op.bound == "cpu":
        return "cpu"
    return {OpKind.SYNC: "sync", OpKind.ASYNC: "async", OpKind.GEN: "gen",
            OpKind.ASYNCGEN: "asyncgen"}[node.op.kind]  # type: ignore[return-value]


def _lower_scope(graph: Graph, qual: str, symbol: str, names: FunctionNames,
                 transparent: bool = False) -> ScopeIR:
    plan = plan_scope(graph)
    collects: dict[tuple[str, str, bool], CollectIR] = {}
    needed: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for node in graph.nodes.values():
        for source in node.args.values():
            if not isinstance(source, OutputRef):
                continue
            producer = graph.nodes[source.node]
            needed[source.node].append(source.key)
            if source.collect is None:
                continue
            owner = producer.out_context[:-1]
            if node.context != owner:
                raise CompileError(
                    f"{node.name!r} reads {source.node}[{source.key!r}].collect() from inside "
                    f"a stream of that collection ({'/'.join(node.context)}); the compiler "
                    "only supports collecting into the region that owns the stream",
                    node.loc.file, node.loc.line)
            ordered = source.collect == "ordered"
            collects.setdefault((source.node, source.key, ordered),
                                CollectIR(source.node, source.key, ordered, owner))
    if graph.kind == "graph":
        specs = [*graph.results.items(),
                 *((k, s) for k, s in graph.writebacks.items() if k not in graph.results)]
    else:
        specs = list(graph.writebacks.items())
    results = tuple(ResultIR(k, s.node, s.key, s.depth) for k, s in specs)
    for spec in [*graph.results.values(), *graph.writebacks.values()]:
        needed[spec.node].append(spec.key)

    stages: list[StageIR] = []
    for name in plan.order:
        node = graph.nodes[name]
        region = plan.regions[node.context]
        args = tuple(_arg(k, s, node) for k, s in node.args.items())
        body: ScopeIR | None = None
        function: str | None = None
        returns_none = False
        if node.op is not None:
            function = names[node.op.fn]
            returns_none = return_annotation(node.op) == "None"
        child_qual = qual if transparent else f"{qual}{name}."
        if node.body is not None:
            body = _lower_scope(node.body, child_qual, f"{symbol}__{_symbol(name)}", names)
            if node.kind is NodeKind.LOOP:
                until = node.body.until
                assert until is not None
                # A callable until was copied by the frontend; the loop calls it by name.
                until_ir = until if isinstance(until, UntilExpr) else names[until]
                state = tuple((k, literal(v, node.loc, f"loop state {k!r}"))
                              for k, v in node.body.state.items())
                body = _with_loop(body, LoopIR(state, until_ir, node.body.max_iterations))
        stages.append(StageIR(
            name=name, qualname=f"{qual}{name}", kind=_stage_kind(node), flavor=_flavor(node),
            function=function, returns_none=returns_none, args=args,
            needed=tuple(dict.fromkeys(needed[name])), deps=tuple(region.deps[name]),
            context=node.context, max_concurrent=node.max_concurrent,
            fuse=node.op.fuse if node.op is not None else False, loc=node.loc, body=body,
            positional=_positional(node), outputs_proven=_outputs_proven(node, needed[name]),
            resources=node.op.resources if node.op is not None else ()))
    regions = tuple(
        RegionIR(generator=r.generator, context=ctx,
                 levels=tuple(tuple(level) for level in r.levels),
                 inline=r.inline, window=r.window)
        for ctx, r in sorted(plan.regions.items(), key=lambda item: (len(item[0]), item[0])))
    known = {r.context for r in regions}
    empty = tuple(RegionIR(generator=st.name, context=(*st.context, st.name), levels=(),
                           inline=True, window=1)
                  for st in stages if st.kind == "gen" and (*st.context, st.name) not in known)
    regions = tuple(sorted((*regions, *empty), key=lambda r: (len(r.context), r.context)))
    return ScopeIR(name=graph.name, kind=graph.kind, qual=qual, symbol=symbol, loc=graph.loc,
                   stages=tuple(stages), regions=regions, results=results,
                   collects=tuple(collects.values()), reads=graph.reads,
                   inline=scope_is_inline(graph))


def _positional(node: Node) -> tuple[str, ...]:
    """The leading parameters given by this node, which a call may pass by position."""
    if node.op is None:
        return ()
    try:
        params = inspect.signature(node.op.fn).parameters.values()
    except (TypeError, ValueError):
        return ()
    out: list[str] = []
    for p in params:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or p.name not in node.args:
            break
        out.append(p.name)
    return tuple(out)


def _with_loop(body: ScopeIR, loop: LoopIR) -> ScopeIR:
    from dataclasses import replace

    return replace(body, loop=loop)


def _stage_kind(node: Node) -> Any:
    if node.kind is NodeKind.GRAPH:
        return "graph"
    if node.kind is NodeKind.LOOP:
        return "loop"
    return "gen" if node.is_generator else "call"


def _arg(name: str, source: Any, node: Node) -> ArgIR:
    if isinstance(source, Const):
        return ArgIR(name, "const", literal=literal(source.value, node.loc,
                                                    f"argument {name!r} of {node.name!r}"))
    if isinstance(source, InputRef):
        return ArgIR(name, "input", key=source.key)
    assert isinstance(source, OutputRef)
    if source.collect is None:
        return ArgIR(name, "value", key=source.key, node=source.node)
    return ArgIR(name, "collect", key=source.key, node=source.node,
                 ordered=source.collect == "ordered")
