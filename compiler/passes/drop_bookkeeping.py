"""Give ``run`` a path without frame, span and timing bookkeeping.

Legality: ``run(on_error="raise")`` returns only the result (SPEC §5): no
frame, span id or timestamp reaches the caller, and the first error cancels
the run, so neither skip markers nor the ``$errors`` list are needed. ``stream``
and ``on_error="collect"`` keep the traced path, which does all of it.
"""

from __future__ import annotations

from dataclasses import replace

from compiler.ir.nodes import ModuleIR
from compiler.passes.base import PassReport

NAME = "drop_bookkeeping"


def run(module: ModuleIR) -> tuple[ModuleIR, PassReport]:
    if module.fast_path:
        return module, PassReport(NAME, ())
    return replace(module, fast_path=True), PassReport(NAME, (
        "run(on_error='raise') uses a path without frames, spans, timing or skip markers",))
