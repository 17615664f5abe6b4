"""Build big object graphs without the cyclic garbage collector rescanning the heap.

Building a graph's IR or an Engine's program allocates tens of objects per op that all
live as long as the graph, and no garbage cycles. CPython's collector runs a full pass
over the whole heap each time the surviving objects grow by a quarter, so at 10,000 ops
two or three full passes took most of ``Engine(graph)`` and made it grow faster than
the graph. Pausing the collector for the build lets those objects join the heap once;
reference counting still frees everything short-lived, and the collector resumes
(with its counts intact) as soon as the build ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (nested use and an already-disabled collector
    are left as they are)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
