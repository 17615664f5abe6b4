"""Run mypy, in-process, over a *probe*: the copied ops as the generated module has them.

The probe is the extraction's import lines and code blocks (so every name is already
the generated module's name) with two changes that let mypy infer rather than obey:

* an op the user left without a return annotation loses the one the extractor
  synthesized, and the dict literals it returns or yields become tuples of
  ``(key, value)`` pairs (:func:`probe_function`), so that mypy infers each value on
  its own, without the context of an ``Any`` or of a type variable;
* every literal the graph passes (arguments, loop state, graph input defaults) is
  assigned to a probe variable, so its type is what mypy infers for that literal,
  exactly as the generated module writes it.

mypy runs with options built here from scratch (no config file is read, no plugin is
loaded), the running interpreter's Python version and platform, ``follow_imports=skip``
for installed ``.py`` packages (stubs are still read: the standard library and typed
packages keep their types, and a huge untyped dependency costs nothing), and its
incremental cache in the user's cache directory (:mod:`.cache`). The probe itself is
passed as text, so it is always checked afresh and never written to the cache.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import io
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compiler.frontend.types import own_nodes
from compiler.typecheck.cache import cache_dir

if TYPE_CHECKING:
    from mypy.nodes import Expression, MypyFile
    from mypy.options import Options
    from mypy.types import Type

    from compiler.frontend.extract import Extraction

PROBE_MODULE = "_operonx_probe"
_LOCK = threading.Lock()  # mypy's build keeps process-global state


@dataclass(frozen=True)
class Probe:
    """A checked probe: its tree (function bodies kept) and the type of every expression."""

    tree: MypyFile
    types: Mapping[Expression, Type]
    modules: Mapping[str, MypyFile]  # every module of the build, by name (builtins, typing...)
    options: Options
    constant_names: tuple[str, ...]  # probe variable per literal, in the order given
    from_cache: frozenset[str]  # modules mypy loaded from its cache rather than analysed


def probe_source(extraction: Extraction, inferred: Mapping[str, bool],
                 constants: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The probe's text and the variable names its constants are assigned to.

    ``inferred``: generated name -> is-a-generator, for the ops whose outputs are
    inferred (no return annotation: see :func:`probe_function`). ``constants``:
    literal source texts.
    """
    taken = {block.name for block in extraction.blocks}
    prefix = "_operonx_literal_"
    while any(name.startswith(prefix) for name in taken):
        prefix = "_" + prefix
    parts = ["from __future__ import annotations", *extraction.imports, ""]
    for block in extraction.blocks:
        source = block.source
        if block.name in inferred:
            source = probe_function(source, inferred[block.name])
        parts.append(source)
    names = tuple(f"{prefix}{i}" for i in range(len(constants)))
    parts += [f"{name} = {text}" for name, text in zip(names, constants, strict=True)]
    return "\n".join(parts) + "\n", names


def probe_function(source: str, generator: bool) -> str:
    """An op whose outputs mypy should infer, rewritten so that it infers them per key.

    * The return annotation the extractor synthesized goes (it would be the context).
    * Each dict literal it returns (a generator: yields) becomes a tuple of pairs,
      ``{"a": x, **m}`` -> ``(("a", x), (None, m))``: mypy infers the items of a dict
      display in the context of its value type variable (``[y]`` is ``list[Any]``
      there), the items of a tuple display each on its own (``list[int]``).
    The probe is only analysed, never run, so changing what it returns is harmless.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))),
              None)
    if fn is None:
        return source
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), non-overlapping
    kind: type[ast.AST] = ast.Yield if generator else ast.Return
    for node in own_nodes(fn, kind):
        value = getattr(node, "value", None)
        if isinstance(value, ast.Dict) and value.end_lineno is not None:
            pairs = _pairs(source, value)
            if pairs is not None:
                edits.append((_offset(source, value.lineno, value.col_offset),
                              _offset(source, value.end_lineno, value.end_col_offset or 0),
                              pairs))
    if fn.returns is not None and fn.returns.end_lineno is not None:
        start = _offset(source, fn.returns.lineno, fn.returns.col_offset)
        arrow = source.rfind("->", 0, start)
        if arrow >= 0:
            end = _offset(source, fn.returns.end_lineno, fn.returns.end_col_offset or 0)
            edits.append((len(source[:arrow].rstrip()), end, ""))
    for start, end, replacement in sorted(edits, reverse=True):
        source = source[:start] + replacement + source[end:]
    return source


def _pairs(source: str, display: ast.Dict) -> str | None:
    items = []
    for key, value in zip(display.keys, display.values, strict=True):
        value_text = ast.get_source_segment(source, value)
        if value_text is None:
            return None
        if key is None:
            items.append(f"(None, {value_text})")
        elif isinstance(key, ast.Constant) and isinstance(key.value, str):
            items.append(f"({key.value!r}, {value_text})")
        else:
            return None
    return "(" + "".join(f"{item}, " for item in items) + ")"


def _offset(source: str, line: int, col_bytes: int) -> int:
    """String offset of an ast position (1-based line, UTF-8 byte column)."""
    lines = source.splitlines(keepends=True)
    before = sum(len(text) for text in lines[:line - 1])
    return before + len(lines[line - 1].encode()[:col_bytes].decode(errors="ignore"))


def mypy_options() -> Options:
    """Options built from scratch: nothing from the user's config files or plugins."""
    import mypy.version
    from mypy.options import Options

    options = Options()
    options.python_version = sys.version_info[:2]
    options.platform = sys.platform
    options.python_executable = sys.executable  # search paths: the running interpreter's
    options.incremental = True
    options.cache_dir = cache_dir(mypy.version.__version__)
    options.export_types = True  # the type of every expression, not only errors
    options.preserve_asts = True  # keep function bodies after checking
    options.check_untyped_defs = True  # an op with no annotation at all is still inferred
    options.follow_imports = "skip"
    options.ignore_missing_imports = True
    options.raise_exceptions = True  # a mypy crash is an exception here, never SystemExit
    options.mypy_path = []
    options.plugins = []
    return options


_last: tuple[str, Probe] | None = None  # the same probe twice (-O0 then -O2): build once
# A probe holds mypy's trees and the type of every expression: about 13 KB per op. Kept
# for small graphs (compiled twice in tests and tools), never for big ones, whose probe
# would stay alive, with its memory, through the rest of the compile and the process.
KEEP_PROBE_CHARS = 50_000


def run_probe(source: str, constant_names: tuple[str, ...]) -> Probe:
    """Check ``source`` with mypy. Raises whatever mypy raises (the caller degrades)."""
    global _last
    with _LOCK:
        if _last is not None and _last[0] == source:
            return _last[1]
        from mypy import build
        from mypy.modulefinder import BuildSource

        options = mypy_options()
        sink = io.StringIO()

        def ignore(_file: str | None, _messages: list[str], _serious: bool) -> None:
            """The probe's own mypy errors are not the user's problem: only types are read."""

        with _collector_kept():
            result = build.build([BuildSource(None, PROBE_MODULE, source)], options,
                                 flush_errors=ignore, stdout=sink, stderr=sink)
        state = result.graph.get(PROBE_MODULE)
        if state is None or state.tree is None:
            raise RuntimeError("mypy did not analyse the probe module")
        modules: dict[str, Any] = dict(result.files)
        from_cache = frozenset(name for name, module in result.graph.items()
                               if module.meta is not None)
        probe = Probe(state.tree, result.types, modules, options, constant_names, from_cache)
        _last = (source, probe) if len(source) <= KEEP_PROBE_CHARS else None
        return probe


def release(probe: Probe) -> bool:
    """Done with ``probe``: unless it is the one kept, drop mypy's reference to its build.

    mypy's build leaves a process-global reference to every module it analysed
    (``mypy.modules_state``, for resolving cross-references lazily) until the next build:
    it would keep the probe's trees and types alive through the rest of the compile.
    Returns whether the probe is let go: then, once the caller drops its own references,
    only the garbage collector can free it (mypy's objects are full of reference cycles).
    """
    with _LOCK:
        if _last is not None and _last[1] is probe:
            return False
        from mypy.modules_state import modules_state

        if modules_state.modules.get(PROBE_MODULE) is probe.tree:
            modules_state.modules = {}
            modules_state.node_fixer = None
        return True


@contextlib.contextmanager
def _collector_kept() -> Iterator[None]:
    """Run mypy's build without its process-wide changes to the garbage collector: it sets
    its own thresholds and switches the collector back on (in the middle of a compile that
    paused it)."""
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not enabled:
            gc.disable()
