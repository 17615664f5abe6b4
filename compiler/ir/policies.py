"""Lower what SPEC §9 adds to an op: ``@op(timeout=, retry=, cache=)``.

The values are the ones the IR validated (``operonx.ir.policy``); what lowering
adds is how the generated module names each exception class a ``Retry`` retries:
a builtin by its name, a class of an installed or standard module by an import,
a class of the user's own code by the name the copied code gave it — and a user
class the copied code never uses is refused, located, since the module cannot
have it.
"""

from __future__ import annotations

import sys

from compiler.errors import CompileError
from compiler.frontend.extract import Extraction
from compiler.frontend.load import is_user_file
from compiler.ir.nodes import ExceptionRef, PolicyIR
from operonx.ir.model import Node, OpDef, OpKind


def policy(node: Node, extraction: Extraction, copied: frozenset[str]) -> PolicyIR | None:
    """The stage's policies; ``copied``: every name the copied code binds at module level."""
    op = node.op
    if op is None or not op.has_policy:
        return None
    on: tuple[ExceptionRef, ...] = ()
    if op.retry is not None:
        on = tuple(_exception(t, op, node, extraction, copied) for t in op.retry.exceptions)
    # It awaits: an async def, a bound="cpu" op, or a sync op whose retries wait.
    awaited = op.kind is OpKind.ASYNC or op.bound == "cpu" or (
        op.kind is OpKind.SYNC and not op.runs_inline)
    return PolicyIR(timeout=op.timeout, retry=op.retry, cache=op.cache, awaited=awaited,
                    retry_on=on)


def _exception(cls: type[BaseException], op: OpDef, node: Node, extraction: Extraction,
               copied: frozenset[str]) -> ExceptionRef:
    if cls.__module__ == "builtins":
        return ExceptionRef("", cls.__qualname__)
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None) or ""
    if not is_user_file(file):
        return ExceptionRef(cls.__module__, cls.__qualname__)
    op_module = sys.modules.get(op.fn.__module__)
    renames = extraction.renames.get(op.fn, {})
    for name, value in vars(op_module).items() if op_module is not None else ():
        generated = renames.get(name, name)
        if value is cls and generated in copied:
            return ExceptionRef("", generated)
    raise CompileError(
        f"op {node.name!r} retries on {cls.__qualname__}, a class of your code that the op's "
        "code does not use, so the compiled module does not have it", node.loc.file,
        node.loc.line, hint=f"use {cls.__qualname__} in the op (raise or catch it), or retry "
        "on a built-in exception")
