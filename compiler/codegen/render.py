"""The module skeleton: a jinja2 environment whose only way in for text is a filter.

Templates (``templates/``) hold the fixed parts of a generated module. What they
interpolate is checked mechanically: every ``{{ ... }}`` must yield a
:class:`Code` value (rendered from syntax trees, or validated) or an
:class:`~compiler.codegen.pyast.Ident`; anything else — in particular a plain
string, which is how user text would arrive — stops rendering with
:class:`TemplateRuleError`. User text gets in only through the filters:

* ``|py``: the value as a Python literal (``repr``-like, spelled by ``ast``);
* ``|ident``: a checked ASCII identifier;
* ``|comment``: one printable line, for text after a ``#``;
* ``|docstring``: a string literal for a docstring (triple-quoted when that is safe).
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import jinja2

from compiler.codegen.pyast import Ident, lit, printable

STDLIB = frozenset(sys.stdlib_module_names)

# What the runtime and the skeleton may import: a module gets the names it reads
# (compiler.codegen.runtime.select); copied code must not take any of them.
RUNTIME_IMPORTS = (
    "import argparse", "import asyncio", "import collections", "import contextlib",
    "import functools", "import itertools", "import json", "import operator", "import random",
    "import sys", "import threading", "import time", "import uvloop",
    "from collections.abc import AsyncIterator, Awaitable, Callable, Mapping",
    "from dataclasses import dataclass",
    "from typing import Any, Literal, NoReturn, NotRequired, TypeVar, TypedDict, cast",
    "import contextvars",
    # The imports of operonx's own source files that are runtime libraries too
    # (compiler.codegen.runtime.SOURCE_LIBRARIES: the bound="cpu" worker processes);
    # under _-prefixed names, since the copied code may own the plain ones.
    "import atexit as _atexit", "import multiprocessing as _multiprocessing",
    "import os as _os", "import pickle as _pickle", "import signal as _signal",
    "import importlib as _importlib", "import importlib.util as _importlib_util",
    "import traceback as _traceback",
    "from multiprocessing.connection import Connection as _Connection",
    "from multiprocessing.process import BaseProcess as _BaseProcess",
)
# The public surface every module has (SPEC §6, §7), whether or not the graph uses it.
PUBLIC_NAMES = ("run", "run_sync", "stream", "main", "Frame", "SpanContext", "OperonxError",
                "GraphError", "InputError", "OpError", "LoopLimitExceeded", "Inputs", "Result",
                "ErrorInfo")
# What the skeleton (templates/module.py.j2) binds: its definitions depend on the graph,
# so they are listed here (tests/compiler/test_trust.py checks the list is complete).
SKELETON_NAMES = frozenset({
    "annotations", "ErrorInfo", "Inputs", "Result", "_Limits", "_NO_LIMITS", "_GRAPH",
    "_REQUIRED_ORDER", "_REQUIRED", "_ACCEPTED", "_READS", "_scope_inputs", "_traced_run",
    "run", "run_sync", "stream", "main", "_run_once",
})


class Code(str):
    """Text that is already code (rendered from a tree, or parsed and checked)."""

    __slots__ = ()

    @staticmethod
    def expression(text: str) -> Code:
        """``text``, which must parse as exactly one Python expression (an annotation)."""
        ast.parse(text, mode="eval")
        return Code(text)


class TemplateRuleError(TypeError):
    """A template interpolated something that is not code: a bug in the code generator."""


def _finalize(value: object) -> object:
    if isinstance(value, (Code, Ident)) or type(value) is int:
        return value
    raise TemplateRuleError(
        f"a template interpolates {type(value).__name__} {value!r:.80}; text reaches "
        "generated code only through |py, |ident, |comment or |docstring")


def _py(value: object) -> Code:
    return Code(ast.unparse(lit(value)))


def _docstring(text: str) -> Code:
    safe = all(c.isprintable() or c == "\n" for c in text) and "\\" not in text and '"' not in text
    return Code(f'"""{text}"""' if safe else ast.unparse(lit(text)))


def template_dir() -> str:
    """``compiler/templates`` in an installed wheel, else the repo's ``templates/``."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    packaged = os.path.join(here, "templates")
    if os.path.isdir(packaged):
        return packaged
    return os.path.join(os.path.dirname(here), "templates")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()), trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False,
        finalize=_finalize)
    env.filters.update(py=_py, ident=Ident, comment=lambda text: Code(printable(str(text))),
                       docstring=_docstring)
    env.globals["banner"] = banner
    return env


def banner(title: str) -> Code:
    text = f"# {'-' * 8} {printable(title)} "
    return Code(text + "-" * max(0, 99 - len(text)))


def merge_imports(lines: Iterable[str]) -> list[Code]:
    """One sorted block: ``import x`` lines, then ``from x import a, b``; stdlib first.

    Each line is parsed and spelled again from its names, so only import
    statements come out.
    """
    plain: set[tuple[str, str | None]] = set()
    froms: dict[str, set[tuple[str, str | None]]] = {}
    for line in lines:
        for node in ast.parse(line).body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    plain.add((alias.name, alias.asname))
            elif isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                for alias in node.names:
                    froms.setdefault(module, set()).add((alias.name, alias.asname))
            else:  # pragma: no cover - extract only produces imports
                raise ValueError(f"not an import: {line!r}")

    def group(module: str) -> int:
        root = module.lstrip(".").split(".")[0]
        return 0 if root in STDLIB or root == "__future__" else 1

    def spell(name: str, asname: str | None) -> str:
        return f"{name} as {asname}" if asname and asname != name else name

    out: list[Code] = []
    for g in (0, 1):
        block = [f"import {spell(n, a)}" for n, a in sorted(plain, key=lambda x: (x[0], x[1] or ""))
                 if group(n) == g]
        for module in sorted(m for m in froms if group(m) == g):
            # isort's way: plain names on one line, then each ``name as alias`` on its own
            ordered = sorted(froms[module], key=lambda x: (_isort(x[0]), x[1] or ""))
            plain_names = [n for n, a in ordered if not a or a == n]
            if plain_names:
                block.append(f"from {module} import {', '.join(plain_names)}")
            block += [f"from {module} import {spell(n, a)}" for n, a in ordered
                      if a and a != n]
        if block and out:
            out.append(Code(""))
        out += [Code(line) for line in block]
    return out


def _isort(name: str) -> tuple[int, str, str]:
    """isort's (and ruff's) order of imported names: CONSTANTS, Classes, then the rest,
    each case-insensitively."""
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name.lower(), name


@dataclass(frozen=True)
class Field:
    """One TypedDict field: its key (user text) and its type (checked expression)."""

    name: str
    type: Code

    @property
    def ident(self) -> Ident | None:
        """The key as a class-syntax field name, when it can be one exactly."""
        try:
            return Ident(self.name)
        except ValueError:
            return None


@dataclass(frozen=True)
class Semaphore:
    attr: Ident
    size: int
    qualname: str


def render(**view: object) -> str:
    return environment().get_template("module.py.j2").render(**view)


def _runtime_names() -> frozenset[str]:
    from compiler.codegen.runtime import import_names, library

    return SKELETON_NAMES | library().names | import_names(RUNTIME_IMPORTS)


# Every name the module's fixed parts may bind: the skeleton's, the runtime libraries'
# (read from the templates) and the runtime imports'. Copied code is renamed away from
# all of them, whether or not a given module includes them.
RUNTIME_NAMES = _runtime_names()
