"""The operonx DSL and its reference interpreter.

>>> from operonx.core import GraphOp, op, START, END, PARENT, Engine
"""

from operonx.core.dsl import END, PARENT, START, GraphOp, Op, Ref, op, ordered
from operonx.core.errors import GraphError, InputError, LoopLimitExceeded, OperonxError, OpError
from operonx.core.frame import Frame, SpanContext
from operonx.engine.engine import Engine
from operonx.tracing.base import Tracer

Operon = Engine

__all__ = [
    "END", "PARENT", "START", "Engine", "Frame", "GraphError", "GraphOp", "InputError",
    "LoopLimitExceeded", "Op", "OpError", "Operon", "OperonxError", "Ref", "SpanContext",
    "Tracer", "op", "ordered",
]
