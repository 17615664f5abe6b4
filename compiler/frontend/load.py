"""Import a user's ``graph.py`` and pick the graph to compile.

Every failure becomes a located :class:`CompileError`: the user sees
``graph.py:LINE: error: ...`` pointing at *their* code, never a traceback into
operonx or importlib.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import itertools
import os
import site
import sys
import sysconfig
import traceback
import types
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import operonx
from compiler.errors import CompileError
from operonx.core.dsl import GraphOp
from operonx.errors import GraphError

_OPERONX_DIR = os.path.dirname(os.path.abspath(operonx.__file__))
_COMPILER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NOT_USER_DIRS = tuple(
    os.path.abspath(p) + os.sep for p in {
        _OPERONX_DIR, _COMPILER_DIR,
        sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib"),
        sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), site.getusersitepackages(),
    } if p)
_PROTECTED_PACKAGES = ("operonx", "compiler")
# A fresh name per load: a second load of the same file must never see the first's objects.
_load_counter = itertools.count(1)


def load_module(path: str) -> types.ModuleType:
    """Import ``path`` as a fresh module, its directory on ``sys.path`` while it runs."""
    abspath = os.path.abspath(path)
    source = _read_source(path, abspath)
    _check_syntax(source, path)
    digest = hashlib.sha256(f"{abspath}\0{source}".encode()).hexdigest()[:12]
    name = f"_operonx_user_{digest}_{next(_load_counter)}"
    spec = importlib.util.spec_from_file_location(name, abspath)
    if spec is None or spec.loader is None:
        raise CompileError(f"cannot import {path} as a Python module", path, exit_code=2)
    module = importlib.util.module_from_spec(spec)
    project_dir = os.path.dirname(abspath)
    _forget_project_modules(project_dir)
    sys.modules[name] = module  # inspect and typing look modules up by name
    try:
        with _on_sys_path(project_dir):
            spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_error(exc, path, abspath) from exc
    return module


def _read_source(path: str, abspath: str) -> str:
    try:
        with open(abspath, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CompileError(f"cannot read {path}: {reason}", path, exit_code=2) from exc


def _check_syntax(source: str, path: str) -> None:
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise _syntax_error(exc, path) from exc


def _syntax_error(exc: SyntaxError, fallback_file: str) -> CompileError:
    return CompileError(f"invalid syntax: {exc.msg}", exc.filename or fallback_file,
                        exc.lineno, exc.offset)


@contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    """Let ``graph.py`` import its sibling modules, and only while it is importing."""
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        with suppress(ValueError):  # the user's code may have removed it itself
            sys.path.remove(directory)


def _forget_project_modules(project_dir: str) -> None:
    """Drop cached sibling modules so that a second load sees their current source.

    Also a user module of the same name from another directory (an earlier load of
    another project in this process): ``import ops`` must find this project's ops.py.
    """
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in _PROTECTED_PACKAGES:
            continue
        file = getattr(module, "__file__", None)
        if file is None:
            continue
        relative = os.path.join(*name.split("."))
        candidates = (os.path.join(project_dir, relative + ".py"),
                      os.path.join(project_dir, relative, "__init__.py"))
        if os.path.abspath(file) in candidates or (
                is_user_file(file) and any(os.path.exists(c) for c in candidates)):
            del sys.modules[name]


def is_user_file(filename: str) -> bool:
    """True for the user's own source files: not operonx, the compiler, stdlib or site-packages."""
    if filename.startswith("<"):
        return False  # <frozen importlib._bootstrap>, <string>
    return not os.path.abspath(filename).startswith(_NOT_USER_DIRS)


def _import_error(exc: BaseException, path: str, abspath: str) -> CompileError:
    if isinstance(exc, CompileError):
        return exc
    if isinstance(exc, GraphError):
        return CompileError(exc.message, exc.file, exc.line, hint=exc.hint)
    if isinstance(exc, SyntaxError):  # in a sibling module the graph imports
        return _syntax_error(exc, path)
    file, line = _deepest_user_frame(exc, abspath)
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return CompileError(f"importing {os.path.basename(path)} raised {what}", file, line)


def _deepest_user_frame(exc: BaseException, abspath: str) -> tuple[str, int | None]:
    located: tuple[str, int | None] = (abspath, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if is_user_file(frame.filename):
            located = (frame.filename, frame.lineno)
    return located


def find_graphs(module: types.ModuleType) -> dict[str, GraphOp]:
    """Module-level names bound to a closed, top-level ``GraphOp``, in definition order."""
    found: dict[str, GraphOp] = {}
    seen: set[int] = set()
    for name, value in vars(module).items():
        if not isinstance(value, GraphOp) or value.is_nested or id(value) in seen:
            continue
        if not _is_closed(value):
            continue
        seen.add(id(value))
        found[name] = value
    return found


def _is_closed(graph: GraphOp) -> bool:
    try:
        graph.ir  # noqa: B018 -- raises while the block is still open
    except GraphError:
        return False
    return True


_HOW_TO_DEFINE = ('define one at module level: `with GraphOp(name="main") as graph:` '
                  "then add ops and `START >> ... >> END` inside the block")


def select_graph(graphs: dict[str, GraphOp], name: str | None,
                 path: str) -> tuple[str, GraphOp]:
    """The graph to compile: the only one, or the one ``--graph NAME`` names."""
    filename = os.path.basename(path)
    # Errors about the file as a whole point at its first line, so every diagnostic is
    # `path:LINE:COL`; ambiguity points at the second graph, where it begins.
    if not graphs:
        raise CompileError(f"no graph found in {filename}", path, 1, 1, hint=_HOW_TO_DEFINE)
    if name is None:
        if len(graphs) == 1:
            return next(iter(graphs.items()))
        listed = ", ".join(f"{var} (line {g.loc.line})" for var, g in graphs.items())
        second = list(graphs.values())[1].loc.line
        raise CompileError(f"{len(graphs)} graphs found in {filename}: {listed}", path, second,
                           hint=f"choose one with --graph NAME (e.g. --graph {next(iter(graphs))})",
                           exit_code=2)
    if name in graphs:
        return name, graphs[name]
    by_graph_name = {g.name: (var, g) for var, g in graphs.items()}
    if name in by_graph_name:
        return by_graph_name[name]
    raise CompileError(f"no graph named {name!r} in {filename}", path, 1, 1,
                       hint=_unknown_graph_hint(name, graphs), exit_code=2)


def _unknown_graph_hint(name: str, graphs: dict[str, GraphOp]) -> str:
    close = difflib.get_close_matches(name, list(graphs), n=1)
    available = f"graphs: {', '.join(graphs)}"
    return f"did you mean {close[0]!r}? ({available})" if close else available
