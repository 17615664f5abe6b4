"""The runtime library: fixed helpers a generated module includes only when it uses them.

Every template in ``templates/`` other than the skeleton ``module.py.j2`` is a *runtime
library* (``runtime.py.j2``: errors, frames, the traced run's helpers;
``trace_writer.py.j2``: ``main --trace``; ...). Such a template holds plain Python,
rendered once without any view (``banner(...)`` is the only thing it may interpolate).
Each of its top-level statements is a :class:`Snippet`; a class's methods other than
dunders are snippets of their own, included when some included code reads an attribute
of that name (``rt.call(...)`` includes ``_Run.call``).

What a snippet needs is read from its own code, never listed by hand: the names it
reads (``ast``), the attribute names it reads, and the names it needs *when it is
defined* (base classes, decorators, defaults, the right-hand side of an assignment),
which decide the order. :func:`select` takes the names the rest of the module reads
(the generated functions' trees, the rendered skeleton, the public surface) and returns
the closure, in library order where the import-time needs allow, and the runtime
import lines it reads (:data:`~compiler.codegen.render.RUNTIME_IMPORTS`).

To add a helper: write it at the top level of a runtime library template (a new
``templates/<name>.py.j2`` is picked up too) and have the code generator emit code that
reads its name. Nothing else is registered anywhere.

Some runtime libraries are operonx's own modules (:data:`SOURCE_LIBRARIES`): code the
Engine imports and compiled modules include as text, so there is one implementation of
it (the ``bound="cpu"`` worker processes). Such a module is standard library only, its
top level holds only definitions, and its imports are runtime imports
(:data:`~compiler.codegen.render.RUNTIME_IMPORTS`) or imports of an earlier source
library (which the included text already defines); :func:`source_library_text` drops
its docstring and imports and checks the rest.
"""

from __future__ import annotations

import ast
import heapq
import importlib.util
import os
import re
import symtable
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache, cached_property

from compiler import sourcesplit

SKELETON = "module.py.j2"
CORE = "runtime.py.j2"  # the first library: what the others may build on (the errors)
_BANNER = re.compile(r"# -{8} .* -+\n\Z")


@dataclass(frozen=True)
class Part:
    """Code that comes and goes as a whole: a top-level statement, or one method."""

    text: str  # its lines, comment lines above it included, no blank lines around
    gap: int  # blank lines above it in the library (before its comments)
    reads: frozenset[str]  # names it reads, anywhere in it
    attrs: frozenset[str]  # attribute names it reads (``x.attr``)


@dataclass(frozen=True)
class Snippet:
    """One top-level statement of a runtime library."""

    order: tuple[int, int]  # (library, position): the stable order
    section: str  # the banner line above it ("" for none)
    binds: frozenset[str]  # module-level names it defines
    needs_defined: frozenset[str]  # names it reads when it runs at import time
    head: Part  # all of it; for a class, all but its methods other than dunders
    methods: tuple[tuple[str, Part], ...] = ()  # a class: methods included on demand
    # A class's text in order: (None, text) always kept, (method, text) when it is.
    segments: tuple[tuple[str | None, str], ...] = ()

    def text(self, attrs: frozenset[str]) -> str:
        """The snippet, with the methods whose name is in ``attrs`` (and the dunders)."""
        if not self.segments:
            return self.head.text
        return "".join(text for method, text in self.segments
                       if method is None or method in attrs).rstrip("\n")


@dataclass(frozen=True)
class Selection:
    """What a module includes: runtime code (one block of text) and runtime import lines."""

    code: str
    imports: tuple[str, ...]


def _always(method: str) -> bool:
    """Dunders are called by Python itself (``__init__``, ``__enter__``...): always kept."""
    return method.startswith("__") and method.endswith("__")


def names_read(nodes: Iterable[ast.AST]) -> tuple[set[str], set[str]]:
    """Every ``Name`` read or written, and every attribute name, in ``nodes``."""
    names: set[str] = set()
    attrs: set[str] = set()
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            names.add(node.id)
            continue
        if isinstance(node, ast.Attribute):
            attrs.add(node.attr)
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, ast.AST):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(item for item in value if isinstance(item, ast.AST))
    return names, attrs


def free_names(source: str) -> set[str]:
    """The module-level names ``source`` reads (:mod:`symtable`: a name a function binds
    itself, a parameter, a local ``import json`` are not read from the module), and every
    name in its annotations (which symtable does not see under ``from __future__ import
    annotations``, and mypy reads)."""
    source = textwrap.dedent(source)
    found = _annotation_names(ast.parse(source))
    top = symtable.symtable(source, "<runtime>", "exec")
    found.update(s.get_name() for s in top.get_symbols() if s.is_referenced())
    stack = list(top.get_children())
    while stack:
        table = stack.pop()
        stack.extend(table.get_children())
        found.update(s.get_name() for s in table.get_symbols()
                     if s.is_referenced() and s.is_global())
    return found


def _annotation_names(tree: ast.AST) -> set[str]:
    annotations: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            annotations.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
    return names_read(annotations)[0]


def defined_needs(node: ast.stmt) -> frozenset[str]:
    """The names ``node`` evaluates when it runs at module level (annotations are not:
    the module has ``from __future__ import annotations``; function bodies are not)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        evaluated: list[ast.AST] = [*node.decorator_list, *args.defaults,
                                    *(d for d in args.kw_defaults if d is not None)]
        return frozenset(names_read(evaluated)[0])
    if isinstance(node, ast.ClassDef):
        found = set(names_read([*node.decorator_list, *node.bases, *node.keywords])[0])
        for item in node.body:
            found |= defined_needs(item)
        return frozenset(found)
    if isinstance(node, ast.AnnAssign):
        return frozenset(names_read([node.value] if node.value is not None else [])[0])
    return frozenset(names_read([node])[0])


def _binds(node: ast.stmt) -> frozenset[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return frozenset({node.name})
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    else:
        raise ValueError(f"a runtime library statement must be a def, a class or an "
                         f"assignment, not {ast.dump(node)[:60]}")
    return frozenset(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))


def _first_line(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)])


def _part(lines: Sequence[str], gap_start: int, node: ast.stmt) -> tuple[Part, str]:
    """``node``'s text with the comment lines above it (from line ``gap_start`` on, 0-based),
    its count of blank lines above those, and the banner among them if any ("")."""
    section = ""
    above = list(lines[gap_start:_first_line(node) - 1])
    for i, line in enumerate(above):
        if _BANNER.match(line):
            section, above = line, above[i + 1:]
    gap = 0
    while above and not above[0].strip():
        gap, above = gap + 1, above[1:]
    own = "".join(lines[_first_line(node) - 1:_end(node)])
    text = "".join(above).rstrip("\n") + ("\n" if above else "") + own.rstrip("\n")
    return Part(text, gap, frozenset(free_names(own)), frozenset(names_read([node])[1])), section


def _class_snippet(lines: Sequence[str], gap_start: int, node: ast.ClassDef,
                   order: tuple[int, int]) -> Snippet:
    """A class: its methods other than dunders are included on demand, the rest always."""
    whole, section = _part(lines, gap_start, node)
    comments = whole.text.count("\n") - (_end(node) - _first_line(node))  # lines above it
    segments: list[tuple[str | None, str]] = [
        (None, "".join(line + "\n" for line in whole.text.split("\n")[:comments]))]
    methods: list[tuple[str, Part]] = []
    kept: list[ast.stmt] = []
    cursor = _first_line(node) - 1  # 0-based: the next line not yet in a segment
    for item in node.body:
        if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) or _always(item.name):
            kept.append(item)
            continue
        previous_end = max(cursor, _first_line(item) - 1)
        while previous_end > cursor and (lines[previous_end - 1].strip() == ""
                                         or lines[previous_end - 1].lstrip().startswith("#")):
            previous_end -= 1  # the blank and comment lines above the method go with it
        segments.append((None, "".join(lines[cursor:previous_end])))
        part, _ = _part(lines, previous_end, item)
        segments.append((item.name, "".join(lines[previous_end:_end(item)])))
        methods.append((item.name, part))
        cursor = _end(item)
    segments.append((None, "".join(lines[cursor:_end(node)])))
    head_code = "".join(text for method, text in segments if method is None)
    head = Part(whole.text, whole.gap, frozenset(free_names(head_code)),
                frozenset(names_read([*node.decorator_list, *node.bases, *node.keywords,
                                      *kept])[1]))
    return Snippet(order, section, frozenset({node.name}), defined_needs(node), head,
                   tuple(methods), tuple(segments))


def _end(node: ast.stmt) -> int:
    return node.end_lineno if node.end_lineno is not None else node.lineno


@dataclass(frozen=True)
class Library:
    snippets: tuple[Snippet, ...]

    @property
    def names(self) -> frozenset[str]:
        """Every module-level name the runtime libraries bind."""
        return frozenset(n for s in self.snippets for n in s.binds)

    @cached_property
    def declared_types(self) -> dict[str, str]:
        """Module-level name -> its declared type, for ``NAME: T = ...`` statements
        (``_FAILED: dict[str, Any] = {}``): what a local assigned from it is typed as."""
        found: dict[str, str] = {}
        for snippet in self.snippets:
            if snippet.segments:  # a class
                continue
            for node in ast.parse(snippet.head.text).body:
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    found[node.target.id] = ast.unparse(node.annotation)
        return found


def parse_library(text: str, rank: int) -> list[Snippet]:
    """The snippets of one rendered runtime library."""
    lines = sourcesplit.lines_of(text)
    tree = ast.parse(text)
    snippets: list[Snippet] = []
    previous_end = 0
    section = ""
    for position, node in enumerate(tree.body):
        order = (rank, position)
        if isinstance(node, ast.ClassDef):
            snippet = _class_snippet(lines, previous_end, node, order)
        else:
            part, banner = _part(lines, previous_end, node)
            snippet = Snippet(order, banner, _binds(node), defined_needs(node), part)
        if snippet.section:
            section = snippet.section
        elif section:
            snippet = replace(snippet, section=section)
        snippets.append(snippet)
        previous_end = _end(node)
    return snippets


def library_files(template_dir: str) -> list[str]:
    """The runtime library templates: every ``*.py.j2`` but the skeleton, the core first."""
    names = sorted(n for n in os.listdir(template_dir) if n.endswith(".py.j2") and n != SKELETON)
    return sorted(names, key=lambda n: n != CORE)


# operonx modules included as runtime libraries (after the templates), in this order.
SOURCE_LIBRARIES = ("operonx.engine.cpu_worker", "operonx.engine.cpu_pool")


def source_library_text(module: str) -> str:
    """The source library ``module`` (one of :data:`SOURCE_LIBRARIES`) as a runtime library."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"runtime source library {module} cannot be found")
    with open(spec.origin, encoding="utf-8") as handle:
        text = handle.read()
    return library_text(text, module, SOURCE_LIBRARIES[:SOURCE_LIBRARIES.index(module)])


def library_text(text: str, module: str, earlier: Sequence[str]) -> str:
    """The source ``text`` of module ``module`` as a runtime library: its docstring and
    imports blanked (line numbers kept), a banner naming the file above its first line.
    ValueError for an import that is neither a runtime import nor of an ``earlier`` library."""
    from compiler.codegen.render import RUNTIME_IMPORTS, banner

    lines = sourcesplit.lines_of(text)
    allowed = {binding for line in RUNTIME_IMPORTS for node in ast.parse(line).body
               for binding in _import_bindings(node)}
    header_end = 0  # lines of the docstring and the imports
    for position, node in enumerate(ast.parse(text).body):
        if isinstance(node, ast.ImportFrom) and (node.module == "__future__"
                                                 or node.module in earlier):
            pass  # the generated module has it; the earlier library is in the same text
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for binding in _import_bindings(node):
                if binding not in allowed:
                    raise ValueError(f"runtime source library {module}: "
                                     f"`{_spell(binding)}` is not in RUNTIME_IMPORTS")
        elif not (position == 0 and isinstance(node, ast.Expr)
                  and isinstance(node.value, ast.Constant)):
            break
        header_end = _end(node)
    relative = module.replace(".", "/") + ".py"
    title = banner(f"copied from operonx: {relative} (the Engine runs the same code)")
    return "\n" * (header_end - 1) + title + "\n" + "".join(lines[header_end:])


def _import_bindings(node: ast.stmt) -> list[tuple[str, str, str, str]]:
    """(kind, from module, name, bound name) of each name an import statement binds."""
    if isinstance(node, ast.Import):
        return [("import", "", a.name, a.asname or a.name.split(".")[0]) for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [("from", "." * node.level + (node.module or ""), a.name, a.asname or a.name)
                for a in node.names]
    return []


def _spell(binding: tuple[str, str, str, str]) -> str:
    kind, module, name, bound = binding
    alias = "" if bound == name.split(".")[0] else f" as {bound}"
    return f"import {name}{alias}" if kind == "import" else f"from {module} import {name}{alias}"


@cache
def library() -> Library:
    """Every runtime library, rendered and split into snippets (once per process)."""
    from compiler.codegen.render import environment, template_dir

    snippets: list[Snippet] = []
    files = library_files(template_dir())
    for rank, name in enumerate(files):
        snippets += parse_library(environment().get_template(name).render(), rank)
    for rank, module in enumerate(SOURCE_LIBRARIES, start=len(files)):
        snippets += parse_library(source_library_text(module), rank)
    return Library(tuple(snippets))


def select(used_names: Iterable[str], used_attrs: Iterable[str],
           import_lines: Sequence[str], libraries: Library | None = None) -> Selection:
    """The snippets (and runtime imports) the code reading ``used_names`` and
    ``used_attrs`` needs, closed over what they read in turn (``libraries``: the
    templates' by default)."""
    snippets = (libraries or library()).snippets
    providers: dict[str, list[Snippet]] = {}
    for snippet in snippets:
        for name in snippet.binds:
            providers.setdefault(name, []).append(snippet)
    names: set[str] = set()
    attrs: set[str] = set(used_attrs)
    chosen: dict[tuple[int, int], Snippet] = {}
    pending = list(used_names)
    done_methods: set[tuple[tuple[int, int], str]] = set()
    while True:
        while pending:
            name = pending.pop()
            if name in names:
                continue
            names.add(name)
            for snippet in providers.get(name, ()):
                if snippet.order not in chosen:
                    chosen[snippet.order] = snippet
                    pending += snippet.head.reads
                    attrs |= snippet.head.attrs
        grew = False
        for snippet in list(chosen.values()):  # methods whose name some code now reads
            for method, part in snippet.methods:
                key = (snippet.order, method)
                if key not in done_methods and (_always(method) or method in attrs):
                    done_methods.add(key)
                    pending += part.reads
                    attrs |= part.attrs
                    grew = True
        if not grew and not pending:
            break
    frozen_attrs = frozenset(attrs)
    ordered = _import_order(list(chosen.values()), providers)
    chunks: list[str] = []
    previous: Snippet | None = None
    for snippet in ordered:
        if snippet.section and (previous is None or previous.section != snippet.section):
            chunks.append(("\n\n\n" if chunks else "") + snippet.section.rstrip("\n"))
            chunks.append("\n" * (snippet.head.gap + 1))
        elif chunks:
            consecutive = previous is not None and previous.order == (
                snippet.order[0], snippet.order[1] - 1)
            chunks.append("\n" * ((snippet.head.gap if consecutive else 2) + 1))
        chunks.append(snippet.text(frozen_attrs))
        previous = snippet
    return Selection("".join(chunks), _imports(import_lines, names))


def _import_order(chosen: list[Snippet],
                  providers: dict[str, list[Snippet]]) -> list[Snippet]:
    """``chosen`` in library order, except that a snippet comes after every snippet that
    defines a name it needs at import time."""
    keys = {s.order for s in chosen}
    after: dict[tuple[int, int], set[tuple[int, int]]] = {s.order: set() for s in chosen}
    for snippet in chosen:
        for name in snippet.needs_defined:
            for provider in providers.get(name, ()):
                if provider.order in keys and provider.order != snippet.order:
                    after[snippet.order].add(provider.order)
    by_key = {s.order: s for s in chosen}
    waiting = {k: len(v) for k, v in after.items()}
    dependents: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for key, needs in after.items():
        for need in needs:
            dependents.setdefault(need, []).append(key)
    ready = [k for k, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    out: list[Snippet] = []
    while ready:
        key = heapq.heappop(ready)
        out.append(by_key[key])
        for dependent in dependents.get(key, ()):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(out) != len(chosen):
        stuck = sorted(n for s in chosen if s not in out for n in s.binds)
        raise ValueError(f"runtime snippets need each other to be defined first: {stuck}")
    return out


def _imports(import_lines: Sequence[str], names: set[str]) -> tuple[str, ...]:
    """The runtime import lines, each cut to the names that are read."""
    out: list[str] = []
    for line in import_lines:
        for node in ast.parse(line).body:
            if isinstance(node, ast.Import):
                out += [f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
                        for a in node.names if (a.asname or a.name.split(".")[0]) in names]
            elif isinstance(node, ast.ImportFrom):
                out += [f"from {node.module} import {a.name}"
                        + (f" as {a.asname}" if a.asname else "")
                        for a in node.names if (a.asname or a.name) in names]
    return tuple(out)


def import_names(import_lines: Sequence[str]) -> frozenset[str]:
    """The names ``import_lines`` bind."""
    found: set[str] = set()
    for line in import_lines:
        for node in ast.parse(line).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(found)
