"""Drive one analysis: probe the copied ops with mypy, infer, check the wiring, spell types.

Any failure inside (mypy crashing on unusual code, a bug here) degrades to "every type
unknown" with a warning: the check never refuses a graph because it could not run.
"""

from __future__ import annotations

import ast
import gc
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from compiler.errors import CompileError
from compiler.memory import release_freed_memory
from compiler.typecheck.model import (
    ANY,
    FieldType,
    GraphTypes,
    OpTypes,
    ScopeTypes,
    TypeCheckWarning,
)
from operonx.ir.model import Graph, OpDef

if TYPE_CHECKING:
    from compiler.frontend.extract import Extraction
    from compiler.typecheck.inference import Literals
    from compiler.typecheck.probe import Probe
    from compiler.typecheck.text import TypeSpeller
    from compiler.typecheck.wiring import ScopeFacts, Wiring


def analyse_types(graph: Graph, extraction: Extraction, *,
                  reserved: Iterable[str] = ()) -> GraphTypes:
    """The types of ``graph`` and its wiring problems (see the package docstring).

    ``extraction`` is :func:`compiler.frontend.extract.extract`'s result for ``graph``;
    ``reserved``: names the code generator defines (as passed to ``extract``).
    Never raises for a problem of its own: it degrades to unknown types with a warning.
    """
    try:
        return _analyse(graph, extraction, frozenset(reserved))
    except Exception as exc:  # degrade: never refuse a good graph for a failure of ours
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        message = (f"{graph.loc}: warning: the type check could not run ({reason}); "
                   "types are unknown and nothing was checked")
        warnings.warn(message, TypeCheckWarning, stacklevel=2)
        return unknown_types(graph, message)


def unknown_types(graph: Graph, warning: str | None = None) -> GraphTypes:
    """Every type unknown: ``Any``, or ``list[Any]`` for a streamed result."""
    return GraphTypes(
        inputs={**{k: FieldType(ANY, True) for k in graph.required_inputs},
                **{k: FieldType(ANY, False) for k in graph.optional_inputs}},
        result={k: FieldType("list[Any]" if depth >= 1 else ANY, True)
                for k, depth in graph.result_depths().items()},
        imports=("from typing import Any",),
        warnings=(warning,) if warning else ())


def _analyse(graph: Graph, extraction: Extraction, reserved: frozenset[str]) -> GraphTypes:
    from compiler.typecheck import inference
    from compiler.typecheck.probe import probe_source, release, run_probe

    ops = inference.ops_of(graph)
    literals = inference.collect_literals(graph)
    source, constant_names = probe_source(
        extraction, inference.inferred_ops(ops, extraction.function_names), literals.texts)
    probe = run_probe(source, constant_names)
    try:
        return _check(graph, extraction, reserved, ops, literals, probe)
    finally:
        # The result is text: nothing refers to mypy's objects once the probe is let go.
        # They are full of reference cycles, and a compile pauses the collector.
        let_go = release(probe)
        del probe
        if let_go:
            gc.collect()
            release_freed_memory()


def _check(graph: Graph, extraction: Extraction, reserved: frozenset[str], ops: list[OpDef],
           literals: Literals, probe: Probe) -> GraphTypes:
    from mypy.state import state as mypy_state

    from compiler.typecheck import inference
    from compiler.typecheck import mypytypes as mt
    from compiler.typecheck.wiring import Wiring

    # Subtypes, meets and unions read this process-global flag (older mypys leave it off
    # outside a build, where ``int | None`` would then fit ``int``).
    with mypy_state.strict_optional_set(True):
        signatures = inference.signatures(probe, ops, extraction.function_names)
        wiring = Wiring(signatures, inference.literal_types(probe, literals), probe.options,
                        mt.type_info(probe.modules, "builtins.list"))
        wiring.run(graph)
        return _assemble(graph, extraction, reserved, ops, wiring)


def _assemble(graph: Graph, extraction: Extraction, reserved: frozenset[str],
              ops: list[OpDef], wiring: Wiring) -> GraphTypes:
    from compiler.typecheck.text import TypeSpeller
    from compiler.typecheck.wiring import result_required

    speller = TypeSpeller(extraction, reserved)
    annotations = _copied_annotations(extraction)
    op_types: dict[OpDef, OpTypes] = {}
    for op in ops:
        signature = wiring.signatures[id(op)]
        written = annotations.get(extraction.function_names.get(op.fn, ""), {})
        params = {p.name: written.get(p.name, ANY) for p in op.params}
        outputs = {k: speller.spell(t) for k, t in signature.outputs.items()}
        op_types[op] = OpTypes(params, outputs)
    scopes = {scope: _scope_types(speller, facts) for scope, facts in wiring.facts.values()}
    root = wiring.facts.get(id(graph))
    root_facts = root[1] if root is not None else None
    inputs: dict[str, FieldType] = {}
    for name in graph.required_inputs:
        inputs[name] = FieldType(speller.spell(wiring.run_inputs[name]), True)
    for name in graph.optional_inputs:
        known = root_facts.inputs.get(name) if root_facts is not None else None
        inputs[name] = FieldType(speller.spell(known if known is not None
                                               else wiring.run_inputs[name]), False)
    result: dict[str, FieldType] = {}
    for key, depth in graph.result_depths().items():
        known = root_facts.results.get(key) if root_facts is not None else None
        text = speller.spell(known) if known is not None else (
            "list[Any]" if depth >= 1 else ANY)
        result[key] = FieldType(text, result_required(graph, key))
    problems = sorted(wiring.problems, key=lambda p: (p.file or "", p.line or 0, p.col or 0))
    return GraphTypes(inputs, result, op_types, scopes, speller.imports, _dedupe(problems))


def _copied_annotations(extraction: Extraction) -> dict[str, dict[str, str]]:
    """Function name -> parameter -> annotation, as the generated module's copy spells it.

    The copy is the reference: its names are already the generated ones, its bare
    generics explicit, and a missing annotation is ``Any`` there. Only the ops' functions
    are read (helpers and classes are not asked about).
    """
    ops = set(extraction.function_names.values())
    found: dict[str, dict[str, str]] = {}
    for block in extraction.blocks:
        if block.name not in ops or "def " not in block.source:
            continue
        try:
            tree = ast.parse(block.source)
        except SyntaxError:
            continue
        for fn in tree.body:
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.name == block.name:
                args = fn.args
                every = [*args.posonlyargs, *args.args, *args.kwonlyargs,
                         *([args.kwarg] if args.kwarg else [])]
                found[fn.name] = {a.arg: ast.unparse(a.annotation) for a in every
                                  if a.annotation is not None}
    return found


def _scope_types(speller: TypeSpeller, facts: ScopeFacts) -> ScopeTypes:
    def spell_all(types: dict[str, Any]) -> dict[str, str]:
        return {key: speller.spell(t) for key, t in types.items()}

    return ScopeTypes(spell_all(facts.inputs),
                      {node: spell_all(outs) for node, outs in facts.outputs.items()},
                      spell_all(facts.results), spell_all(facts.state))


def _dedupe(problems: list[CompileError]) -> tuple[CompileError, ...]:
    """One report per located message (a conflict can be seen from two scopes)."""
    return tuple({problem.render(): problem for problem in reversed(problems)}.values())[::-1]
