"""How the Engine runs one ``bound="cpu"`` op in the worker processes (SPEC §10).

The pool itself (:mod:`operonx.engine.cpu_pool`) is standard-library code shared
with compiled modules; what is the Engine's is here: an op is sent *by reference*
(:mod:`operonx.core.reference`), and an op no worker process could find is a
located :class:`~operonx.errors.GraphError` when the Engine is built.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from operonx.core.reference import (
    FunctionReference,
    Unreachable,
    reference_to,
    resolve_reference,
)
from operonx.engine.cpu_pool import run_in_worker
from operonx.errors import GraphError
from operonx.ir.model import SourceLoc


class CpuOp:
    """How the executions of one ``bound="cpu"`` op reach the pool.

    ``await cpu_op(kwargs)`` returns what the op returned, or raises what it
    raised (or a precise error about what could not be pickled or a worker that
    died); cancelling the await stops the worker running it.
    """

    def __init__(self, fn: Callable[..., Any], workers: int, node_name: str,
                 loc: SourceLoc) -> None:
        try:  # checked when the op was decorated; an Engine may be built from any IR
            self.reference = reference_to(fn)
        except Unreachable as exc:
            raise GraphError(f"op {node_name!r} is bound='cpu' but cannot run in a worker "
                             f"process: {exc.reason}", loc.file, loc.line, exc.hint) from None
        self.workers = workers
        self._blob = pickle.dumps(_ByReference(self.reference), pickle.HIGHEST_PROTOCOL)
        self._label = str(self.reference)

    async def __call__(self, kwargs: dict[str, Any]) -> Any:
        return await run_in_worker(self.workers, self._blob, self._label, kwargs)


class _ByReference:
    """Unpickles, in a worker process, to the object bound to the reference: the op."""

    def __init__(self, reference: FunctionReference) -> None:
        self.reference = reference

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str, str | None]]:
        ref = self.reference
        return resolve_reference, (ref.module, ref.qualname, ref.file)
