"""The error hierarchy, re-exported by operonx.core: every error derives from OperonxError.

A compiled module defines classes with the same names, attributes and
hierarchy (it imports nothing from operonx), so code that catches these by name
works against both execution paths.
"""

from __future__ import annotations


class OperonxError(Exception):
    """Base class of every error raised by operonx."""


class GraphError(OperonxError):
    """A graph is malformed. Raised when the ``with GraphOp(...)`` block closes.

    ``file`` and ``line`` locate the node (or graph) at fault; ``str(err)`` reads
    ``file:line: message`` so editors and terminals can jump to it.
    """

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.hint = hint
        where = f"{file}:{line}: " if file is not None and line is not None else ""
        text = f"{where}{message}"
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


class InputError(OperonxError):
    """The inputs given to a run are missing keys the graph reads, or have unknown keys."""

    def __init__(self, message: str, missing: tuple[str, ...] = (),
                 unknown: tuple[str, ...] = ()) -> None:
        self.missing = missing
        self.unknown = unknown
        super().__init__(message)


class OpError(OperonxError):
    """An op raised (or returned something that is not a dict) during a run.

    ``op_name`` is the node's qualified name (``inner.double`` inside a
    sub-graph), ``index`` its position in the stream (``()`` outside one), and
    the original exception is ``__cause__``.
    """

    def __init__(self, message: str, op_name: str, index: tuple[int, ...] = ()) -> None:
        self.op_name = op_name
        self.index = index
        super().__init__(message)


class LoopLimitExceeded(OperonxError):
    """A ``GraphOp.loop`` ran ``max_iterations`` times without ``until`` becoming true."""

    def __init__(self, message: str, loop_name: str, max_iterations: int) -> None:
        self.loop_name = loop_name
        self.max_iterations = max_iterations
        super().__init__(message)
