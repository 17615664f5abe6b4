"""Per-op policies (SPEC §9): ``@op(timeout=..., retry=..., cache=...)``, checked once.

:func:`check_policies` turns what the user passed to ``@op`` into the values the
IR stores on :class:`~operonx.ir.model.OpDef` (``timeout`` seconds, a
:class:`Retry`, an LRU size), or raises :class:`PolicyError`, which the DSL
reports as a ``GraphError`` at the op's definition. Both execution paths read
the stored values only, so they cannot disagree on what a policy means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from operonx.ir.model import OpKind

DEFAULT_CACHE_SIZE = 1024


class PolicyError(ValueError):
    def __init__(self, message: str, hint: str = "") -> None:
        self.hint = hint
        super().__init__(message)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Retry:
    """Run a failed execution again: up to ``attempts`` runs in all.

    Before attempt ``k + 2`` (``k = 0`` before the second) it waits
    ``delay * backoff**k`` seconds, capped at ``max_delay``. Only exceptions
    that are instances of ``on`` are retried; the last failure is the error.
    """

    attempts: int
    delay: float = 0.0
    backoff: float = 1.0
    max_delay: float | None = None
    on: tuple[type[Exception], ...] | type[Exception] = (Exception,)

    def __post_init__(self) -> None:
        # ``on=ConnectionError`` means ``on=(ConnectionError,)``; a list is taken as a tuple.
        if isinstance(self.on, list):
            object.__setattr__(self, "on", tuple(self.on))
        elif isinstance(self.on, type):
            object.__setattr__(self, "on", (self.on,))

    @property
    def exceptions(self) -> tuple[type[Exception], ...]:
        assert isinstance(self.on, tuple)
        return self.on

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 for the first retry)."""
        wait = self.delay * self.backoff ** (attempt - 2)
        return wait if self.max_delay is None else min(wait, self.max_delay)

    @property
    def may_sleep(self) -> bool:
        """Whether a retry ever waits (a sync op that sleeps must not block the event loop)."""
        return self.attempts > 1 and self.delay > 0 and self.max_delay != 0

    def problem(self) -> str | None:
        """What is wrong with these values, or None."""
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool) \
                or self.attempts < 1:
            return f"Retry(attempts={self.attempts!r}): attempts must be an int >= 1"
        for name in ("delay", "max_delay"):
            value = getattr(self, name)
            if value is None and name == "max_delay":
                continue
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                return f"Retry({name}={value!r}): {name} must be a finite number >= 0 (seconds)"
        if not _is_number(self.backoff) or not math.isfinite(self.backoff) or self.backoff <= 0:
            return f"Retry(backoff={self.backoff!r}): backoff must be a finite number > 0"
        on = self.on if isinstance(self.on, tuple) else (self.on,)
        if not on:
            return "Retry(on=()): name at least one exception class to retry"
        for cls in on:
            if not (isinstance(cls, type) and issubclass(cls, Exception)):
                return (f"Retry(on=...): {cls!r} is not an Exception subclass (retrying "
                        "KeyboardInterrupt, SystemExit or a cancellation would swallow it)")
        return None


@dataclass(frozen=True)
class Policies:
    timeout: float | None = None
    retry: Retry | None = None
    cache: int | None = None  # LRU size; None: no cache


def check_policies(name: str, kind: OpKind, bound: str | None, timeout: Any, retry: Any,
                   cache: Any) -> Policies:
    """Validate ``@op(timeout=, retry=, cache=)`` for an op of ``kind``; raise PolicyError."""
    where = f"@op {name!r}"
    if timeout is not None:
        if not _is_number(timeout) or not math.isfinite(timeout) or timeout <= 0:
            raise PolicyError(f"{where}: timeout={timeout!r} must be a number of seconds > 0")
        if kind is OpKind.SYNC and bound is None:
            raise PolicyError(
                f"{where}: timeout= needs an op that can be interrupted, but {name!r} is a plain "
                "def running on the event loop", "make it `async def`, or run it in a worker "
                "with @op(bound='cpu', timeout=...)")
        if kind is OpKind.GEN:
            raise PolicyError(f"{where}: timeout= cannot interrupt a sync generator",
                              "make it an async generator (each step is then timed)")
    checked_retry: Retry | None = None
    if retry is not None and retry is not False:
        if isinstance(retry, Retry):
            checked_retry = retry
        elif isinstance(retry, int) and not isinstance(retry, bool):
            checked_retry = Retry(attempts=retry)
        else:
            raise PolicyError(f"{where}: retry={retry!r} must be a number of attempts or "
                              "Retry(attempts, delay=, backoff=, max_delay=, on=)")
        problem = checked_retry.problem()
        if problem is not None:
            raise PolicyError(f"{where}: {problem}")
        if kind.is_generator:
            raise PolicyError(f"{where}: a generator cannot retry: a second attempt would "
                              "repeat the frames it already yielded",
                              "retry inside the generator, around the call that fails")
    size: int | None = None
    if cache is True:
        size = DEFAULT_CACHE_SIZE
    elif cache is not None and cache is not False:
        if not isinstance(cache, int) or isinstance(cache, bool) or cache < 1:
            raise PolicyError(f"{where}: cache={cache!r} must be True or an LRU size >= 1")
        size = cache
    if size is not None and kind.is_generator:
        raise PolicyError(f"{where}: a generator cannot be cached: its result is a stream of "
                          "frames, not one value", "cache the op its frames feed instead")
    return Policies(timeout=float(timeout) if timeout is not None else None,
                    retry=checked_retry, cache=size)
