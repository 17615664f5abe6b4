"""Per-run state: semaphores, error policy, frame emission, and region instances."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any, Literal

from operonx.core.frame import Frame, SpanContext, new_span_id
from operonx.errors import OpError

OnError = Literal["raise", "collect"]
FRAME_BACKLOG_HIGH = 256  # frames buffered for a slow ``stream`` consumer before producers wait
#: A run that never awaits on its own (sync ops only) still lets the event loop in after
#: about this much work, so timeouts, cancellation and Ctrl-C act within a few ms.
SLICE_NS = 1_000_000
#: Reading the clock (and calling ``checkpoint``) costs about as much as a small op, so
#: drive loops count frames (``Run.ticks``) and look at the clock every batch of them:
#: about every ``CHECK_NS`` of work, and at least every ``MAX_BATCH`` frames (the bound
#: when frames suddenly get much slower). The hot loops count for free (``islice``
#: batches, or the iteration number they keep anyway); measured on the sync bench cases,
#: the checks and the pauses cost 0-2.5% (``bench/ab.py``).
CHECK_NS = SLICE_NS // 2
MAX_BATCH = 128


class Run:
    """Everything one ``run``/``stream`` call shares: created per call, dropped after."""

    __slots__ = ("backlog", "batch", "checked_at", "collect_errors", "drained", "emit", "errors",
                 "failure", "pause_at", "root_span", "semaphores", "ticks", "trace_id", "wake")

    def __init__(self, n_semaphores: list[int], on_error: OnError, trace_id: str | None,
                 buffered: bool) -> None:
        # One semaphore per bounded op (async or cpu-bound), shared by every frame of the run.
        self.semaphores = [asyncio.Semaphore(n) if n else None for n in n_semaphores]
        self.collect_errors = on_error == "collect"
        self.errors: list[dict[str, Any]] = []
        self.failure: BaseException | None = None
        self.trace_id = trace_id
        self.root_span: str | None = None  # the run's own span: parent of top-level frames
        self.emit: Callable[[Frame], None] | None = None  # set when frames are wanted
        # For ``stream``: frames wait here for the consumer; producers pause when it is full.
        self.backlog: collections.deque[Frame] | None = collections.deque() if buffered else None
        self.drained = asyncio.Event()
        self.wake = asyncio.Event()
        # Fairness (see ``checkpoint``): drive loops of generators, loops and fan-out workers
        # count down ``ticks`` per frame or iteration and call ``checkpoint`` at zero (a loop
        # whose frames hold no loop of their own counts in a local and writes it back). A
        # run of fewer than MAX_BATCH frames never gets there, and never reads the clock.
        self.ticks = self.batch = MAX_BATCH
        self.checked_at = 0  # perf_counter_ns of the last check; 0: none yet
        self.pause_at = 0  # end of the current slice

    async def checkpoint(self) -> int:
        """Every ``batch`` ticks: let the event loop in once the slice is used up (other
        tasks, timers, cancellation, a Ctrl-C), and size the next batch from this one's pace;
        return it (the ticks until the next checkpoint, also left in ``ticks``).

        Without it, a run of sync ops never awaits, so ``asyncio.wait_for``, ``task.cancel()``
        and Ctrl-C would wait for the whole run, and every other coroutine would stall.
        """
        now = time.perf_counter_ns()
        if not self.checked_at:  # the run's first check: its first slice starts now
            self.checked_at, self.pause_at = now, now + SLICE_NS
            self.ticks = self.batch
            return self.batch
        batch = self.batch
        spent = max(now - self.checked_at, 1)
        self.batch = max(1, min(2 * batch, MAX_BATCH, batch * CHECK_NS // spent))
        self.ticks = self.batch
        if now >= self.pause_at:
            # The next deadline first: other drive loops of this run then go on working
            # instead of all pausing in the same turn of the event loop.
            self.pause_at = now + SLICE_NS
            await asyncio.sleep(0)
            now = time.perf_counter_ns()
        self.checked_at = now
        return self.batch

    def frame(self, op_name: str, outputs: Any, index: tuple[int, ...], parent_span: str | None,
              start_ns: int, attempts: int = 1, cached: bool = False) -> str:
        """Emit a frame for one op execution; return its span id (the parent of what it feeds)."""
        span_id = new_span_id()
        assert self.emit is not None and self.trace_id is not None
        self.emit(Frame(op_name, outputs, index, SpanContext(self.trace_id, span_id, parent_span),
                        start_ns, time.time_ns(), attempts, cached))
        return span_id

    async def wait_for_consumer(self) -> None:
        """Backpressure from a slow ``stream`` consumer (a no-op for ``run``)."""
        backlog = self.backlog
        if backlog is not None and len(backlog) > FRAME_BACKLOG_HIGH:
            self.drained.clear()
            await self.drained.wait()

    def fail(self, error: BaseException) -> None:
        """Remember the first failure: it is what ``run`` raises once everything is cancelled."""
        if self.failure is None:
            self.failure = error

    def failed_since(self, count: int, qual: str, index: tuple[int, ...]) -> bool:
        """Whether an op named under ``qual`` (a body's prefix) running in the instance at
        ``index`` recorded an error after the first ``count`` (collect mode): other frames
        record theirs concurrently, and a loop must only see its own body's."""
        errors = self.errors
        return any(e["op"].startswith(qual) and tuple(e["index"][:len(index)]) == index
                   for e in errors[count:]) if len(errors) > count else False

    def record(self, op_name: str, index: tuple[int, ...], exc: BaseException,
               attempts: int | None = None) -> None:
        self.errors.append({"op": op_name, "index": list(index), "type": type(exc).__name__,
                            "message": f"{exc}{attempts_note(attempts)}"})


# What an op's failure can be: any Exception, or a CancelledError the op raised itself.
# Around an await, a cancellation of the run is told apart by is_op_failure().
OP_FAILURES = (Exception, asyncio.CancelledError)


def is_op_failure(exc: BaseException) -> bool:
    """False for a cancellation of the run itself (the task is being cancelled)."""
    if isinstance(exc, Exception):
        return True
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is None or task.cancelling() == 0


def close_generator(gen: Any, failure: BaseException) -> None:
    """Close a generator abandoned because of ``failure``; an error from the generator's
    own clean-up becomes a note on ``failure`` rather than replacing it."""
    try:
        gen.close()
    except Exception as error:
        failure.add_note(f"while closing the generator: {type(error).__name__}: {error}")


async def aclose_generator(gen: Any, failure: BaseException) -> None:
    """``close_generator`` for an async generator."""
    try:
        await gen.aclose()
    except Exception as error:
        failure.add_note(f"while closing the generator: {type(error).__name__}: {error}")


def attempts_note(attempts: int | None) -> str:
    """`` (after 3 attempts)`` for an op with a retry policy, else nothing."""
    if attempts is None:
        return ""
    return f" (after {attempts} attempt{'s' if attempts != 1 else ''})"


def op_error(op_name: str, index: tuple[int, ...], exc: BaseException,
             attempts: int | None = None) -> OpError:
    where = f" at index {index}" if index else ""
    err = OpError(f"op {op_name!r}{where} raised {type(exc).__name__}: {exc}"
                  f"{attempts_note(attempts)}", op_name, index)
    err.__cause__ = exc
    err.__suppress_context__ = True
    return err


class Inst:
    """One run of one region: the scope root, or one frame of a generator.

    ``vals`` maps node name to the outputs dict it produced here; ``parent`` is
    the instance of the enclosing region (where outer values and collect
    buffers live); ``scope`` holds the scope run's inputs and result buffers.
    """

    __slots__ = ("bufs", "decisions", "failed", "index", "parent", "scope", "skipped", "span",
                 "vals")

    def __init__(self, parent: Inst | None, scope: ScopeRun, index: tuple[int, ...],
                 span: str | None) -> None:
        self.vals: dict[str, Any] = {}
        self.parent = parent
        self.scope = scope
        self.index = index
        self.span = span
        self.bufs: dict[int, list[Any]] = {}
        self.failed: set[str] | None = None
        self.skipped: set[str] | None = None  # nodes a branch skipped here (SPEC §8)
        self.decisions: dict[int, int] | None = None  # branch slot -> arm taken (gates.py)

    def up(self, levels: int) -> Inst:
        inst = self
        for _ in range(levels):
            assert inst.parent is not None
            inst = inst.parent
        return inst

    def mark_failed(self, name: str) -> None:
        if self.failed is None:
            self.failed = set()
        self.failed.add(name)

    def mark_skipped(self, name: str) -> None:
        if self.skipped is None:
            self.skipped = set()
        self.skipped.add(name)

    def is_skipped(self, name: str) -> bool:
        return self.skipped is not None and name in self.skipped


class ScopeRun:
    """One run of a scope (a graph body): its inputs and its result accumulators."""

    __slots__ = ("inputs", "plain", "qualname", "streamed")

    def __init__(self, inputs: dict[str, Any], qualname: str) -> None:
        self.inputs = inputs
        self.qualname = qualname  # "" at top level, "inner." inside sub-graph "inner"
        self.plain: dict[str, Any] = {}  # depth-0 result keys
        self.streamed: dict[str, list[tuple[tuple[int, ...], Any]]] = {}  # depth >= 1 keys
