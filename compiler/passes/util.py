"""Walking every scope of a module and rebuilding it with replaced parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from compiler.ir.nodes import ModuleIR, ScopeIR


def map_scopes(module: ModuleIR, fn: Callable[[ScopeIR], ScopeIR]) -> ModuleIR:
    """Apply ``fn`` to every scope, innermost first."""

    def walk(scope: ScopeIR) -> ScopeIR:
        stages = tuple(replace(s, body=walk(s.body)) if s.body is not None else s
                       for s in scope.stages)
        return fn(replace(scope, stages=stages))

    return replace(module, top=walk(module.top))
