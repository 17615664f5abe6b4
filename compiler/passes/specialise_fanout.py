"""Specialise each generator's fan-out to its consumers.

Legality: a region the plan marks ``inline`` contains no op that ever awaits
(sync ops, sync generators with inline regions, inline sub-graphs and loops).
The Engine then runs each frame to completion before resuming the generator,
so calling the consumers inline inside the generator's ``for`` loop is exactly
its behaviour. Every other region keeps the generic strategy: one task per
frame in an ``asyncio.TaskGroup``, at most ``window`` frames in flight (the
producer waits: backpressure), each async op under its per-run semaphore.
"""

from __future__ import annotations

from dataclasses import replace

from compiler.ir.nodes import ModuleIR, ScopeIR
from compiler.passes.base import PassReport
from compiler.passes.util import map_scopes

NAME = "specialise_fanout"


def run(module: ModuleIR) -> tuple[ModuleIR, PassReport]:
    changed: list[str] = []

    def scope(s: ScopeIR) -> ScopeIR:
        regions = []
        for region in s.regions:
            if region.generator is not None and not region.levels:
                region = replace(region, strategy="inline")  # nothing runs per frame
            elif region.generator is not None and region.inline and region.strategy != "inline":
                consumers = ", ".join(n for level in region.levels for n in level)
                changed.append(f"{s.qual}{region.generator}: consumers called inline per "
                               f"yield ({consumers})")
                region = replace(region, strategy="inline")
            elif region.generator is not None:
                changed.append(f"{s.qual}{region.generator}: frames spawned as tasks, "
                               f"window={region.window}")
            regions.append(region)
        return replace(s, regions=tuple(regions))

    return map_scopes(module, scope), PassReport(NAME, tuple(changed))
