"""``operonx compile --target ray``: a module that runs the graph on a Ray cluster (SPEC §10).

* ``chains.py`` — which sync ops fuse into one task per frame;
* ``units.py`` — the lowered IR as units of scheduling (a task, a generator, a sub-graph, a
  loop) with their argument routes, buffers and results: the plan the module carries as data;
* ``worker.py`` — one function per task-running unit (what a Ray worker executes);
* ``plan.py`` — the plan written as Python literals for the driver's scheduler;
* ``types.py`` — the ``Inputs`` / ``Result`` TypedDicts (the same as the local target's);
* ``generate.py`` — the entry point: assemble, render ``templates/ray/``, check, return text.
"""

from compiler.targets.ray.generate import RESERVED, generate

__all__ = ["RESERVED", "generate"]
