"""The operonx DSL and its reference interpreter.

>>> from operonx.core import GraphOp, op, START, END, PARENT, Engine

``Engine`` (and ``Operon``, ``Tracer``) load on first use: a graph file that only
builds graphs does not pay for the interpreter and uvloop, and the engine can
import ``operonx.errors`` without an import cycle.
"""

from typing import TYPE_CHECKING, Any

from operonx.core.branch import Branch, coalesce, if_
from operonx.core.conditions import Cond
from operonx.core.dsl import END, PARENT, START, GraphOp, Op, Ref, op, ordered
from operonx.core.frame import Frame, SpanContext
from operonx.errors import GraphError, InputError, LoopLimitExceeded, OperonxError, OpError
from operonx.ir.policy import Retry

if TYPE_CHECKING:
    from operonx.engine.engine import Engine
    from operonx.tracing.base import Tracer

    Operon = Engine


def __getattr__(name: str) -> Any:
    if name in ("Engine", "Operon"):
        from operonx.engine.engine import Engine

        return Engine
    if name == "Tracer":
        from operonx.tracing.base import Tracer

        return Tracer
    raise AttributeError(f"module 'operonx.core' has no attribute {name!r}")


__all__ = [
    "END", "PARENT", "START", "Branch", "Cond", "Engine", "Frame", "GraphError", "GraphOp",
    "InputError", "LoopLimitExceeded", "Op", "OpError", "Operon", "OperonxError", "Ref",
    "Retry", "SpanContext", "Tracer", "coalesce", "if_", "op", "ordered",
]
