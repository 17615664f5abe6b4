"""Build the module's view-model and render it with the (dumb) jinja2 templates."""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import jinja2

STDLIB = frozenset(sys.stdlib_module_names)

# What the runtime and entry points import; copied code must not take these names.
RUNTIME_IMPORTS = (
    "import argparse", "import asyncio", "import collections", "import contextlib",
    "import functools", "import json", "import operator", "import random", "import sys",
    "import time", "import uvloop",
    "from collections.abc import AsyncIterator, Awaitable, Callable, Mapping",
    "from dataclasses import dataclass",
    "from typing import Any, Literal, NoReturn, NotRequired, TypedDict, cast",
)
RUNTIME_NAMES = frozenset({
    "argparse", "asyncio", "collections", "contextlib", "functools", "json", "operator",
    "random", "sys", "time", "uvloop", "AsyncIterator", "Awaitable", "Callable", "Mapping",
    "dataclass", "Any", "Literal", "NoReturn", "NotRequired", "TypedDict", "cast",
    "OperonxError", "GraphError", "InputError", "OpError", "LoopLimitExceeded", "SpanContext",
    "Frame", "ErrorInfo", "Inputs", "Result", "run", "run_sync", "stream", "main",
    "_SKIPPED", "_rng", "_by_index", "_new_trace_id", "_new_span_id", "_op_error", "_problem",
    "_outputs", "_complete", "_in_order", "_close", "_aclose", "_unwrap", "_RunBase", "_Run",
    "_scope_inputs", "_traced_run", "_loop_limit", "_missing", "_NO_LIMITS", "_BACKLOG_HIGH",
    "_Limits", "_REQUIRED", "_ACCEPTED",
})


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
        keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)
    env.globals["banner"] = banner
    return env


def banner(title: str) -> str:
    text = f"# {'-' * 8} {title} "
    return text + "-" * max(0, 99 - len(text))


def merge_imports(lines: Iterable[str]) -> list[str]:
    """One sorted block: ``import x`` lines, then ``from x import a, b``; stdlib first."""
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

    out: list[str] = []
    for g in (0, 1):
        block = [f"import {spell(n, a)}" for n, a in sorted(plain, key=lambda x: (x[0], x[1] or ""))
                 if group(n) == g]
        for module in sorted(m for m in froms if group(m) == g):
            names = ", ".join(spell(n, a) for n, a in
                              sorted(froms[module], key=lambda x: (x[0], x[1] or "")))
            block.append(f"from {module} import {names}")
        if block and out:
            out.append("")
        out += block
    return out


@dataclass(frozen=True)
class Field:
    name: str
    type: str

    @property
    def key(self) -> str:
        return repr(self.name)


@dataclass(frozen=True)
class Semaphore:
    attr: str
    size: int
    qualname: str


def render(**view: object) -> str:
    return environment().get_template("module.py.j2").render(**view)
