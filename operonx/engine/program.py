"""The interpreter's program: executors built once per Engine from the IR and its plan.

Building resolves everything that does not change between runs — where each
argument is read from, which keys each op must return, which collect buffers
and result keys its outputs feed — so a run only calls functions and moves
values. ``plan_scope`` decides grouping and order (see ``operonx.ir.plan``);
this module only executes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from operonx.engine import cpu_pool
from operonx.engine.routes import BufferIds, by_index, collect_buffers, getter, publication
from operonx.engine.runtime import Inst, Run, ScopeRun, op_error
from operonx.errors import LoopLimitExceeded, OpError
from operonx.ir.model import (
    Const,
    Graph,
    Node,
    NodeKind,
    OpKind,
    UntilExpr,
)
from operonx.ir.plan import Region, ScopePlan, plan_scope, scope_is_inline
from operonx.ir.until import evaluator


def _not_an_op(**_kwargs: Any) -> Any:
    raise AssertionError("sub-graphs and loops are not called as functions")


_FAILED: Any = object()  # an awaited op failed and collect mode recorded it


class _Skip(Exception):
    """Internal: an execution failed under on_error='collect'; its dependents are skipped."""


class Program:
    """Counters shared while building: semaphore slots and collect-buffer ids.

    ``cpu_workers``: the size of the process pool ``bound="cpu"`` ops run in.
    """

    def __init__(self, cpu_workers: int | None = None) -> None:
        self.semaphore_sizes: list[int] = []
        self._next_buffer = 0
        self.cpu_workers = cpu_workers or cpu_pool.default_workers()

    def semaphore(self, size: int) -> int:
        self.semaphore_sizes.append(size)
        return len(self.semaphore_sizes) - 1

    def buffer_id(self) -> int:
        self._next_buffer += 1
        return self._next_buffer


# ------------------------------------------------------------------------- scopes


class ScopeProgram:
    """Runs one scope (graph body) and returns its outputs (END results + write-backs)."""

    def __init__(self, graph: Graph, program: Program, qual: str,
                 transparent: bool = False, sole_instance: bool = True) -> None:
        # ``transparent``: a wrapper scope whose node names do not prefix its bodies' op names.
        # ``sole_instance``: at most one run of this scope is in flight at a time (the top
        # level, or a body run once per run of a node that is itself sole), which lets a
        # generator's frame window stand in for its only consumer's semaphore.
        self.graph = graph
        self.qual = qual
        self.plan: ScopePlan = plan_scope(graph)
        self.inline = scope_is_inline(graph)
        self.result_order = graph.result_keys if graph.kind == "graph" else list(graph.writebacks)
        self.streamed_keys = [k for k, d in graph.result_depths().items() if d > 0
                              and (graph.kind == "graph" or k in graph.writebacks)]
        buffers = collect_buffers(graph, program.buffer_id)
        nodes = {name: NodeProgram(graph, graph.nodes[name], program, qual, buffers,
                                   transparent, sole_instance and not graph.nodes[name].context)
                 for name in self.plan.order}
        self.regions = {ctx: RegionProgram(region, nodes) for ctx, region in
                        self.plan.regions.items()}
        for node in nodes.values():
            node.child = self.regions.get(node.node.out_context) if node.node.is_generator else None
            sole = node.child.sole_awaited if node.child is not None else None
            if node.sole_instance and sole is not None:
                # One driver, so at most ``window`` (= the op's own bound) runs at once.
                sole.skip_semaphore = True
        self.root = self.regions[()]

    def run_sync(self, run: Run, inputs: dict[str, Any], index: tuple[int, ...],
                 span: str | None) -> dict[str, Any]:
        scope = ScopeRun(inputs, self.qual)
        self.root.run_sync(run, Inst(None, scope, index, span))
        return self._outputs(scope)

    async def run_async(self, run: Run, inputs: dict[str, Any], index: tuple[int, ...],
                        span: str | None) -> dict[str, Any]:
        scope = ScopeRun(inputs, self.qual)
        await self.root.run_async(run, Inst(None, scope, index, span))
        return self._outputs(scope)

    def _outputs(self, scope: ScopeRun) -> dict[str, Any]:
        for key in self.streamed_keys:
            frames = scope.streamed.get(key, [])
            frames.sort(key=by_index)  # yield order, nested streams flattened
            scope.plain[key] = [value for _index, value in frames]
        return {k: scope.plain[k] for k in self.result_order if k in scope.plain}


# ------------------------------------------------------------------------ regions


class RegionProgram:
    """One region's levels. ``run_sync`` is only used when the region never awaits."""

    def __init__(self, region: Region, nodes: Mapping[str, NodeProgram]) -> None:
        self.region = region
        self.inline = region.inline
        self.window = region.window
        self.levels = [[nodes[n] for n in level] for level in region.levels]
        self.flat = [n for level in self.levels for n in level]
        # The common fan-out shape: a frame is one awaited op. Its frames skip the level loop.
        only = self.flat[0] if len(self.flat) == 1 else None
        self.sole_awaited = only if only is not None and only.awaited else None

    def run_sync(self, run: Run, inst: Inst) -> None:
        for node in self.flat:
            if inst.failed is not None and node.depends_on_failed(inst):
                inst.mark_failed(node.name)
            elif node.plain_sync:
                node.call_plain(run, inst)
            else:
                node.call_sync(run, inst)

    async def run_async(self, run: Run, inst: Inst) -> None:
        unbuffered = run.backlog is None
        for level in self.levels:
            pending: list[NodeProgram] = []
            for node in level:
                if inst.failed is not None and node.depends_on_failed(inst):
                    inst.mark_failed(node.name)
                elif node.plain_sync:
                    node.call_plain(run, inst)
                elif unbuffered and node.inline:
                    node.call_sync(run, inst)
                else:
                    pending.append(node)
            if len(pending) == 1:
                await pending[0].call_async(run, inst)
            elif pending:
                async with asyncio.TaskGroup() as group:
                    for node in pending:
                        group.create_task(node.call_async(run, inst))


# -------------------------------------------------------------------------- nodes


class NodeProgram:
    """Executes one node: binds its arguments, runs it, publishes what it produced."""

    child: RegionProgram | None

    def __init__(self, graph: Graph, node: Node, program: Program, qual: str,
                 buffers: BufferIds,
                 transparent: bool = False, sole_instance: bool = False) -> None:
        self.node = node
        self.sole_instance = sole_instance
        self.skip_semaphore = False
        self.name = node.name
        self.qualname = qual + node.name
        self.loc = node.loc
        self.child = None
        region_deps = plan_scope(graph).regions[node.context].deps[node.name]
        self.deps = tuple(region_deps)
        self.constants = {k: s.value for k, s in node.args.items() if isinstance(s, Const)}
        self.getters = [(k, getter(graph, node, s, buffers)) for k, s in node.args.items()
                        if not isinstance(s, Const)]
        self.needed, self.collectors, self.plain_results, self.streamed_results = \
            publication(graph, node, buffers)
        self.needed_set = frozenset(self.needed)
        self.feeds_more = bool(self.collectors or self.plain_results or self.streamed_results)
        op = node.op
        self.fn: Callable[..., Any] = op.fn if op is not None else _not_an_op
        self.plain_sync = op is not None and op.kind is OpKind.SYNC and op.bound is None
        # An async def, or a def run in a worker process: one awaited call per execution.
        self.awaited = op is not None and (op.kind is OpKind.ASYNC or op.bound == "cpu")
        # A bound="cpu" op runs in a worker process (operonx.engine.cpu_pool).
        self.cpu: cpu_pool.CpuOp | None = None
        if op is not None and op.bound == "cpu":
            self.cpu = cpu_pool.CpuOp(op.fn, program.cpu_workers, node.name, node.loc)
        self.semaphore: int | None = None
        if op is not None and (op.kind in (OpKind.ASYNC, OpKind.ASYNCGEN) or op.bound == "cpu"):
            self.semaphore = program.semaphore(node.max_concurrent)
        self.body: ScopeProgram | None = None
        if node.body is not None:
            self.body = ScopeProgram(node.body, program, "" if transparent
                                     else f"{self.qualname}.", sole_instance=sole_instance)
        self.until: Callable[[Mapping[str, Any]], Any] | None = None
        if node.kind is NodeKind.LOOP:
            assert node.body is not None
            until = node.body.until
            self.until = evaluator(until) if isinstance(until, UntilExpr) else until
        self._inline_cache: bool | None = None

    @property
    def inline(self) -> bool:
        """Whether this node can run to completion without awaiting (when nobody streams)."""
        if self._inline_cache is None:
            op = self.node.op
            if op is not None:
                self._inline_cache = self.plain_sync or (
                    op.kind is OpKind.GEN and self.child is not None and self.child.inline)
            else:
                assert self.body is not None
                self._inline_cache = self.body.inline
        return self._inline_cache

    def depends_on_failed(self, inst: Inst) -> bool:
        failed = inst.failed
        return failed is not None and any(d in failed for d in self.deps)

    def bind(self, inst: Inst) -> dict[str, Any]:
        kwargs = dict(self.constants)
        for name, get in self.getters:
            kwargs[name] = get(inst)
        return kwargs

    # -- failures

    def failed(self, run: Run, inst: Inst, index: tuple[int, ...], exc: BaseException) -> None:
        """Raise-mode: remember and raise the OpError. Collect-mode: record it, mark this node
        failed in ``inst`` (so its dependents are skipped) and return."""
        if isinstance(exc, OpError) and not run.collect_errors:
            run.fail(exc)
            raise exc
        err = exc if isinstance(exc, LoopLimitExceeded) else op_error(self.qualname, index, exc)
        if not run.collect_errors:
            run.fail(err)
            raise err
        run.record(self.qualname, index, exc)
        inst.mark_failed(self.name)

    def check(self, out: Any) -> dict[str, Any]:
        """The return value as an outputs dict; raise TypeError/KeyError saying why it is not."""
        if out is None:
            out = {}
        elif type(out) is not dict and not isinstance(out, dict):
            raise TypeError(f"op {self.qualname!r} returned {type(out).__name__}, "
                            "not a dict of outputs")
        for key in self.needed:
            if key not in out:
                raise KeyError(f"op {self.qualname!r} returned no output {key!r}")
        return out  # type: ignore[no-any-return]

    def publish(self, inst: Inst, out: dict[str, Any]) -> None:
        """Store ``out`` where readers find it: this instance, collect buffers, scope results."""
        inst.vals[self.name] = out
        if self.feeds_more:
            self._publish_further(inst, out)

    def _publish_further(self, inst: Inst, out: dict[str, Any]) -> None:
        for buffer_id, key, ordered in self.collectors:
            parent = inst.parent
            assert parent is not None
            bucket = parent.bufs.get(buffer_id)
            if bucket is None:
                bucket = parent.bufs[buffer_id] = []
            bucket.append((inst.index, out[key]) if ordered else out[key])
        scope = inst.scope
        for result_key, key in self.plain_results:
            scope.plain[result_key] = out[key]
        for result_key, key in self.streamed_results:
            frames = scope.streamed.get(result_key)
            if frames is None:
                frames = scope.streamed[result_key] = []
            frames.append((inst.index, out[key]))

    def _valid_outputs(self, run: Run, inst: Inst, out: Any,
                       index: tuple[int, ...]) -> dict[str, Any] | None:
        """``out`` as an outputs dict; None when collect mode skipped an invalid one."""
        if type(out) is dict and self.needed_set <= out.keys():
            return out  # the fast path: a dict with every key someone reads
        try:
            return self.check(out)
        except (TypeError, KeyError) as exc:
            self.failed(run, inst, index, exc)
            return None

    # -- execution

    def call_sync(self, run: Run, inst: Inst) -> None:
        kind = self.node.kind
        try:
            if kind is NodeKind.OP:
                if self.plain_sync:
                    self.call_plain(run, inst)
                else:
                    self._drive_sync(run, inst)
            elif kind is NodeKind.GRAPH:
                assert self.body is not None
                out = self.body.run_sync(run, self.bind(inst), inst.index, inst.span)
                self._publish_body(run, inst, out)
            else:
                self._loop_sync(run, inst)
        except _Skip:
            pass

    async def call_async(self, run: Run, inst: Inst) -> None:
        kind = self.node.kind
        try:
            if kind is NodeKind.OP:
                assert self.node.op is not None
                op_kind = self.node.op.kind
                if self.plain_sync:
                    self.call_plain(run, inst)
                elif op_kind in (OpKind.SYNC, OpKind.ASYNC):
                    await self._call_awaited(run, inst)
                else:
                    await self._drive_async(run, inst)
            elif kind is NodeKind.GRAPH:
                assert self.body is not None
                out = await self.body.run_async(run, self.bind(inst), inst.index, inst.span)
                self._publish_body(run, inst, out)
            else:
                await self._loop_async(run, inst)
        except _Skip:
            pass

    def call_plain(self, run: Run, inst: Inst) -> None:
        """A plain sync op, inline: the hottest path of the interpreter, so kept flat."""
        emit = run.emit
        start = time.time_ns() if emit is not None else 0
        kwargs = self.constants.copy() if self.constants else {}
        for name, get in self.getters:
            kwargs[name] = get(inst)
        try:
            out = self.fn(**kwargs)
        except Exception as exc:
            self.failed(run, inst, inst.index, exc)
            return
        if type(out) is not dict or not self.needed_set <= out.keys():
            out = self._valid_outputs(run, inst, out, inst.index)
            if out is None:
                return
        inst.vals[self.name] = out
        if self.feeds_more:
            self._publish_further(inst, out)
        if emit is not None:
            run.frame(self.qualname, out, inst.index, inst.span, start)

    async def _call_awaited(self, run: Run, inst: Inst) -> None:
        op = self.node.op
        assert op is not None and self.semaphore is not None
        semaphore = run.semaphores[self.semaphore]
        assert semaphore is not None
        kwargs = self.bind(inst)
        if self.skip_semaphore:
            out = await self._await_op(run, inst, kwargs)
        else:
            async with semaphore:
                out = await self._await_op(run, inst, kwargs)
        if out is _FAILED:
            return
        start, out = out
        out = self._valid_outputs(run, inst, out, inst.index)
        if out is not None:
            self.publish(inst, out)
            if run.emit is not None:
                run.frame(self.qualname, out, inst.index, inst.span, start)

    async def _await_op(self, run: Run, inst: Inst, kwargs: dict[str, Any]) -> Any:
        """(start time, return value) of one awaited call, or _FAILED once it is recorded."""
        start = time.time_ns() if run.emit is not None else 0
        try:
            if self.cpu is not None:
                out = await self.cpu(kwargs)  # cancelling this stops the worker running it
            else:
                out = await self.fn(**kwargs)
        except Exception as exc:
            self.failed(run, inst, inst.index, exc)
            return _FAILED
        return start, out

    def _new_frame(self, run: Run, inst: Inst, position: int, item: Any,
                   start_ns: int) -> Inst | None:
        """One yield: the child instance it runs in, or None when collect-mode skipped it."""
        index = (*inst.index, position)
        out = item
        if type(out) is not dict or not self.needed_set <= out.keys():  # else: the fast path
            out = self._valid_outputs(run, inst, item, index)
            if out is None:
                return None
        span = inst.span
        if run.emit is not None:
            span = run.frame(self.qualname, out, index, inst.span, start_ns)
        child = Inst(inst, inst.scope, index, span)
        child.vals[self.name] = out
        if self.feeds_more:
            self._publish_further(child, out)
        return child

    def _drive_sync(self, run: Run, inst: Inst) -> None:
        """A sync generator whose frames run inline: each yield runs its region to completion."""
        assert self.child is not None
        child_region = self.child
        emitting = run.emit is not None
        gen = self._start_generator(run, inst)
        position = 0
        try:
            while True:
                start = time.time_ns() if emitting else 0
                try:
                    item = next(gen)
                except StopIteration:
                    break
                except Exception as exc:
                    self.failed(run, inst, (*inst.index, position), exc)
                    break  # collect mode: the stream ends here; yielded frames count
                child = self._new_frame(run, inst, position, item, start)
                position += 1
                if child is not None:  # None: collect mode skipped a malformed yield
                    child_region.run_sync(run, child)
        finally:
            gen.close()

    def _start_generator(self, run: Run, inst: Inst) -> Any:
        try:
            return self.fn(**self.bind(inst))
        except Exception as exc:
            self.failed(run, inst, inst.index, exc)
            raise _Skip() from None

    async def _drive_async(self, run: Run, inst: Inst) -> None:
        """A generator whose frames may await: each frame is a task, at most ``window`` at once."""
        assert self.child is not None and self.node.op is not None
        child_region = self.child
        # An inline child never awaits on its own: run it in place, no task per frame.
        # (Streaming to a consumer still goes through run_async so nested streams can pause.)
        inline = child_region.inline
        unbuffered = run.backlog is None
        window = asyncio.Semaphore(child_region.window)
        sole = child_region.sole_awaited

        def release(_frame: asyncio.Task[None]) -> None:
            window.release()

        is_async = self.node.op.kind is OpKind.ASYNCGEN
        op_semaphore = run.semaphores[self.semaphore] if self.semaphore is not None else None
        if op_semaphore is not None:
            await op_semaphore.acquire()
        try:
            gen = self._start_generator(run, inst)
            async with asyncio.TaskGroup() as group:
                try:
                    position = 0
                    while True:
                        start = time.time_ns() if run.emit is not None else 0
                        try:
                            item = await gen.__anext__() if is_async else next(gen)
                        except (StopIteration, StopAsyncIteration):
                            break
                        except Exception as exc:
                            self.failed(run, inst, (*inst.index, position), exc)
                            break
                        child = self._new_frame(run, inst, position, item, start)
                        position += 1
                        if child is None:  # collect mode skipped a malformed yield
                            continue
                        if inline and unbuffered:
                            child_region.run_sync(run, child)
                        elif inline:
                            await child_region.run_async(run, child)
                        else:
                            await window.acquire()
                            frame = (sole.call_async(run, child) if sole is not None
                                     else child_region.run_async(run, child))
                            group.create_task(frame).add_done_callback(release)
                        if not unbuffered:
                            await run.wait_for_consumer()
                finally:
                    if is_async:
                        await gen.aclose()
                    else:
                        gen.close()
        finally:
            if op_semaphore is not None:
                op_semaphore.release()

    def _publish_body(self, run: Run, inst: Inst, out: dict[str, Any]) -> None:
        missing = [k for k in self.needed if k not in out]
        if missing:  # only after collect-mode failures inside the body: skip, already recorded
            inst.mark_failed(self.name)
            raise _Skip()
        self.publish(inst, out)

    def _loop_start(self, inst: Inst) -> dict[str, Any]:
        assert self.node.body is not None
        return {**self.node.body.state, **self.bind(inst)}

    def _loop_step(self, run: Run, inst: Inst, state: dict[str, Any], out: dict[str, Any],
                   iteration: int, errors_before: int) -> bool:
        """Apply one iteration's write-backs; True when ``until`` says stop."""
        assert self.until is not None and self.node.body is not None
        if len(run.errors) > errors_before:  # collect mode: a body op failed; the loop fails
            inst.mark_failed(self.name)
            raise _Skip()
        state.update(out)
        try:
            if self.until(state):
                return True
        except Exception as exc:
            self.failed(run, inst, inst.index, exc)
            raise _Skip() from None
        limit = self.node.body.max_iterations
        if iteration >= limit:
            err = LoopLimitExceeded(f"loop {self.qualname!r} reached max_iterations={limit} "
                                    "without until becoming true", self.qualname, limit)
            self.failed(run, inst, inst.index, err)
            raise _Skip()
        return False

    def _loop_sync(self, run: Run, inst: Inst) -> None:
        assert self.body is not None
        state = self._loop_start(inst)
        iteration = 0
        while True:
            iteration += 1
            errors_before = len(run.errors)
            out = self.body.run_sync(run, dict(state), inst.index, inst.span)
            if self._loop_step(run, inst, state, out, iteration, errors_before):
                break
        self.publish(inst, state)

    async def _loop_async(self, run: Run, inst: Inst) -> None:
        assert self.body is not None
        state = self._loop_start(inst)
        iteration = 0
        while True:
            iteration += 1
            errors_before = len(run.errors)
            out = await self.body.run_async(run, dict(state), inst.index, inst.span)
            if self._loop_step(run, inst, state, out, iteration, errors_before):
                break
        self.publish(inst, state)
