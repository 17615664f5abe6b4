"""Per-op policies at run time (SPEC §9): timeout, retry with backoff, a per-node LRU cache.

One :class:`NodePolicy` per node of an Engine (so a cache lives exactly as long
as the Engine, and two nodes of one op have two caches). The node program calls
it instead of the op function and gets an :class:`Outcome` (the value, how many
attempts ran, whether it was a cache hit) or :class:`Exhausted` (the last
failure and the attempt count). What is validated at build time is not checked
again here: a timeout is never on a plain sync op, and a sync op whose retries
wait is run awaited (``OpDef.runs_inline``), so :meth:`NodePolicy.call_sync`
never sleeps.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, cast

from operonx.engine.runtime import OP_FAILURES, is_op_failure
from operonx.ir.model import OpDef

Invoke = Callable[[dict[str, Any]], Awaitable[Any]]
_MISS: Any = object()


class Exhausted(Exception):
    """An execution failed for good: ``error`` is its last failure.

    ``attempts`` is how many runs it took, or None when the op has no retry
    policy (then the error message does not mention attempts).
    """

    def __init__(self, error: BaseException, attempts: int | None) -> None:
        self.error = error
        self.attempts = attempts
        super().__init__(error)


class Outcome:
    __slots__ = ("attempts", "cached", "value")

    def __init__(self, value: Any, attempts: int, cached: bool) -> None:
        self.value = value
        self.attempts = attempts  # op function calls for this execution (0 for a cache hit)
        self.cached = cached


class _Flight:
    """An execution in progress that identical concurrent executions wait for."""

    __slots__ = ("attempts", "done", "error", "ok", "value")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.ok = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.attempts: int | None = None


class OpCache:
    """An LRU of return values keyed by the arguments, plus the executions in flight.

    Keys are ``tuple(kwargs.items())`` (a node always builds its arguments in the
    same order), compared like ``functools.lru_cache`` keys: ``1`` and ``1.0``
    are one key. Values are shared, not copied. Flights are per event loop: an
    Engine may run on several loops (``run_sync`` from several threads).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self.flights: dict[tuple[asyncio.AbstractEventLoop, Hashable], _Flight] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key_of(kwargs: dict[str, Any]) -> Hashable | None:
        key = tuple(kwargs.items())
        try:
            hash(key)
        except TypeError:
            return None  # an unhashable argument: this execution is not cached
        return key

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._values.get(key, _MISS)
            if value is not _MISS:
                self._values.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)


class NodePolicy:
    def __init__(self, op: OpDef) -> None:
        self.timeout = op.timeout
        self.retry = op.retry
        self.cache = OpCache(op.cache) if op.cache is not None else None

    # -- inline (sync ops on the event loop: no timeout, retries do not wait)

    def call_sync(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Outcome:
        cache = self.cache
        key = cache.key_of(kwargs) if cache is not None else None
        if key is not None:
            assert cache is not None
            value = cache.get(key)
            if value is not _MISS:
                return Outcome(value, 0, True)
        attempt = 1
        while True:
            try:
                value = fn(**kwargs)
                break
            except OP_FAILURES as exc:  # a sync call: any CancelledError is the op's own
                self._give_up_unless_retried(exc, attempt)
            attempt += 1
        if key is not None:
            assert cache is not None
            cache.put(key, value)
        return Outcome(value, attempt, False)

    def _give_up_unless_retried(self, exc: BaseException, attempt: int) -> None:
        retry = self.retry
        if retry is None:
            raise Exhausted(exc, None) from None
        if attempt >= retry.attempts or not isinstance(exc, retry.exceptions):
            raise Exhausted(exc, attempt) from None

    # -- awaited (async ops, bound="cpu", sync ops whose retries wait)

    async def call_async(self, invoke: Invoke, kwargs: dict[str, Any]) -> Outcome:
        cache = self.cache
        key = cache.key_of(kwargs) if cache is not None else None
        if key is None:
            return await self._attempts(invoke, kwargs)
        assert cache is not None
        slot = (asyncio.get_running_loop(), key)
        while True:
            value = cache.get(key)
            if value is not _MISS:
                return Outcome(value, 0, True)
            flight = cache.flights.get(slot)
            if flight is None:
                break
            await flight.done.wait()  # share the run in flight (single-flight)
            if flight.ok:
                return Outcome(flight.value, 0, True)
            if flight.error is not None:
                raise Exhausted(flight.error, flight.attempts)
            # its caller was cancelled before it finished: run it ourselves
        flight = cache.flights[slot] = _Flight()
        try:
            outcome = await self._attempts(invoke, kwargs)
            cache.put(key, outcome.value)
            flight.ok, flight.value = True, outcome.value
            return outcome
        except Exhausted as failed:
            flight.error, flight.attempts = failed.error, failed.attempts
            raise
        finally:  # also when cancelled: waiters then run it themselves
            del cache.flights[slot]
            flight.done.set()

    async def _attempts(self, invoke: Invoke, kwargs: dict[str, Any]) -> Outcome:
        retry, timeout = self.retry, self.timeout
        attempt = 1
        while True:
            try:
                if timeout is None:
                    value = await invoke(kwargs)
                else:  # each attempt has its own deadline
                    value = await timed(invoke(kwargs), timeout)
                return Outcome(value, attempt, False)
            except OP_FAILURES as exc:
                if not is_op_failure(exc):
                    raise  # the run itself is being cancelled
                self._give_up_unless_retried(exc, attempt)
            attempt += 1
            assert retry is not None
            wait = retry.delay_before(attempt)
            if wait > 0:
                await asyncio.sleep(wait)


async def timed(awaitable: Awaitable[Any], seconds: float) -> Any:
    """Await with a deadline; past it the awaited work is cancelled and TimeoutError raised.

    A TimeoutError the op raises itself passes through unchanged.
    """
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise TimeoutError(f"no result within {seconds:g} s") from None
        raise


def stepper(gen: Any, seconds: float | None) -> Callable[[], Awaitable[Any]]:
    """How to take the next item of an async generator: within ``seconds`` when its op has
    a timeout (a timeout bounds each step of a stream, SPEC §9)."""
    if seconds is None:
        return cast(Callable[[], Awaitable[Any]], gen.__anext__)

    def step() -> Awaitable[Any]:
        return timed(gen.__anext__(), seconds)
    return step
