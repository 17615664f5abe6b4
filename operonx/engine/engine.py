"""``Engine``: runs a graph. The reference semantics the compiled module must match."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import uvloop

from operonx.core.frame import Frame, SpanContext, new_span_id, new_trace_id
from operonx.engine.program import Program, ScopeProgram
from operonx.engine.runtime import FRAME_BACKLOG_HIGH, OnError, Run
from operonx.errors import GraphError, InputError, OperonxError
from operonx.gcpause import gc_paused
from operonx.ir.model import Const, Graph, InputRef, wrap_top_level_loop
from operonx.tracing.base import RunInfo, Tracer


def _graph_of(graph: Any) -> Graph:
    if isinstance(graph, Graph):
        return graph
    ir = getattr(graph, "ir", None)
    if isinstance(ir, Graph):
        return ir
    raise TypeError(f"Engine runs a GraphOp (after its `with` block), not {type(graph).__name__}")


class Engine:
    """Interprets a graph: ``await engine.run(inputs=...)``, ``run_sync``, ``stream``.

    Build once, run many times: the program (argument routes, semaphores,
    regions) is prepared here, so a run only executes it. An Engine holds no
    per-run state and may run concurrently with itself; the caches of
    ``@op(cache=...)`` nodes (SPEC §9) live as long as it does.

    ``cpu_workers``: how many worker processes ``bound="cpu"`` ops run in (default:
    one per usable core); started on first use, shared by Engines of the same size.
    """

    @gc_paused()  # the program is long-lived objects only: see operonx.gcpause
    def __init__(self, graph: Any, *, tracers: Sequence[Tracer] = (),
                 on_error: OnError = "raise", cpu_workers: int | None = None) -> None:
        self.graph = _graph_of(graph)
        if self.graph.nested:
            loc = self.graph.loc
            raise GraphError(f"{self.graph.name!r} is a sub-graph of another graph; run the "
                             "top-level graph", loc.file, loc.line)
        if on_error not in ("raise", "collect"):
            raise ValueError(f"on_error must be 'raise' or 'collect', not {on_error!r}")
        self.tracers = tuple(tracers)
        self.on_error: OnError = on_error
        # bound="cpu" ops run in the process-wide pool of this many workers, shared with
        # every Engine that asks for as many (operonx.engine.cpu_pool).
        self._program = Program(cpu_workers)
        self.cpu_workers = self._program.cpu_workers
        if self.graph.kind == "loop":
            self._scope = ScopeProgram(wrap_top_level_loop(self.graph), self._program, "",
                                       transparent=True)
        else:
            self._scope = ScopeProgram(self.graph, self._program, "")
        self._required = self.graph.required_inputs
        self._accepted = frozenset(self._required) | frozenset(self.graph.optional_inputs)

    # -- public API

    async def run(self, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run the graph once and return its final state (the result keys of SPEC §2)."""
        return await self._execute(self._check_inputs(inputs), self._new_run(buffered=False))

    def run_sync(self, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``run`` on a fresh uvloop event loop (not from inside a running loop)."""
        if _loop_is_running():
            raise RuntimeError("Engine.run_sync() was called from inside a running event loop; "
                               "use `await engine.run(...)` there")
        checked = self._check_inputs(inputs)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(self._execute(checked, self._new_run(buffered=False)))

    async def stream(self, inputs: Mapping[str, Any] | None = None) -> AsyncIterator[Frame]:
        """Yield a Frame per op execution as it happens, then the ``END`` frame.

        A slow consumer slows the run down (frames are buffered up to a bound).
        Leaving the loop early cancels the run; nothing outlives the generator.
        """
        checked = self._check_inputs(inputs)
        run = self._new_run(buffered=True)
        backlog, wake = run.backlog, run.wake
        assert backlog is not None
        task = asyncio.get_running_loop().create_task(self._execute(checked, run))
        task.add_done_callback(lambda _task: wake.set())
        try:
            while True:
                if backlog:
                    frame = backlog.popleft()
                    if len(backlog) <= FRAME_BACKLOG_HIGH // 2:
                        run.drained.set()
                    yield frame
                    continue
                if task.done():
                    break
                wake.clear()
                await wake.wait()
            task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- inputs

    def _check_inputs(self, inputs: Mapping[str, Any] | None) -> dict[str, Any]:
        if inputs is not None and not isinstance(inputs, Mapping):
            # dict() would accept a list of pairs and fail obscurely on the rest.
            raise InputError(f"graph {self.graph.name!r}: inputs must be a mapping of input "
                             f"names to values (a dict), not {type(inputs).__name__}")
        given = dict(inputs or {})
        missing = tuple(k for k in self._required if k not in given)
        unknown = tuple(k for k in given if k not in self._accepted)
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing input(s) {', '.join(map(repr, missing))}")
            if unknown:
                parts.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
            accepted = ", ".join(map(repr, sorted(self._accepted))) or "none"
            raise InputError(f"graph {self.graph.name!r}: {'; '.join(parts)} "
                             f"(it reads: {accepted})", missing, unknown)
        scope_inputs = dict(given)
        graph = self.graph
        for key, source in graph.declared_inputs.items():
            if isinstance(source, InputRef):
                scope_inputs[key] = given[source.key]
            elif isinstance(source, Const) and key not in given:
                scope_inputs[key] = source.value
        for key, value in graph.state.items():
            scope_inputs.setdefault(key, value)
        return scope_inputs

    # -- execution

    def _tracer_emit(self) -> Callable[[Frame], None]:
        tracers = self.tracers

        def emit(frame: Frame) -> None:
            for tracer in tracers:
                tracer.on_frame(frame)

        return emit

    def _new_run(self, buffered: bool) -> Run:
        """Per-run state; frames (and ids) only when a tracer or a stream consumer wants them."""
        tracer_emit = self._tracer_emit() if self.tracers else None
        emitting = tracer_emit is not None or buffered
        run = Run(self._program.semaphore_sizes, self.on_error,
                  new_trace_id() if emitting else None, buffered)
        run.root_span = new_span_id() if emitting else None
        if emitting:
            run.emit = _combined_emit(run, tracer_emit)
        return run

    async def _execute(self, inputs: dict[str, Any], run: Run) -> dict[str, Any]:
        trace_id, root_span = run.trace_id, run.root_span
        started = time.time_ns()
        info = RunInfo(self.graph.name, SpanContext(trace_id or "", root_span or "", None),
                       started, inputs) if self.tracers else None
        started_tracers: list[Tracer] = []
        error: BaseException | None = None
        try:
            for tracer in self.tracers:
                assert info is not None
                tracer.on_run_start(info)
                started_tracers.append(tracer)
            if self._scope.inline and self._scope.bounded and run.backlog is None:
                # No generator, loop or await anywhere: a bounded run on the caller's stack.
                result = self._scope.run_sync(run, inputs, (), root_span)
            else:
                result = await self._scope.run_async(run, inputs, (), root_span)
            if run.collect_errors:
                result["$errors"] = run.errors
            if run.emit is not None:
                now = time.time_ns()
                assert trace_id is not None and root_span is not None
                run.emit(Frame("END", result, (), SpanContext(trace_id, root_span, None),
                               started, now))
            return result
        except BaseException as exc:
            # Task groups wrap failures; what the user gets is the first failure itself.
            error = run.failure if run.failure is not None else _unwrap(exc)
            if error is exc:
                raise
            raise error from error.__cause__
        finally:
            if started_tracers:
                assert info is not None
                _end_tracers(started_tracers, info, error)


def _loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _end_tracers(tracers: Sequence[Tracer], info: RunInfo, error: BaseException | None) -> None:
    """Tell every started tracer the run ended, even when one of them raises.

    A tracer's own failure surfaces only when the run itself succeeded: it must
    not hide the run's real error.
    """
    first: BaseException | None = None
    for tracer in tracers:
        try:
            tracer.on_run_end(info, error)
        except Exception as exc:
            first = first or exc
    if first is not None and error is None:
        raise first


def _combined_emit(run: Run, tracer_emit: Callable[[Frame], None] | None
                   ) -> Callable[[Frame], None]:
    backlog = run.backlog
    wake = run.wake
    if backlog is None:
        assert tracer_emit is not None
        return tracer_emit

    def emit(frame: Frame) -> None:
        if tracer_emit is not None:
            tracer_emit(frame)
        backlog.append(frame)
        wake.set()

    return emit


def _unwrap(exc: BaseException) -> BaseException:
    """The first operonx error inside (possibly nested) exception groups, else ``exc``."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _unwrap(inner)
            if isinstance(found, OperonxError):
                return found
    return exc
