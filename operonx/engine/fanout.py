"""Async fan-out: a generator's frames run on a bounded pool of worker coroutines.

When the frames of a generator await (an ``async def`` consumer, say), each frame
could be a task gated by a window semaphore — a Task, a semaphore round-trip and a
done-callback per frame. Instead, up to ``window`` workers each pull the next frame
from the generator, run it to its end and pull again. What the user sees is the same:

* at most ``window`` frames of one generator instance are in flight, and the
  generator is only resumed when a worker is free (backpressure);
* every op still holds its own ``max_concurrent`` semaphore unless the scope's
  sole-instance rule made the window stand in for it (``NodeProgram.skip_semaphore``);
* frames, indexes, collect buffers (completion order) and errors come from the same
  ``NodeProgram`` methods as on every other path (the direct path for the common
  ``gen -> async op`` shape inlines the few it needs; see ``FanOut._work_direct``);
* the workers live in one ``TaskGroup``: a failure in raise mode cancels the others,
  cancellation from outside reaches every one of them, and the generator is closed
  once they have all stopped.

Workers start lazily: the driver coroutine is the first, and a pull starts another
only when every other worker is busy awaiting its frame. A stream whose frames never
suspend therefore runs on the driver alone, and a short stream starts few workers.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import weakref
from typing import TYPE_CHECKING, Any

from operonx.engine.policies import Exhausted, stepper
from operonx.engine.runtime import OP_FAILURES, Inst, Run, ScopeRun, is_op_failure
from operonx.ir.model import Const, OpKind, OutputRef

if TYPE_CHECKING:
    from operonx.engine.program import NodeProgram


class FanOut:
    """The stream of one generator instance, run by up to ``window`` workers."""

    __slots__ = ("advance", "busy", "ended", "gen", "group", "inst", "lock", "node",
                 "position", "run", "window", "workers")

    def __init__(self, node: NodeProgram, run: Run, inst: Inst, gen: Any) -> None:
        assert node.child is not None and node.node.op is not None
        self.node = node  # the generator's program
        self.run = run
        self.inst = inst  # the instance the generator runs in: the parent of its frames
        self.gen = gen
        self.window = node.child.window
        # Only one worker may be inside an async generator's ``__anext__`` at a time.
        self.lock = asyncio.Lock() if node.node.op.kind is OpKind.ASYNCGEN else None
        # An async generator's next item (within its op's timeout, if it has one).
        self.advance = stepper(gen, node.node.op.timeout) if self.lock is not None else None
        self.position = 0  # the next frame's index within this stream
        self.ended = False  # exhausted, or failed in collect mode: nobody pulls again
        self.workers = 1  # the driver
        self.busy = 0  # workers awaiting a frame (not pulling, not starting)
        self.group: asyncio.TaskGroup | None = None

    async def drive(self) -> None:
        """Run every frame of the stream; return once the last one has finished."""
        async with asyncio.TaskGroup() as group:
            self.group = group
            await self._work()

    # -- pulling frames

    def _pull(self) -> Inst | None:
        """The next frame from a sync generator; None once the stream has ended."""
        node, run, inst = self.node, self.run, self.inst
        emitting = run.emit is not None
        while not self.ended:
            start = time.time_ns() if emitting else 0
            try:
                item = next(self.gen)
            except StopIteration:
                break
            except OP_FAILURES as exc:  # a sync call: any CancelledError is the op's own
                self.ended = True
                node.failed(run, inst, (*inst.index, self.position), exc)  # raise mode: raises
                return None  # collect mode: the stream ends here; yielded frames count
            position = self.position
            self.position = position + 1
            child = node._new_frame(run, inst, position, item, start)
            if child is not None:  # None: collect mode skipped a malformed yield
                return child
        self.ended = True
        return None

    async def _pull_async(self) -> Inst | None:
        """The next frame from an async generator, one worker at a time."""
        assert self.lock is not None
        node, run, inst = self.node, self.run, self.inst
        emitting = run.emit is not None
        async with self.lock:
            while not self.ended:
                start = time.time_ns() if emitting else 0
                assert self.advance is not None
                try:
                    item = await self.advance()
                except StopAsyncIteration:
                    break
                except OP_FAILURES as exc:
                    if not is_op_failure(exc):
                        raise  # the run itself is being cancelled
                    self.ended = True
                    node.failed(run, inst, (*inst.index, self.position), exc)
                    return None
                position = self.position
                self.position = position + 1
                child = node._new_frame(run, inst, position, item, start)
                if child is not None:
                    return child
            self.ended = True
            return None

    async def _next(self) -> Inst | None:
        if self.run.backlog is not None:
            await self.run.wait_for_consumer()  # a slow ``stream`` consumer holds the producer
        return self._pull() if self.lock is None else await self._pull_async()

    def _more_workers(self) -> None:
        """Start a worker when every other one is busy awaiting: the stream keeps moving.

        Once the pool is full ``busy`` is not read again (the direct path stops counting).
        """
        if self.busy == self.workers - 1 and self.workers < self.window:
            assert self.group is not None
            self.workers += 1
            self.group.create_task(self._work())

    # -- running frames

    async def _work(self) -> None:
        direct = _direct_plan(self.node) if self.lock is None and self.run.emit is None else None
        if direct is not None:
            await self._work_direct(direct)
        else:
            await self._work_frames()

    async def _work_frames(self) -> None:
        """Frames of any shape: each runs its region's levels (or its one awaited op)."""
        run = self.run
        region = self.node.child
        assert region is not None
        sole = region.sole_awaited
        simple = self.lock is None and run.backlog is None
        while True:
            child = self._pull() if simple else await self._next()
            if child is None:
                return
            self._more_workers()
            self.busy += 1
            if sole is not None:
                await sole.call_async(run, child)
            else:
                await region.run_async(run, child)
            self.busy -= 1
            run.ticks -= 1
            if not run.ticks:  # fairness, should the frames never suspend
                await run.checkpoint()

    async def _work_direct(self, plan: _DirectPlan) -> None:
        """The common fan-out, ``gen -> async op``, with no per-frame instance or coroutine.

        What ``_new_frame`` + ``NodeProgram.call_async`` do, specialised: the op's
        arguments are the yielded dict's keys plus values fixed for the whole stream, and
        its outputs go straight to the lists that collect them. Failures build the frame's
        instance after all and go through the same ``failed``/``_valid_outputs``.
        """
        gen_node, op, run, inst = self.node, plan.op, self.run, self.inst
        gen, fn = self.gen, op.fn
        gen_needed, needed = gen_node.needed_set, op.needed_set
        # Most ops have one key someone reads: ``in`` is much cheaper than a subset test.
        gen_key = next(iter(gen_needed)) if len(gen_needed) == 1 else None
        out_key = next(iter(needed)) if len(needed) == 1 else None
        base_index, scope, span = inst.index, inst.scope, inst.span
        assert op.semaphore is not None
        semaphore = None if op.skip_semaphore else run.semaphores[op.semaphore]
        kwargs_template = plan.kwargs_template(inst)
        from_item, window = plan.from_item, self.window
        only_arg, only_key = from_item[0] if len(kwargs_template) == len(from_item) == 1 \
            else (None, None)
        # An op with a timeout, retries or a cache runs each execution through its policy
        # (which takes the keyword arguments); when nothing fails that is the op's call.
        policy, invoke = op.policy, op._invoke
        positional = plan.positional and policy is None  # fn(value) binds like fn(arg=value)
        collect_into = plan.collect_into(inst)
        results_into = plan.results_into(scope)
        only_result, only_result_key = results_into[0] if len(results_into) == 1 \
            else (None, None)
        # Each worker counts its own frames: they interleave at every await, so a shared
        # count would cost an attribute update per frame for nothing.
        ticks = run.ticks
        while not self.ended:
            try:
                item = next(gen)
            except StopIteration:
                self.ended = True
                return
            except OP_FAILURES as exc:  # a sync call: any CancelledError is the op's own
                self.ended = True
                gen_node.failed(run, inst, (*base_index, self.position), exc)
                return  # collect mode: the stream ends here; yielded frames count
            position = self.position
            self.position = position + 1
            index = (*base_index, position) if base_index else (position,)
            if type(item) is not dict or not (gen_key in item if gen_key is not None
                                              else gen_needed <= item.keys()):
                item = gen_node._valid_outputs(run, inst, item, index)
                if item is None:  # collect mode skipped a malformed yield
                    continue
            if positional:
                value = item[only_key]
            elif only_arg is not None:  # the op's one argument is a key of the yield
                kwargs = {only_arg: item[only_key]}
            else:
                kwargs = kwargs_template.copy()
                for arg, key in from_item:
                    kwargs[arg] = item[key]
            growing = self.workers < window  # once the pool is full, nobody counts
            if growing:
                self._more_workers()
                self.busy += 1
            try:
                if semaphore is not None:
                    await semaphore.acquire()
                try:
                    if policy is None:
                        out = await (fn(value) if positional else fn(**kwargs))
                    else:
                        out = (await policy.call_async(invoke, kwargs)).value
                finally:
                    if semaphore is not None:
                        semaphore.release()
            except Exhausted as failure:  # the policy's last attempt failed
                if growing:
                    self.busy -= 1
                op.failed(run, Inst(inst, scope, index, span), index, failure.error,
                          failure.attempts)
                continue
            except OP_FAILURES as exc:
                if not is_op_failure(exc):
                    raise  # the run itself is being cancelled
                if growing:
                    self.busy -= 1
                op.failed(run, Inst(inst, scope, index, span), index, exc)  # raise mode: raises
                continue
            if growing:
                self.busy -= 1
            if type(out) is not dict or not (out_key in out if out_key is not None
                                             else needed <= out.keys()):
                out = op._valid_outputs(run, Inst(inst, scope, index, span), out, index)
                if out is None:
                    continue
            if collect_into:
                for bucket, key, ordered in collect_into:
                    bucket.append((index, out[key]) if ordered else out[key])
            if only_result is not None:  # the op feeds one result key (the common case)
                only_result.append((index, out[only_result_key]))
            else:
                for frames, key in results_into:
                    frames.append((index, out[key]))
            ticks -= 1
            if not ticks:  # fairness, should the op never suspend
                ticks = await run.checkpoint()


class _DirectPlan:
    """How ``FanOut._work_direct`` runs the frames of one generator: see ``_direct_plan``."""

    __slots__ = ("arg_order", "constants", "from_item", "op", "per_stream", "positional")

    def __init__(self, op: NodeProgram, from_item: list[tuple[str, str]],
                 per_stream: list[tuple[str, Any]]) -> None:
        self.op = op
        self.constants = op.constants
        self.from_item = tuple(from_item)  # (argument, key of the yielded dict)
        self.per_stream = tuple(per_stream)  # (argument, getter): the same for every frame
        # The keyword order of NodeProgram.bind: constants, then the other arguments.
        self.arg_order = tuple(op.constants) + tuple(
            arg for arg in op.node.args if arg not in op.constants)
        # The op takes exactly one argument, from the yield, and its own signature (not a
        # wrapper's) has just that parameter, positional-or-keyword: a positional call
        # binds the same way and skips unpacking a keyword dict per frame.
        self.positional = len(self.arg_order) == len(self.from_item) == 1 and \
            _only_parameter(op.fn) == self.from_item[0][0]

    def kwargs_template(self, inst: Inst) -> dict[str, Any]:
        """The arguments every frame shares, in ``bind`` order (item keys filled per frame)."""
        probe = Inst(inst, inst.scope, inst.index, inst.span)  # any frame reads them alike
        fixed = {arg: get(probe) for arg, get in self.per_stream}
        return {arg: self.constants[arg] if arg in self.constants else fixed.get(arg)
                for arg in self.arg_order}

    def collect_into(self, inst: Inst) -> list[tuple[list[Any], str, bool]]:
        """The buffers the op's outputs are collected in (in the generator's instance)."""
        out = []
        for buffer_id, key, ordered in self.op.collectors:
            bucket = inst.bufs.get(buffer_id)
            if bucket is None:
                bucket = inst.bufs[buffer_id] = []
            out.append((bucket, key, ordered))
        return out

    def results_into(self, scope: ScopeRun) -> list[tuple[list[Any], str]]:
        """The scope's per-frame result lists the op's outputs go to."""
        out = []
        for result_key, key in self.op.streamed_results:
            frames = scope.streamed.get(result_key)
            if frames is None:
                frames = scope.streamed[result_key] = []
            out.append((frames, key))
        return out


def _only_parameter(fn: Any) -> str | None:
    """The name of ``fn``'s one positional-or-keyword parameter, if that is all it has."""
    try:
        params = list(inspect.signature(fn, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        return None
    if len(params) == 1 and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
        return params[0].name
    return None


_direct_plans: weakref.WeakKeyDictionary[NodeProgram, _DirectPlan | None] = \
    weakref.WeakKeyDictionary()


def _direct_plan(gen: NodeProgram) -> _DirectPlan | None:
    """The direct plan of a generator's frames, when they qualify (computed once per node).

    They qualify when a frame is one ``async def`` op run on the event loop
    (``sole_awaited`` and ``direct_await``; a policy of its own is fine), the generator's
    own outputs go nowhere but to that op, and every
    argument of the op is a constant, a key of the yielded dict, or a value fixed for
    the whole stream (a run input, an outer node's output) — not a ``.collect()``, which
    gives each execution a list of its own.
    """
    if gen in _direct_plans:
        return _direct_plans[gen]
    plan: _DirectPlan | None = None
    op = gen.child.sole_awaited if gen.child is not None else None
    if op is not None and op.direct_await and not gen.feeds_more and not op.plain_results:
        getters = iter(op.getters)  # one per non-constant argument, in argument order
        from_item: list[tuple[str, str]] = []
        per_stream: list[tuple[str, Any]] = []
        qualifies = True
        for arg, source in op.node.args.items():
            if isinstance(source, Const):
                continue
            _name, get = next(getters)
            if isinstance(source, OutputRef) and source.collect is not None:
                qualifies = False
            elif isinstance(source, OutputRef) and source.node == gen.name:
                from_item.append((arg, source.key))
            else:
                per_stream.append((arg, get))
        if qualifies:
            plan = _DirectPlan(op, from_item, per_stream)
    _direct_plans[gen] = plan
    return plan
