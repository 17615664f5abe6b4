"""Invariants of the lowered IR, checked after every pass (tests run it; so does compile)."""

from __future__ import annotations

from compiler.ir.nodes import ModuleIR, ScopeIR


class VerifyError(AssertionError):
    """The IR broke an invariant: a compiler bug, never a user error."""


def verify(module: ModuleIR) -> None:
    _scope(module.top)


def _scope(scope: ScopeIR) -> None:
    names = {s.name for s in scope.stages}  # a set: membership is tested per stage and arg
    if len(names) != len(scope.stages):
        raise VerifyError(f"scope {scope.name}: duplicate stage names")
    placed: dict[str, tuple[tuple[str, ...], int]] = {}
    for region in scope.regions:
        if region.generator is not None and region.generator not in names:
            raise VerifyError(f"region of unknown generator {region.generator}")
        for i, level in enumerate(region.levels):
            for name in level:
                if name in placed:
                    raise VerifyError(f"{name} placed twice")
                placed[name] = (region.context, i)
        chained = [n for chain in region.chains for n in chain]
        if len(set(chained)) != len(chained):
            raise VerifyError(f"region {region.context}: a stage is in two fused chains")
        for chain in region.chains:
            if len(chain) < 2:
                raise VerifyError(f"fused chain {chain} is shorter than 2")
            for name in chain:
                if placed.get(name, ((), -1))[0] != region.context:
                    raise VerifyError(f"fused {name} is not in region {region.context}")
    if set(placed) != set(names):
        raise VerifyError(f"scope {scope.name}: stages not placed in exactly one level")
    for stage in scope.stages:
        ctx, depth = placed[stage.name]
        if ctx != stage.context:
            raise VerifyError(f"{stage.name} placed in region {ctx}, context {stage.context}")
        for dep in stage.deps:
            if dep not in placed or placed[dep][0] != ctx or placed[dep][1] >= depth:
                raise VerifyError(f"{stage.name} depends on {dep} which does not run before it")
        for arg in stage.args:
            if arg.kind in ("value", "collect") and arg.node not in names:
                raise VerifyError(f"{stage.name}.{arg.name} reads unknown stage {arg.node}")
        if stage.kind == "loop" and (stage.body is None or stage.body.loop is None):
            raise VerifyError(f"loop {stage.name} without loop body")
        if stage.body is not None:
            _scope(stage.body)
    for result in scope.results:
        if result.node not in names:
            raise VerifyError(f"result {result.key} from unknown stage {result.node}")
