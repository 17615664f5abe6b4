"""The passes, one module each; :func:`pipeline` lists them for an optimisation level."""

from __future__ import annotations

from collections.abc import Callable

from compiler.ir.nodes import ModuleIR
from compiler.passes import drop_bookkeeping, fuse_chains, inline_loops, specialise_fanout
from compiler.passes.base import PassReport

Pass = Callable[[ModuleIR], tuple[ModuleIR, PassReport]]


def pipeline(opt_level: int) -> list[tuple[str, Pass]]:
    """-O0: none (one stage function per op, generic scheduling, the traced path only).
    -O1: specialised fan-out and a bookkeeping-free ``run``. -O2 (default): everything."""
    passes: list[tuple[str, Pass]] = []
    if opt_level >= 1:
        passes += [(specialise_fanout.NAME, specialise_fanout.run),
                   (drop_bookkeeping.NAME, drop_bookkeeping.run)]
    if opt_level >= 2:
        passes += [(fuse_chains.NAME, fuse_chains.run),
                   (inline_loops.NAME, inline_loops.run)]
    return passes


__all__ = ["Pass", "PassReport", "pipeline"]
