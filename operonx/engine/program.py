"""The interpreter's program: executors built once per Engine from the IR and its plan.

Building resolves everything that does not change between runs — where each
argument is read from, which keys each op must return, which collect buffers
and result keys its outputs feed — so a run only calls functions and moves
values. ``plan_scope`` decides grouping and order (see ``operonx.ir.plan``);
this module only executes it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping
from typing import Any

from operonx.engine import cpu_pool
from operonx.engine.cpu_op import CpuOp
from operonx.engine.fanout import FanOut
from operonx.engine.gates import FAIL, RUN, Gate, ScopeGates
from operonx.engine.policies import Exhausted, NodePolicy, stepper
from operonx.engine.routes import BufferIds, by_index, collect_buffers, getter, publication
from operonx.engine.runtime import (
    OP_FAILURES,
    Inst,
    Run,
    ScopeRun,
    aclose_generator,
    close_generator,
    is_op_failure,
    op_error,
)
from operonx.errors import LoopLimitExceeded
from operonx.ir.branching import effective
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

    ``cpu_workers``: the size of the process pool ``bound="cpu"`` ops run in (default:
    one per core).
    """

    def __init__(self, cpu_workers: int | None = None) -> None:
        self.semaphore_sizes: list[int] = []
        self._next_buffer = 0
        self.cpu_workers = cpu_pool.pool_size(cpu_workers)  # ValueError unless > 0

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
        if graph.skippable:  # branches (SPEC §8): gates before the regions read them
            gates = ScopeGates(graph, qual)
            for node in nodes.values():
                node.gate = gates.gate(node.node)
        specs = [*(graph.results.items() if graph.kind == "graph" else ()),
                 *graph.writebacks.items()]
        # depth-0 result key -> its producer, to tell a failed producer from a skipped one
        self.result_producers = {k: spec.node for k, spec in specs if spec.depth == 0}
        # streamed result key -> the node at depth 0 that starts its stream: when a branch
        # skipped that generator, the key is absent rather than [] (SPEC §8)
        self.stream_starters = {k: effective(graph.nodes, spec.node, ())[1]
                                for k, spec in specs if spec.depth > 0}
        self.regions = {ctx: RegionProgram(region, nodes) for ctx, region in
                        self.plan.regions.items()}
        for node in nodes.values():
            node.child = self.regions.get(node.node.out_context) if node.node.is_generator else None
            sole = node.child.sole_awaited if node.child is not None else None
            if node.sole_instance and sole is not None:
                # One driver, so at most ``window`` (= the op's own bound) runs at once.
                sole.skip_semaphore = True
        self.root = self.regions[()]
        self.bounded: bool = self.root.bounded

    def run_sync(self, run: Run, inputs: dict[str, Any], index: tuple[int, ...],
                 span: str | None, failed_keys: list[str] | None = None) -> dict[str, Any]:
        scope = ScopeRun(inputs, self.qual)
        root = Inst(None, scope, index, span)
        self.root.run_sync(run, root)
        return self._outputs(scope, root, failed_keys)

    async def run_async(self, run: Run, inputs: dict[str, Any], index: tuple[int, ...],
                        span: str | None, failed_keys: list[str] | None = None
                        ) -> dict[str, Any]:
        scope = ScopeRun(inputs, self.qual)
        root = Inst(None, scope, index, span)
        await self.root.run_async(run, root)
        return self._outputs(scope, root, failed_keys)

    def _outputs(self, scope: ScopeRun, root: Inst,
                 failed_keys: list[str] | None) -> dict[str, Any]:
        """The results; ``failed_keys`` (when given) gets the absent keys whose producer failed
        (the others were skipped by a branch)."""
        for key in self.streamed_keys:
            if root.skipped is not None and self.stream_starters[key] in root.skipped:
                continue
            frames = scope.streamed.get(key, [])
            frames.sort(key=by_index)  # yield order, nested streams flattened
            scope.plain[key] = [value for _index, value in frames]
        if failed_keys is not None and root.failed:
            failed_keys.extend(k for k, node in self.result_producers.items()
                               if node in root.failed)
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
        self.sole_awaited = (only if only is not None and only.awaited and only.gate is None
                             else None)
        # No generator or loop in it: an instance is a bounded amount of work (see
        # NodeProgram.bounded), so running it without a chance to pause is fair.
        self.bounded: bool = all(node.bounded for node in self.flat)

    def run_sync(self, run: Run, inst: Inst) -> None:
        for node in self.flat:
            if inst.failed is not None and node.depends_on_failed(inst):
                inst.mark_failed(node.name)
            elif node.gate is not None and node.gated_out(run, inst):
                pass
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
                elif node.gate is not None and node.gated_out(run, inst):
                    pass
                elif node.plain_sync:
                    node.call_plain(run, inst)
                elif unbuffered and node.inline and node.bounded:
                    node.call_sync(run, inst)
                elif unbuffered and node.inline:
                    await node.call_async(run, inst)  # in order, as inline; pauses in its loops
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
        self.gate: Gate | None = None  # set by ScopeProgram for nodes a branch may skip
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
        # Timeout, retry, cache (SPEC §9): such ops take the _call_policy_* paths.
        self.policy = NodePolicy(op) if op is not None and op.has_policy else None
        sync_def = op is not None and op.kind is OpKind.SYNC and op.bound is None
        self.plain_sync = sync_def and self.policy is None
        # A sync op with a cache or retries that do not wait: still inline, via the policy.
        self.inline_policy = sync_def and self.policy is not None and op is not None \
            and op.runs_inline
        # An async def, a def run in the thread pool, or a sync op whose retries wait:
        # one awaited call per execution.
        self.awaited = op is not None and (op.kind is OpKind.ASYNC or op.bound == "cpu" or (
            sync_def and not op.runs_inline))
        # An execution is ``await fn(**kwargs)``, or that through the node's policy: the
        # fan-out pool makes that call itself (operonx.engine.fanout).
        self.direct_await = op is not None and op.kind is OpKind.ASYNC and op.bound is None
        # A bound="cpu" op runs in a worker process (operonx.engine.cpu_pool).
        self.cpu: CpuOp | None = None
        if op is not None and op.bound == "cpu":
            self.cpu = CpuOp(op.fn, program.cpu_workers, node.name, node.loc)
        self.semaphore: int | None = None
        if op is not None and (self.awaited or op.kind is OpKind.ASYNCGEN):
            self.semaphore = program.semaphore(node.max_concurrent)
        self.body: ScopeProgram | None = None
        if node.body is not None:
            self.body = ScopeProgram(node.body, program, "" if transparent
                                     else f"{self.qualname}.", sole_instance=sole_instance)
        # A bounded amount of work per run: no generator or loop drives it (a plain or async
        # op, or a sub-graph of those). Anything else runs through the async path, whose
        # drive loops pause for the event loop (``Run.checkpoint``) so a long sync run stays fair.
        self.bounded: bool = (node.kind is NodeKind.OP and not node.is_generator) or (
            self.body is not None and node.kind is NodeKind.GRAPH and self.body.bounded)
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
                self._inline_cache = self.plain_sync or self.inline_policy or (
                    op.kind is OpKind.GEN and self.child is not None and self.child.inline)
            else:
                assert self.body is not None
                self._inline_cache = self.body.inline
        return self._inline_cache

    def gated_out(self, run: Run, inst: Inst) -> bool:
        """Apply the branch gate: True when the node is skipped (or failed) here, not run."""
        assert self.gate is not None
        verdict = self.gate(run, inst)
        if verdict == RUN:
            return False
        if verdict == FAIL:  # its branch could not be decided (collect mode): fail with it
            inst.mark_failed(self.name)
        else:
            inst.mark_skipped(self.name)
        return True

    def depends_on_failed(self, inst: Inst) -> bool:
        failed = inst.failed
        return failed is not None and any(d in failed for d in self.deps)

    def bind(self, inst: Inst) -> dict[str, Any]:
        kwargs = dict(self.constants)
        for name, get in self.getters:
            kwargs[name] = get(inst)
        return kwargs

    # -- failures

    def failed(self, run: Run, inst: Inst, index: tuple[int, ...], exc: BaseException,
               attempts: int | None = None) -> None:
        """An execution of this node raised ``exc`` (whatever it is: an ``OpError`` an op
        raises is wrapped like anything else). Raise mode: remember and raise its OpError.
        Collect mode: record it, mark this node failed in ``inst`` (so its dependents are
        skipped) and return. ``attempts``: how many runs an op with a retry policy made
        (the message says so)."""
        self._fail(run, inst, index, exc, op_error(self.qualname, index, exc, attempts),
                   attempts)

    def _fail(self, run: Run, inst: Inst, index: tuple[int, ...], exc: BaseException,
              error: BaseException, attempts: int | None = None) -> None:
        if not run.collect_errors:
            run.fail(error)
            raise error
        run.record(self.qualname, index, exc, attempts)
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
        """A bounded inline node on the caller's stack: a plain op or a sub-graph of them.

        Generators and loops always take the async path (``call_async``), whose drive
        loops can pause for the event loop.
        """
        assert self.bounded and self.inline
        if self.plain_sync:
            self.call_plain(run, inst)
            return
        if self.inline_policy:
            self._call_policy_sync(run, inst)
            return
        assert self.body is not None
        try:
            failed_keys: list[str] = []
            out = self.body.run_sync(run, self.bind(inst), inst.index, inst.span, failed_keys)
            self._publish_body(run, inst, out, failed_keys)
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
                elif self.inline_policy:
                    self._call_policy_sync(run, inst)
                elif self.policy is not None and op_kind in (OpKind.SYNC, OpKind.ASYNC):
                    await self._call_policy_async(run, inst)
                elif op_kind in (OpKind.SYNC, OpKind.ASYNC):
                    await self._call_awaited(run, inst)
                else:
                    await self._drive_async(run, inst)
            elif kind is NodeKind.GRAPH:
                assert self.body is not None
                failed_keys: list[str] = []
                out = await self.body.run_async(run, self.bind(inst), inst.index, inst.span,
                                                failed_keys)
                self._publish_body(run, inst, out, failed_keys)
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
        except OP_FAILURES as exc:  # a sync call: any CancelledError is the op's own
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
        self._publish_outcome(run, inst, out, start, 1, False)

    async def _await_op(self, run: Run, inst: Inst, kwargs: dict[str, Any]) -> Any:
        """(start time, return value) of one awaited call, or _FAILED once it is recorded."""
        start = time.time_ns() if run.emit is not None else 0
        try:
            out = await self._invoke(kwargs)
        except OP_FAILURES as exc:
            if not is_op_failure(exc):
                raise  # the run itself is being cancelled
            self.failed(run, inst, inst.index, exc)
            return _FAILED
        return start, out

    # -- policies (SPEC §9): one frame per execution, however many attempts it took

    def _call_policy_sync(self, run: Run, inst: Inst) -> None:
        """A sync op with a cache or retries that do not wait, inline on the event loop."""
        assert self.policy is not None
        start = time.time_ns() if run.emit is not None else 0
        try:
            outcome = self.policy.call_sync(self.fn, self.bind(inst))
        except Exhausted as failure:
            self.failed(run, inst, inst.index, failure.error, failure.attempts)
            return
        self._publish_outcome(run, inst, outcome.value, start, outcome.attempts, outcome.cached)

    async def _call_policy_async(self, run: Run, inst: Inst) -> None:
        """An awaited op with a timeout, retries or a cache, under its semaphore."""
        assert self.policy is not None and self.semaphore is not None
        semaphore = run.semaphores[self.semaphore]
        assert semaphore is not None
        start = time.time_ns() if run.emit is not None else 0
        kwargs = self.bind(inst)
        try:
            if self.skip_semaphore:
                outcome = await self.policy.call_async(self._invoke, kwargs)
            else:
                async with semaphore:
                    outcome = await self.policy.call_async(self._invoke, kwargs)
        except Exhausted as failure:
            self.failed(run, inst, inst.index, failure.error, failure.attempts)
            return
        self._publish_outcome(run, inst, outcome.value, start, outcome.attempts, outcome.cached)

    async def _invoke(self, kwargs: dict[str, Any]) -> Any:
        """One attempt of an awaited op: the call itself, no failure handling."""
        op = self.node.op
        assert op is not None
        if self.cpu is not None:
            return await self.cpu(kwargs)  # cancelling this stops the worker running it
        if op.kind is OpKind.ASYNC:
            return await self.fn(**kwargs)
        return self.fn(**kwargs)  # a sync op whose retries wait (with asyncio.sleep)

    def _publish_outcome(self, run: Run, inst: Inst, value: Any, start: int, attempts: int,
                         cached: bool) -> None:
        out = self._valid_outputs(run, inst, value, inst.index)
        if out is None:
            return
        self.publish(inst, out)
        if run.emit is not None:
            run.frame(self.qualname, out, inst.index, inst.span, start, attempts, cached)

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

    def _start_generator(self, run: Run, inst: Inst) -> Any:
        try:
            return self.fn(**self.bind(inst))
        except OP_FAILURES as exc:
            self.failed(run, inst, inst.index, exc)
            raise _Skip() from None

    async def _drive_async(self, run: Run, inst: Inst) -> None:
        """A generator on the async path: its frames on a worker pool, or in turn if inline."""
        assert self.child is not None and self.node.op is not None
        is_async = self.node.op.kind is OpKind.ASYNCGEN
        op_semaphore = run.semaphores[self.semaphore] if self.semaphore is not None else None
        if op_semaphore is not None:
            await op_semaphore.acquire()
        try:
            gen = self._start_generator(run, inst)
            child = self.child
            try:
                if not child.inline:  # at most ``window`` frames in flight (fanout.py)
                    await FanOut(self, run, inst, gen).drive()
                elif run.backlog is None and not is_async and child.bounded:
                    await self._drive_in_place(run, inst, gen)
                else:
                    await self._drive_in_turn(run, inst, gen, is_async)
            except BaseException as exc:
                if is_async:
                    await aclose_generator(gen, exc)
                else:
                    close_generator(gen, exc)
                raise
        finally:
            if op_semaphore is not None:
                op_semaphore.release()

    async def _drive_in_turn(self, run: Run, inst: Inst, gen: Any, is_async: bool) -> None:
        """Frames that never await on their own: each runs to its end before the next yield.

        This loop can suspend: for an async generator, for a ``stream`` consumer
        (backpressure), for frames holding a generator or loop of their own, and every
        ``SLICE_NS`` of work (``Run.checkpoint``), so a long run stays fair to the event loop.
        """
        assert self.child is not None and self.node.op is not None
        child_region = self.child
        unbuffered = run.backlog is None
        step_timeout = self.node.op.timeout  # per step of an async generator (SPEC §9)
        advance = stepper(gen, step_timeout) if is_async else None
        position = 0
        while True:
            start = time.time_ns() if run.emit is not None else 0
            try:
                item = await advance() if advance is not None else next(gen)
            except (StopIteration, StopAsyncIteration):
                break
            except OP_FAILURES as exc:
                if not is_op_failure(exc):
                    raise  # the run itself is being cancelled
                self.failed(run, inst, (*inst.index, position), exc)
                break  # collect mode: the stream ends here; yielded frames count
            child = self._new_frame(run, inst, position, item, start)
            position += 1
            if child is not None:  # None: collect mode skipped a malformed yield
                await child_region.run_async(run, child)
            if not unbuffered:
                await run.wait_for_consumer()
            run.ticks -= 1
            if not run.ticks:
                await run.checkpoint()

    async def _drive_in_place(self, run: Run, inst: Inst, gen: Any) -> None:
        """The hot case of ``_drive_in_turn``: a sync generator whose frames are bounded
        work, run with ``run_sync`` (no coroutine per frame), for ``run`` (no consumer to
        wait for).

        The generator is read in batches of ``run.ticks`` yields (``islice`` counts them in
        C): the fairness checkpoint between batches then costs nothing per frame. The frames
        hold no drive loop of their own, so this loop's count is the run's meanwhile.
        """
        assert self.child is not None
        child_region = self.child
        emitting = run.emit is not None
        position = 0
        batch_end = 0
        in_frame = False  # tells a failing frame (re-raised) from a failing generator
        try:
            start = time.time_ns() if emitting else 0
            while True:
                batch_end = position + run.ticks
                for item in itertools.islice(gen, run.ticks):
                    in_frame = True
                    child = self._new_frame(run, inst, position, item, start)
                    position += 1
                    if child is not None:  # None: collect mode skipped a malformed yield
                        child_region.run_sync(run, child)
                    in_frame = False
                    if emitting:
                        start = time.time_ns()
                if position < batch_end:
                    break  # the generator is exhausted
                await run.checkpoint()
                if emitting:  # the pause is no part of the next yield's span
                    start = time.time_ns()
        except OP_FAILURES as exc:
            if in_frame or not is_op_failure(exc):
                raise  # a frame's own failure, or the run being cancelled at a checkpoint
            self.failed(run, inst, (*inst.index, position), exc)
            # collect mode: the stream ends here; yielded frames count
        finally:
            run.ticks = max(batch_end - position, 1)  # what this loop did not use

    def _publish_body(self, run: Run, inst: Inst, out: dict[str, Any],
                      failed_keys: list[str]) -> None:
        missing = [k for k in self.needed if k not in out]
        assert self.node.body is not None
        optional = self.node.body.optional_results
        if any(k in failed_keys or k not in optional for k in missing):
            # A producer inside failed (collect mode; already recorded): the node fails.
            inst.mark_failed(self.name)
            raise _Skip()
        if missing:  # keys a branch skipped inside stay absent: their readers skip (SPEC §8)
            self._publish_partial(inst, out)
        else:
            self.publish(inst, out)

    def _publish_partial(self, inst: Inst, out: dict[str, Any]) -> None:
        """``publish`` for a sub-graph's outputs that lack skipped keys: those feed nothing
        (collect buffers and result lists get only the values that exist)."""
        inst.vals[self.name] = out
        parent = inst.parent
        for buffer_id, key, ordered in self.collectors:
            if key in out:
                assert parent is not None
                bucket = parent.bufs.setdefault(buffer_id, [])
                bucket.append((inst.index, out[key]) if ordered else out[key])
        scope = inst.scope
        for result_key, key in self.plain_results:
            if key in out:
                scope.plain[result_key] = out[key]
        for result_key, key in self.streamed_results:
            if key in out:
                scope.streamed.setdefault(result_key, []).append((inst.index, out[key]))

    def _loop_start(self, inst: Inst) -> dict[str, Any]:
        assert self.node.body is not None
        return {**self.node.body.state, **self.bind(inst)}

    def _loop_step(self, run: Run, inst: Inst, state: dict[str, Any], out: dict[str, Any],
                   iteration: int, errors_before: int) -> bool:
        """Apply one iteration's write-backs; True when ``until`` says stop."""
        assert self.until is not None and self.node.body is not None
        assert self.body is not None
        if run.failed_since(errors_before, self.body.qual, inst.index):
            inst.mark_failed(self.name)  # collect mode: an op of this body run failed
            raise _Skip()
        state.update(out)
        try:
            if self.until(state):
                return True
        except OP_FAILURES as exc:
            self.failed(run, inst, inst.index, exc)
            raise _Skip() from None
        limit = self.node.body.max_iterations
        if iteration >= limit:
            err = LoopLimitExceeded(f"loop {self.qualname!r} reached max_iterations={limit} "
                                    "without until becoming true", self.qualname, limit)
            self._fail(run, inst, inst.index, err, err)
            raise _Skip()
        return False

    async def _loop_async(self, run: Run, inst: Inst) -> None:
        """Run the body until ``until`` holds; between iterations it can pause (for a
        ``stream`` consumer, and every ``SLICE_NS`` of work for fairness)."""
        assert self.body is not None
        body = self.body
        unbuffered = run.backlog is None
        in_place = unbuffered and body.inline and body.bounded  # run_sync: no coroutine
        state = self._loop_start(inst)
        index, span = inst.index, inst.span
        iteration = 0
        if in_place:  # the body holds no drive loop: this loop's count is the run's
            check_at = run.ticks
            try:
                while True:
                    iteration += 1
                    errors_before = len(run.errors)
                    out = body.run_sync(run, dict(state), index, span)
                    if self._loop_step(run, inst, state, out, iteration, errors_before):
                        break
                    if iteration == check_at:
                        check_at = iteration + await run.checkpoint()
            finally:
                run.ticks = max(check_at - iteration, 1)  # what this loop did not use
        else:
            while True:
                iteration += 1
                errors_before = len(run.errors)
                out = await body.run_async(run, dict(state), index, span)
                if not unbuffered:
                    await run.wait_for_consumer()
                if self._loop_step(run, inst, state, out, iteration, errors_before):
                    break
                run.ticks -= 1
                if not run.ticks:
                    await run.checkpoint()
        self.publish(inst, state)
