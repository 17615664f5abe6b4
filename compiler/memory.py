"""Give the operating system back memory the compile has freed.

CPython keeps small objects in arenas of its own, returned when they empty, but bigger
blocks (the tables of big dicts and lists, the trees CPython's compiler builds while
graph.py is imported) come from the C library's heap, which keeps what is freed for
later: after importing a 10,000-op graph.py, over 100 MB that the import used and freed
stays resident. The compile's many small objects cannot reuse it, so they come on top.
glibc's ``malloc_trim`` hands such free pages back. Where the C library has no such
function (macOS, Windows, musl), :func:`release_freed_memory` does nothing.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any


@functools.cache
def _malloc_trim() -> Callable[[int], Any] | None:
    try:
        libc = ctypes.CDLL(None)  # the running process's own symbols: its C library's
    except (OSError, TypeError):  # pragma: no cover - a platform without dlopen(NULL)
        return None
    trim: Callable[[int], Any] | None = getattr(libc, "malloc_trim", None)
    return trim


def release_freed_memory() -> None:
    """Return the C heap's free pages to the system (a few milliseconds for hundreds of
    megabytes). Call it after a phase that freed a lot: importing the graph, the type
    check."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
