"""A stable text form of the lowered IR: what ``operonx explain`` prints and golden tests pin."""

from __future__ import annotations

import os

from compiler.ir.nodes import ModuleIR, RegionIR, ScopeIR, StageIR, literal_text, until_text
from operonx.ir.condition import describe
from operonx.ir.model import SourceLoc


def where(loc: SourceLoc) -> str:
    return f"{os.path.basename(loc.file)}:{loc.line}"


def print_module(module: ModuleIR) -> str:
    lines = [f"module {module.graph_name} -O{module.opt_level}"
             f"{' fast-path' if module.fast_path else ''}"]
    if module.required_inputs:
        lines.append(f"  inputs: {', '.join(module.required_inputs)}")
    for key, default in module.optional_inputs:
        lines.append(f"  input {key} = {literal_text(default)}")
    _scope(module.top, lines, "  ")
    return "\n".join(lines) + "\n"


def _ctx(context: tuple[str, ...]) -> str:
    return "/".join(context) if context else "root"


def _region(region: RegionIR, lines: list[str], pad: str) -> None:
    flags = ["inline" if region.inline else "awaits"]
    if region.generator is not None:
        flags += [f"strategy={region.strategy}", f"window={region.window}"]
    lines.append(f"{pad}region {_ctx(region.context)} [{' '.join(flags)}]")
    for i, level in enumerate(region.levels):
        lines.append(f"{pad}  level {i}: {', '.join(level)}")
    for chain in region.chains:
        lines.append(f"{pad}  fused: {' >> '.join(chain)}")


def _stage(stage: StageIR, lines: list[str], pad: str) -> None:
    args = ", ".join(f"{a.name}={a.describe()}" for a in stage.args)
    callee = stage.function or stage.kind
    extra = []
    if stage.needed:
        extra.append(f"needs {','.join(stage.needed)}")
    if stage.deps:
        extra.append(f"after {','.join(stage.deps)}")
    if stage.flavor in ("async", "cpu", "asyncgen"):
        extra.append(f"max_concurrent={stage.max_concurrent}")
    if not stage.fuse and stage.kind == "call":
        extra.append("fuse=False")
    if stage.inline_loop:
        extra.append("inlined")
    if stage.gate is not None:
        extra.append("skippable")
    if stage.policy is not None:
        p = stage.policy
        parts = [f"timeout={p.timeout:g}" if p.timeout is not None else "",
                 f"retry={p.retry.attempts}" if p.retry is not None else "",
                 f"cache={p.cache}" if p.cache is not None else ""]
        extra.append(" ".join(x for x in parts if x))
    tail = f"  [{'; '.join(extra)}]" if extra else ""
    lines.append(f"{pad}{stage.flavor:<8} {stage.name} = {callee}({args}){tail}  "
                 f"# {where(stage.loc)}")
    if stage.body is not None:
        _scope(stage.body, lines, pad + "    ")


def _scope(scope: ScopeIR, lines: list[str], pad: str) -> None:
    lines.append(f"{pad}scope {scope.name} ({scope.kind}) qual={scope.qual or '-'} "
                 f"{'inline' if scope.inline else 'awaits'}  # {where(scope.loc)}")
    if scope.loop is not None:
        state = ", ".join(f"{k}={literal_text(v)}" for k, v in scope.loop.state)
        lines.append(f"{pad}  loop state({state}) until {until_text(scope.loop.until)} "
                     f"max_iterations={scope.loop.max_iterations}")
    for branch in scope.branches:
        arms = "; ".join(("else" if cond is None else f"if {describe(cond)}") + " -> "
                         + ", ".join(targets) for cond, targets in branch.arms)
        lines.append(f"{pad}  branch {branch.name} in {_ctx(branch.context)}: {arms}  "
                     f"# {where(branch.loc)}")
    for region in scope.regions:
        _region(region, lines, pad + "  ")
    for stage in scope.stages:
        _stage(stage, lines, pad + "  ")
    for c in scope.collects:
        mode = "ordered" if c.ordered else "completion"
        lines.append(f"{pad}  collect {c.node}[{c.key!r}] {mode} into {_ctx(c.owner)}")
    for r in scope.results:
        lines.append(f"{pad}  result {r.key} <- {r.node}[{r.out_key!r}] depth={r.depth}")
