"""What the Ray target knows how to run, and a located refusal for anything else.

The lowered IR grows as features land (branch conditions, timeouts, retries,
caches ...). A field this back end does not know, set to anything but its
default, means a graph it would run differently from the Engine: it refuses
it (``CompileError`` at the node's line) instead of silently ignoring it.
Teach the target the field, then add it here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from compiler.errors import CompileError
from compiler.ir.nodes import ArgIR, LoopIR, ModuleIR, RegionIR, ScopeIR, StageIR

KNOWN: dict[type[Any], frozenset[str]] = {
    ModuleIR: frozenset({"graph_name", "source_path", "top", "required_inputs",
                         "optional_inputs", "input_routes", "fast_path", "opt_level",
                         "input_fields", "result_fields", "type_imports"}),
    ScopeIR: frozenset({"name", "kind", "qual", "symbol", "loc", "stages", "regions", "results",
                        "collects", "reads", "inline", "bounded", "loop", "input_types"}),
    RegionIR: frozenset({"generator", "context", "levels", "inline", "window", "strategy",
                         "chains"}),
    StageIR: frozenset({"name", "qualname", "kind", "flavor", "function", "returns_none", "args",
                        "needed", "deps", "context", "max_concurrent", "fuse", "loc", "body",
                        "inline_loop", "positional", "outputs_proven", "resources",
                        "output_types"}),
    ArgIR: frozenset({"name", "kind", "value", "key", "node", "ordered"}),
    LoopIR: frozenset({"state", "until", "max_iterations", "state_types"}),
}
ARG_KINDS = frozenset({"const", "input", "value", "collect"})
STAGE_KINDS = frozenset({"call", "gen", "graph", "loop"})
FLAVORS = frozenset({"sync", "async", "cpu", "gen", "asyncgen", "graph", "loop"})


def check_supported(module: ModuleIR) -> None:
    _unknown_fields(module, module.source_path, None)
    _scope(module.top, module.source_path)


def _scope(scope: ScopeIR, path: str) -> None:
    _unknown_fields(scope, path, scope.loc.line)
    for region in scope.regions:
        _unknown_fields(region, path, scope.loc.line)
    if scope.loop is not None:
        _unknown_fields(scope.loop, path, scope.loc.line)
    for stage in scope.stages:
        line = stage.loc.line
        _unknown_fields(stage, path, line, stage.qualname)
        if stage.kind not in STAGE_KINDS or stage.flavor not in FLAVORS:
            _refuse(f"{stage.qualname!r} is a {stage.kind} of flavor {stage.flavor}", path, line)
        for arg in stage.args:
            _unknown_fields(arg, path, line, stage.qualname)
            if arg.kind not in ARG_KINDS:
                _refuse(f"argument {arg.name!r} of {stage.qualname!r} is a {arg.kind} reference",
                        path, line)
        if stage.body is not None:
            _scope(stage.body, path)


def _unknown_fields(value: Any, path: str, line: int | None, what: str | None = None) -> None:
    known = next(KNOWN[cls] for cls in type(value).__mro__ if cls in KNOWN)
    for field in dataclasses.fields(value):
        if field.name in known:
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        if getattr(value, field.name) != default:
            where = f"{what!r} uses" if what else "the graph uses"
            _refuse(f"{where} {field.name.replace('_', ' ')}", path, line)


def _refuse(what: str, path: str, line: int | None) -> None:
    raise CompileError(f"the Ray target cannot compile this yet: {what}", path, line,
                       hint="compile it for the local target (drop --target ray), or run it "
                            "with the Engine")
