"""Lower the graph IR and its execution plan into :mod:`compiler.ir.nodes`.

The plan (``operonx.ir.plan.plan_scope``) is the one the Engine executes:
regions, hoisted dependencies and levels are taken from it unchanged, so the
compiled module cannot disagree with the Engine on ordering.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from compiler.codegen.pyast import lit
from compiler.errors import CompileError
from compiler.frontend.extract import Extraction, module_level_names
from compiler.frontend.types import return_annotation
from compiler.ir import branches as branch_ir
from compiler.ir import policies as policy_ir
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
from compiler.typecheck.model import GraphTypes
from operonx.ir.model import (
    Coalesce,
    Const,
    Graph,
    InputRef,
    Node,
    NodeKind,
    OpKind,
    OutputRef,
    SourceLoc,
    UntilExpr,
    output_refs,
    wrap_top_level_loop,
)
from operonx.ir.plan import plan_scope, scope_is_bounded, scope_is_inline

FunctionNames = Mapping[Callable[..., Any], str]


def literal(value: Any, loc: SourceLoc, what: str) -> object:
    """``value``, refused unless generated code can spell it exactly (see ``pyast.lit``)."""
    try:
        lit(value)
    except (TypeError, RecursionError):
        text = repr(value) if not isinstance(value, (list, dict, set)) else type(value).__name__
        raise CompileError(f"{what} is {type(value).__name__} {text[:60]}, which cannot be "
                           "written into the compiled module as a literal", loc.file, loc.line,
                           hint="pass it as a run input (PARENT['key']) or build it inside an op"
                           ) from None
    return value


def _outputs_proven(node: Node, needed: list[str]) -> bool:
    """Whether the op's own source guarantees a dict with every needed key."""
    proven = node.op.proven_outputs if node.op is not None else None
    return proven is not None and set(needed) <= set(proven)


def lower_module(graph: Graph, *, source_path: str, extraction: Extraction,
                 types: GraphTypes) -> ModuleIR:
    if graph.nested:
        raise CompileError(f"{graph.name!r} is a sub-graph of another graph; compile the "
                           "top-level graph", graph.loc.file, graph.loc.line)
    transparent = graph.kind == "loop"
    scope_graph = wrap_top_level_loop(graph) if transparent else graph
    top = _Lowering(extraction, types).scope(scope_graph, "", _symbol(graph.name), transparent)
    optional: list[tuple[str, object]] = []
    for key, source in graph.declared_inputs.items():
        if isinstance(source, Const):
            optional.append((key, literal(source.value, graph.loc, f"input {key!r}")))
    for key, value in graph.state.items():
        optional.append((key, literal(value, graph.loc, f"loop state {key!r}")))
    routes = tuple((k, s.key) for k, s in graph.declared_inputs.items()
                   if isinstance(s, InputRef))
    results = {r.key: r for r in top.results}
    return ModuleIR(graph_name=graph.name, source_path=source_path, top=top,
                    required_inputs=graph.required_inputs,
                    optional_inputs=tuple(dict(optional).items()), input_routes=routes,
                    input_fields=tuple((k, f.text, f.required) for k, f in types.inputs.items()),
                    # a key a branch may leave out is not required, whatever its type
                    result_fields=tuple(
                        (k, f.text, f.required and results[k].presence is None)
                        for k, f in types.result.items() if k in results),
                    type_imports=types.imports)


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


class _Lowering:
    """Lowers the scopes of one module (what they share: the copied code's names)."""

    def __init__(self, extraction: Extraction, types: GraphTypes) -> None:
        self.extraction = extraction
        self.types = types
        self.names: FunctionNames = extraction.function_names
        self.copied = frozenset(module_level_names(extraction))

    def scope(self, graph: Graph, qual: str, symbol: str,
              transparent: bool = False) -> ScopeIR:
        plan = plan_scope(graph)
        collects: dict[tuple[str, str, bool], CollectIR] = {}
        needed: dict[str, list[str]] = {n: [] for n in graph.nodes}
        for node in graph.nodes.values():
            for source in (r for arg in node.args.values() for r in output_refs(arg)):
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
        for read_from, keys in branch_ir.condition_reads(graph).items():
            needed[read_from] += keys
        if graph.kind == "graph":
            specs = [*graph.results.items(),
                     *((k, s) for k, s in graph.writebacks.items() if k not in graph.results)]
        else:
            specs = list(graph.writebacks.items())
        results = tuple(ResultIR(k, s.node, s.key, s.depth, branch_ir.result_presence(graph, s))
                        for k, s in specs)
        for spec in [*graph.results.values(), *graph.writebacks.values()]:
            needed[spec.node].append(spec.key)

        stages: list[StageIR] = []
        for name in plan.order:
            node = graph.nodes[name]
            region = plan.regions[node.context]
            args = tuple(_arg(k, s, node, graph) for k, s in node.args.items())
            body: ScopeIR | None = None
            function: str | None = None
            returns_none = False
            if node.op is not None:
                function = self.names[node.op.fn]
                returns_none = return_annotation(
                    node.op, self.extraction.renames.get(node.op.fn)) == "None"
            child_qual = qual if transparent else f"{qual}{name}."
            if node.body is not None:
                body = self.scope(node.body, child_qual, f"{symbol}__{_symbol(name)}")
                if node.kind is NodeKind.LOOP:
                    until = node.body.until
                    assert until is not None
                    # A callable until was copied by the frontend; the loop calls it by name.
                    until_ir = until if isinstance(until, UntilExpr) else self.names[until]
                    state = tuple((k, literal(v, node.loc, f"loop state {k!r}"))
                                  for k, v in node.body.state.items())
                    state_types = _known(self.types.scope(node.body).state)
                    body = _with_loop(body, LoopIR(state, until_ir, node.body.max_iterations,
                                                   state_types))
            stages.append(StageIR(
                name=name, qualname=f"{qual}{name}", kind=_stage_kind(node), flavor=_flavor(node),
                function=function, returns_none=returns_none, args=args,
                needed=tuple(dict.fromkeys(needed[name])), deps=tuple(region.deps[name]),
                context=node.context, max_concurrent=node.max_concurrent,
                fuse=node.op.fuse if node.op is not None else False, loc=node.loc, body=body,
                positional=_positional(node), outputs_proven=_outputs_proven(node, needed[name]),
                gate=branch_ir.gate(graph, node),
                policy=policy_ir.policy(node, self.extraction, self.copied),
                output_types=self._output_types(graph, node),
                resources=node.op.resources if node.op is not None else ()))
        # A region that never awaits runs each frame to completion inside its generator's
        # loop, as the Engine does; any other region runs a task per frame (plan's window).
        regions = tuple(
            RegionIR(generator=r.generator, context=ctx,
                     levels=tuple(tuple(level) for level in r.levels),
                     inline=r.inline, window=r.window,
                     strategy="inline" if r.inline or not r.levels else "tasks")
            for ctx, r in sorted(plan.regions.items(), key=lambda item: (len(item[0]), item[0])))
        known = {r.context for r in regions}
        empty = tuple(RegionIR(generator=st.name, context=(*st.context, st.name), levels=(),
                               inline=True, window=1)
                      for st in stages if st.kind == "gen" and (*st.context, st.name) not in known)
        regions = tuple(sorted((*regions, *empty), key=lambda r: (len(r.context), r.context)))
        return ScopeIR(name=graph.name, kind=graph.kind, qual=qual, symbol=symbol, loc=graph.loc,
                       stages=tuple(stages), regions=regions, results=results,
                       collects=tuple(collects.values()), reads=graph.reads,
                       inline=scope_is_inline(graph), bounded=scope_is_bounded(graph),
                       branches=branch_ir.branches(graph, qual),
                       input_types=self._input_types(graph))

    def _output_types(self, graph: Graph, node: Node) -> tuple[tuple[str, str], ...]:
        scope = self.types.scope(graph)
        if node.name in scope.outputs:
            return _known(scope.outputs[node.name])
        if node.kind is NodeKind.LOOP and node.body is not None:  # a top-level loop's wrapper
            return _known(self.types.scope(node.body).state)
        return ()

    def _input_types(self, graph: Graph) -> tuple[tuple[str, str], ...]:
        if graph in self.types.scopes:
            return _known(self.types.scope(graph).inputs)
        # the wrapper of a top-level loop reads the run's inputs
        return _known({k: f.text for k, f in self.types.inputs.items()})


def _known(texts: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The types that say something (``Any`` says nothing: no annotation is written)."""
    return tuple((k, t) for k, t in texts.items() if t != "Any")


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


def _arg(name: str, source: Any, node: Node, graph: Graph) -> ArgIR:
    if isinstance(source, Coalesce):
        options = tuple(_arg(name, o, node, graph) for o in source.options)
        return ArgIR(name, "coalesce", options=options)
    if isinstance(source, Const):
        return ArgIR(name, "const", value=literal(source.value, node.loc,
                                                  f"argument {name!r} of {node.name!r}"))
    if isinstance(source, InputRef):
        return ArgIR(name, "input", key=source.key)
    assert isinstance(source, OutputRef)
    where = branch_ir.presence(graph, node.context, source)
    if source.collect is None:
        return ArgIR(name, "value", key=source.key, node=source.node, presence=where)
    return ArgIR(name, "collect", key=source.key, node=source.node,
                 ordered=source.collect == "ordered", presence=where)
