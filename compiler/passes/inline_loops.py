"""Inline ``GraphOp.loop`` nodes into a ``while`` loop in the caller's code.

Legality: the loop's ``until`` is a checked string expression, printed as Python
over the state variables, or a copied until function called on the state; the
``while`` keeps the Engine's order exactly — run the body, apply write-backs,
evaluate ``until``, then raise ``LoopLimitExceeded`` after ``max_iterations`` —
so only where the code lives changes, never what it does. Without this pass
each loop is a stage function of its own.
"""

from __future__ import annotations

from dataclasses import replace

from compiler.ir.nodes import ModuleIR, ScopeIR
from compiler.passes.base import PassReport
from compiler.passes.util import map_scopes

NAME = "inline_loops"


def run(module: ModuleIR) -> tuple[ModuleIR, PassReport]:
    changed: list[str] = []

    def scope(s: ScopeIR) -> ScopeIR:
        stages = []
        for st in s.stages:
            if st.kind == "loop" and not st.inline_loop:
                assert st.body is not None and st.body.loop is not None
                changed.append(f"inlined loop {st.qualname} as a while loop "
                               f"(max_iterations={st.body.loop.max_iterations})")
                st = replace(st, inline_loop=True)
            stages.append(st)
        return replace(s, stages=tuple(stages))

    return map_scopes(module, scope), PassReport(NAME, tuple(changed))
