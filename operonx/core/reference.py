"""Functions by reference: how another process finds an op (``module`` + ``qualname``).

``@op`` rebinds a function's module-level name to an :class:`~operonx.core.dsl.Op`,
so plain pickle cannot find the function any more, and a worker process
(``bound="cpu"``, SPEC §10) cannot receive it by value. Instead an op travels as
a :class:`FunctionReference`: the name of its module, its qualified name in that
module, and the module's file. The receiving process imports the module and looks
the name up; a module it cannot import by name (a graph file that ``operonx run``
or ``operonx compile`` loaded under a private name) is loaded from that file.

:func:`reference_to` refuses what no other process could ever find (a lambda, a
nested function or closure, a function of an interactive ``__main__``), and
:func:`binding_problem` checks that the module-level name really is the op —
both are called when the graph is built, so these are build errors, never a
failure or a hang in the middle of a run.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from operonx.engine.cpu_worker import importable_by_name


class Unreachable(Exception):
    """A function another process cannot find by name; ``reason`` says why."""

    def __init__(self, reason: str, hint: str) -> None:
        self.reason = reason
        self.hint = hint
        super().__init__(reason)


@dataclass(frozen=True)
class FunctionReference:
    """Where another process finds a function: ``module.qualname`` (``file`` as fallback)."""

    module: str
    qualname: str
    file: str | None  # the module's source file, for modules not importable by name

    def __str__(self) -> str:
        return f"{self.module}.{self.qualname}"

    def resolve(self) -> Any:
        """The object bound to ``module.qualname``, importing (or loading) the module first."""
        return _lookup(_module_for(self), self.qualname)


def reference_to(fn: Callable[..., Any]) -> FunctionReference:
    """How another process finds ``fn``; :class:`Unreachable` when it never could."""
    qualname = getattr(fn, "__qualname__", None)
    module_name = getattr(fn, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module_name, str):
        raise Unreachable(f"{fn!r} has no module-level name",
                          "decorate a module-level `def`")
    if qualname == "<lambda>" or qualname.endswith(".<lambda>"):
        raise Unreachable("it is a lambda, which has no name a worker process could import",
                          "define it with `def` at module level")
    if "<locals>" in qualname:
        outer = qualname.split(".<locals>")[0]
        raise Unreachable(f"it is defined inside {outer}() (a nested function or closure), so "
                          "a worker process cannot import it by name",
                          "define it at module level; pass what it captured as arguments")
    module = sys.modules.get(module_name)
    if module is None:
        raise Unreachable(f"its module {module_name!r} is not imported",
                          "define it in a module that is imported normally")
    file = _source_file(module)
    if module_name == "__main__":
        problem = _main_problem(module, fn)
        if problem is not None:
            raise Unreachable(problem, "move it into a module of its own and import it")
    elif file is None and not importable_by_name(module_name):
        raise Unreachable(f"its module {module_name!r} can neither be imported by name nor "
                          "loaded from a source file", "define it in a .py file")
    return FunctionReference(module_name, qualname, file)


def binding_problem(ref: FunctionReference, *expected: object) -> str | None:
    """Why ``ref`` does not resolve, here, to one of ``expected``; None when it does."""
    module = sys.modules.get(ref.module)
    if module is None:
        return f"its module {ref.module!r} is no longer imported"
    try:
        found = _lookup(module, ref.qualname)
    except AttributeError:
        return f"the name {ref} is not defined (the op was given another name)"
    if not any(found is e for e in expected):
        return f"the name {ref} is bound to {_describe(found)}, not to this op"
    return None


def resolve_reference(module: str, qualname: str, file: str | None) -> Any:
    """What unpickling an op calls (see ``Op.__reduce__``): its module-level object."""
    return FunctionReference(module, qualname, file).resolve()


# ------------------------------------------------------------------------ internals


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _lookup(module: types.ModuleType, qualname: str) -> Any:
    value: Any = module
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def _source_file(module: types.ModuleType) -> str | None:
    file = getattr(module, "__file__", None)
    if isinstance(file, str) and file.endswith(".py") and os.path.isfile(file):
        return os.path.abspath(file)
    return None


def _main_problem(main: types.ModuleType, fn: Callable[..., Any]) -> str | None:
    """Why worker processes cannot import the ``__main__`` that defines ``fn``, if they cannot.

    multiprocessing re-imports a script (``python graph.py``) from its path and a
    module run with ``-m`` by its name, as ``__mp_main__`` (so its ``if __name__ ==
    "__main__":`` block does not run again); it does not re-import a package's
    ``__main__.py``, an interactive session or notebook, ``python -c`` or stdin.
    """
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if isinstance(spec_name, str) and (spec_name == "__main__"
                                       or spec_name.endswith(".__main__")):
        return ("it is defined in a package's __main__.py, which worker processes do not "
                "import")
    interactive = ("it is defined in an interactive session, a notebook, `python -c` or "
                   "stdin, which worker processes cannot import")
    main_file = _source_file(main)
    code = getattr(fn, "__code__", None)
    if main_file is None or code is None:
        return interactive
    # A notebook's cells are not in the file that started its kernel.
    with contextlib.suppress(OSError):
        if os.path.samefile(code.co_filename, main_file):
            return None
    return interactive


_load_lock = threading.Lock()


def _module_for(ref: FunctionReference) -> types.ModuleType:
    module = sys.modules.get(ref.module)
    if module is not None:
        return module
    with _load_lock:
        module = sys.modules.get(ref.module)
        if module is not None:
            return module
        try:
            return importlib.import_module(ref.module)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if ref.file is None or not (ref.module == missing
                                        or ref.module.startswith(missing + ".")):
                raise  # the module exists but one of *its* imports is missing
        return _load_file(ref.module, ref.file)


def _load_file(name: str, file: str) -> types.ModuleType:
    """Load ``file`` as module ``name`` (a graph loaded under a private name by the CLI)."""
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file} as module {name!r}", name=name, path=file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _on_sys_path(os.path.dirname(file)):  # its sibling modules, as when first loaded
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@contextlib.contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)
