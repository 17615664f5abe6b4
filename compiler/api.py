"""The compiler's public API: what ``operonx compile`` and ``operonx explain`` call."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from compiler.errors import EXIT_INTERNAL, CompileError
from compiler.memory import release_freed_memory
from compiler.passes.base import PassReport
from operonx.gcpause import gc_paused

if TYPE_CHECKING:
    from compiler.native import NativeBuild

__all__ = ["CompileError", "CompileResult", "PassReport", "build_native", "check_file",
           "compile_file", "compile_graph", "explain", "is_stale", "typecheck"]


@dataclass(frozen=True)
class CompileResult:
    source: str
    graph_name: str
    source_path: str
    passes: tuple[PassReport, ...]
    # The user's source files the compile read (the graph's own first): output must not
    # be written over any of them.
    sources: tuple[str, ...] = ()


def _graph_ir(graph: Any) -> Any:
    from operonx.ir.model import Graph

    if isinstance(graph, Graph):
        return graph
    return graph.ir


TARGETS = ("local", "ray")


def _lower(graph: Any, source_path: str, opt_level: int, typecheck: bool = True,
           target: str = "local") -> tuple[Any, Any, Any]:
    """Graph IR -> extraction -> types (checked unless ``typecheck`` is off) -> lowered IR."""
    from compiler.frontend.extract import extract
    from compiler.ir.lower import lower_module
    from compiler.ir.verify import verify
    from compiler.typecheck import analyse_types, unknown_types

    if opt_level not in (0, 1, 2):
        raise CompileError(f"unknown optimisation level -O{opt_level} (use -O0, -O1 or -O2)",
                           exit_code=2)
    if target == "ray":
        from compiler.targets.ray import RESERVED as reserved
    else:
        from compiler.codegen.render import RUNTIME_NAMES as reserved
    ir = _graph_ir(graph)
    extraction = extract(ir, reserved=reserved)
    if typecheck:
        types = analyse_types(ir, extraction, reserved=reserved)
        types.raise_problems()  # every wiring problem, located; nothing is written
    else:
        types = unknown_types(ir)
    module = lower_module(ir, source_path=source_path, extraction=extraction, types=types)
    module = replace(module, opt_level=opt_level)
    verify(module)
    return ir, extraction, module


def compile_graph(graph: Any, *, source_path: str, graph_name: str,
                  opt_level: int = 2, typecheck: bool = True,
                  target: str = "local") -> CompileResult:
    """Compile a closed top-level ``GraphOp`` into the source of one standalone module.

    ``typecheck``: check the wiring's types first (SPEC §7.1); a problem raises
    ``TypeCheckError`` (a ``CompileError`` listing every problem). ``target="ray"``
    writes a module that runs the graph on a Ray cluster instead (``compiler/targets/ray``);
    its only optimisation is fusing sync chains, at -O2.
    """
    # What importing graph.py freed (its compiled trees: most of a big graph file's
    # import) goes back to the system before the compile allocates its own.
    release_freed_memory()
    # Compiling builds many long-lived small objects (libcst and ast trees, the IR) and
    # little cyclic garbage: full collections took a third of a 10,000-op compile.
    with gc_paused():
        return _compile(graph, source_path, graph_name, opt_level, typecheck, target)


def _compile(graph: Any, source_path: str, graph_name: str, opt_level: int,
             typecheck: bool, target: str) -> CompileResult:
    from compiler.codegen.generate import generate
    from compiler.ir.verify import verify
    from compiler.passes import pipeline

    if target not in TARGETS:
        raise CompileError(f"unknown target {target!r} (use {' or '.join(TARGETS)})",
                           exit_code=2)
    ir, extraction, module = _lower(graph, source_path, opt_level, typecheck, target)
    if target == "ray":
        return _compile_for_ray(ir, extraction, module, source_path, graph_name)
    reports: list[PassReport] = []
    try:
        for _name, run_pass in pipeline(opt_level):
            module, report = run_pass(module)
            verify(module)
            reports.append(report)
        source = generate(module, ir, extraction, reports)
    except CompileError:
        raise
    except Exception as exc:  # a compiler bug: say so, located at the graph, never emit code
        raise CompileError(f"internal compiler error ({type(exc).__name__}: {exc}); "
                           "please report it with this graph", source_path,
                           ir.loc.line, exit_code=EXIT_INTERNAL) from exc
    sources = tuple(dict.fromkeys([os.path.abspath(source_path), ir.loc.file,
                                   *extraction.sources]))
    return CompileResult(source=source, graph_name=graph_name, source_path=source_path,
                         passes=tuple(reports), sources=sources)


def _compile_for_ray(ir: Any, extraction: Any, module: Any, source_path: str,
                     graph_name: str) -> CompileResult:
    from compiler.targets.ray import generate

    try:
        source = generate(module, ir, extraction)
    except CompileError:
        raise
    except Exception as exc:  # a compiler bug: say so, located at the graph, never emit code
        raise CompileError(f"internal compiler error ({type(exc).__name__}: {exc}); "
                           "please report it with this graph", source_path,
                           ir.loc.line) from exc
    return CompileResult(source=source, graph_name=graph_name, source_path=source_path,
                         passes=())


def _load(path: str, graph_name: str | None) -> tuple[str, Any]:
    from compiler.frontend.load import find_graphs, load_module, select_graph

    module = load_module(path)
    return select_graph(find_graphs(module), graph_name, path)


def compile_file(path: str, graph_name: str | None = None, opt_level: int = 2,
                 typecheck: bool = True, target: str = "local") -> CompileResult:
    """Load ``path``, pick its graph (``graph_name`` when there are several), compile it."""
    name, graph = _load(path, graph_name)
    return compile_graph(graph, source_path=path, graph_name=name, opt_level=opt_level,
                         typecheck=typecheck, target=target)


# ------------------------------------------------------------------ type check (SPEC §7.1)


def typecheck(graph: Any) -> Any:
    """Extract ``graph``'s ops and analyse its types: a ``GraphTypes`` (problems not raised)."""
    from compiler.codegen.render import RUNTIME_NAMES
    from compiler.frontend.extract import extract
    from compiler.typecheck import analyse_types

    ir = _graph_ir(graph)
    return analyse_types(ir, extract(ir, reserved=RUNTIME_NAMES), reserved=RUNTIME_NAMES)


def check_file(path: str, graph_name: str | None = None) -> tuple[str, ...]:
    """``operonx check``: load ``path`` and type-check ``graph_name``, or every graph in it.

    Returns the names of the graphs checked. Raises ``CompileError`` for a load or
    extraction error, ``TypeCheckError`` listing every type problem of every graph.
    """
    from compiler.frontend.load import find_graphs, load_module, select_graph
    from compiler.typecheck import TypeCheckError

    graphs = find_graphs(load_module(path))
    if graph_name is not None or not graphs:
        name, graph = select_graph(graphs, graph_name, path)
        graphs = {name: graph}
    problems = [p for graph in graphs.values() for p in typecheck(graph).problems]
    if problems:
        raise TypeCheckError(tuple(problems))
    return tuple(graphs)


def explain(path: str, graph_name: str | None = None) -> str:
    """The lowered IR before and after each -O2 pass, with what each pass changed."""
    from compiler.ir.printer import print_module
    from compiler.ir.verify import verify
    from compiler.passes import pipeline

    name, graph = _load(path, graph_name)
    _ir, _extraction, module = _lower(graph, path, 2, typecheck=False)
    out = [f"# operonx explain {os.path.basename(path)} (graph {name!r})", "",
           "## lowered", print_module(module)]
    for pass_name, run_pass in pipeline(2):
        module, report = run_pass(module)
        verify(module)
        out.append(f"## after {pass_name}")
        out += [f"- {line}" for line in report.changed] or ["- (no change)"]
        out.append("")
        out.append(print_module(module))
    return "\n".join(out)


def build_native(out_path: str, *, opt_level: str = "3") -> NativeBuild:
    """``operonx compile --native`` for a module already written to ``out_path``: compile
    it with mypyc into a C extension next to it, which ``import`` then loads instead.

    Raises ``compiler.native.NativeBuildError`` (a ``CompileError``, exit code 3) when it
    cannot be built; ``out_path`` is left as it was. See compiler/README.md, "--native".
    """
    from compiler.native import build_native as build

    return build(out_path, opt_level=opt_level)


def is_stale(out_path: str, result: CompileResult) -> bool:
    """For ``--check``: ``out_path`` is missing or differs byte-for-byte from ``result``."""
    try:
        with open(out_path, "rb") as f:
            return f.read() != result.source.encode()
    except OSError:
        return True
