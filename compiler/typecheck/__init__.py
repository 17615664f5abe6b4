"""Typed wiring (SPEC §7.1): the type of every edge of a graph, and a check that they fit.

Entry point::

    types = analyse_types(graph_ir, extraction, reserved=RUNTIME_NAMES)
    types.raise_problems()        # TypeCheckError: every problem, located in graph.py

:func:`analyse_types` probes the extracted ops with mypy, in-process (:mod:`.probe`,
cache in the user's cache directory, :mod:`.cache`), infers the type of every op
parameter and output key (:mod:`.inference`), checks every argument, loop write-back
and ``PARENT`` key against what receives it (:mod:`.wiring`, located by
:mod:`.locate`) and spells every type as text for the generated module (:mod:`.text`).
It never raises for a failure of its own: mypy crashing or anything unexpected
degrades to unknown (``Any``) types, a :class:`TypeCheckWarning` and no problems.

For the code generator, :class:`GraphTypes` (all text valid in the generated module,
i.e. after the extractor's renames; ``"Any"`` means unknown):

* ``types.op(opdef)`` -> :class:`OpTypes`: ``.params[name]`` (the annotation as the
  copied function spells it) and ``.outputs[key]`` (one returned/yielded value's
  type): the per-op output ``TypedDict``;
* ``types.inputs`` / ``types.result``: ``key -> FieldType(text, required)``, the
  ``Inputs`` and ``Result`` TypedDicts (``required=False``: ``NotRequired[...]``);
* ``types.scope(graph)`` -> :class:`ScopeTypes` for the top-level graph and every
  sub-graph and loop body (keyed by the IR ``Graph`` object; a top-level loop is its own
  scope, not the wrapper ``wrap_top_level_loop`` makes): ``.inputs[key]`` (what
  ``PARENT[key]`` reads there), ``.outputs[node][key]`` (a node's output as a reader at
  the node's own depth sees it: a sub-graph's streamed results are already lists; a
  ``.collect()`` reader gets ``list[...]`` of it), ``.results[key]`` and, for loops,
  ``.state[key]`` (the type of each state variable, mixed types typed per key);
* ``types.imports``: import lines the texts need beyond the extraction's own (typing
  names such as ``Any``/``Literal``/``Callable`` and classes a type names that no copied
  import binds); names already bound by the generated module are reused.

``types.problems`` holds the located errors (``compiler.errors.CompileError``, source
order) and ``types.warnings`` why types are unknown, if they are.
"""

from compiler.typecheck.analysis import analyse_types, unknown_types
from compiler.typecheck.cache import ENV_VAR as CACHE_ENV_VAR
from compiler.typecheck.cache import cache_root
from compiler.typecheck.model import (
    FieldType,
    GraphTypes,
    OpTypes,
    ScopeTypes,
    TypeCheckError,
    TypeCheckWarning,
)

__all__ = ["CACHE_ENV_VAR", "FieldType", "GraphTypes", "OpTypes", "ScopeTypes",
           "TypeCheckError", "TypeCheckWarning", "analyse_types", "cache_root", "unknown_types"]
