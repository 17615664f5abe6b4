"""Specialise each generator's fan-out to its consumers.

What every level keeps (set when lowering, from the plan the Engine runs): a
region that never awaits runs each frame inline in its generator's loop; any
other region runs one task per frame in an ``asyncio.TaskGroup``, at most
``window`` frames in flight (the producer waits: backpressure), each async op
under its per-run semaphore.

This pass reports those choices; the faster shapes a region can take without
changing §2–§6 are added here.
"""

from __future__ import annotations

from compiler.ir.nodes import ModuleIR, ScopeIR
from compiler.passes.base import PassReport
from compiler.passes.util import map_scopes

NAME = "specialise_fanout"


def run(module: ModuleIR) -> tuple[ModuleIR, PassReport]:
    changed: list[str] = []

    def scope(s: ScopeIR) -> ScopeIR:
        for region in s.regions:
            if region.generator is None or not region.levels:
                continue
            consumers = ", ".join(n for level in region.levels for n in level)
            if region.strategy == "inline":
                changed.append(f"{s.qual}{region.generator}: consumers called inline per "
                               f"yield ({consumers})")
            else:
                changed.append(f"{s.qual}{region.generator}: frames spawned as tasks, "
                               f"window={region.window}")
        return s

    return map_scopes(module, scope), PassReport(NAME, tuple(changed))
