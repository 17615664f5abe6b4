"""The worker processes that run ``@op(bound="cpu")`` executions (SPEC §10).

Pure-Python CPU-bound work holds the GIL, so threads cannot run it on more than
one core; worker processes can. The design, and why:

* **One pool per worker count, shared** by every Engine in the process that asks
  for that many workers (``Engine(graph, cpu_workers=N)``, default: one per usable
  core). Workers start lazily, when an execution needs one and none is idle, and
  stay for later runs and later Engines; an event loop is never tied to a worker
  (``run_sync`` makes a fresh loop per call), so the pool is loop-agnostic.
* **Start method: forkserver** where the platform has it (Linux, macOS), else
  spawn — never fork, which copies a parent that runs an event loop and threads
  (uvloop's, the default executor's, tracers') in whatever state they were in.
  With both, multiprocessing re-imports the parent's ``__main__`` script in each
  worker under the name ``__mp_main__`` (so its ``if __name__ == "__main__":``
  block does not run); each op's module is imported in a worker the first time
  that worker runs the op (the op arrives pickled by reference: the Engine's
  :mod:`operonx.core.reference`, a compiled module's functions by name).
* **A cancelled execution's worker is stopped** (SIGKILL) and replaced on demand:
  a failing sibling, a timeout or a cancelled run never leaves a core busy with
  work whose result nobody will read, and the interpreter never waits for it.
* **Exit**: an ``atexit`` hook (registered with the first pool) closes idle
  workers' connections (they exit on their own) and kills busy ones, then reaps
  them all — no zombies, no hang.
  Workers also exit when the parent dies: their connection reaches EOF (at once
  when idle, after the execution in hand when busy).
* Each worker runs one execution at a time; per-op ``max_concurrent`` is the
  Engine's semaphore, as for async ops, and the pool bounds the total.
* **Standard library only**, and only definitions at the top level: this file and
  :mod:`operonx.engine.cpu_worker` are also the source of the pool of every compiled
  module with a ``bound="cpu"`` op (``compiler/codegen/runtime.py`` includes them as
  text: one implementation, and the compiled module stays standalone). What is
  operonx's (how an op is named, the build-time errors) is in
  :mod:`operonx.engine.cpu_op`; modules are imported under ``_``-prefixed names since
  the copied user code of a compiled module may own the plain ones.
* **Why not** ``concurrent.futures.ProcessPoolExecutor``: it cannot stop one running
  call (a cancelled or timed-out op would keep its core, and its exit hook waits for
  running calls, so the interpreter would hang at exit behind it); one dead worker
  breaks the whole executor (every pending call of every run fails); and it pickles
  arguments in a feeder thread, where an unpicklable one cannot be named. Here each
  worker is a process and a pipe, a request is pickled on the caller's loop before it
  is sent, and the caller awaits the pipe with ``add_reader``.
"""

from __future__ import annotations

import asyncio
import atexit as _atexit
import collections
import contextlib
import multiprocessing as _multiprocessing
import os as _os
import signal as _signal
import threading
from multiprocessing.connection import Connection as _Connection
from multiprocessing.process import BaseProcess as _BaseProcess
from typing import Any

from operonx.engine.cpu_worker import (
    _READY,
    decode_reply,
    encode_request,
    in_worker,
    worker_entry,
)

START_METHOD = "forkserver" if "forkserver" in _multiprocessing.get_all_start_methods() \
    else "spawn"
#: How long a new worker may take to start (import the main script, say) before the
#: execution waiting for it fails; a worker that blocks at import fails, never hangs.
WORKER_START_TIMEOUT = 60.0
_GRACE = 2.0  # seconds an idle worker gets to exit on its own at shutdown


def default_workers() -> int:
    """One worker per core this process may use."""
    count = getattr(_os, "process_cpu_count", None)  # Python 3.13+: honours affinity
    if count is not None:
        n: int | None = count()
    else:
        try:
            n = len(_os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n = _os.cpu_count()
    return max(1, n or 1)


def pool_size(cpu_workers: object) -> int:
    """The pool size ``cpu_workers=`` asks for: :func:`default_workers` for None."""
    if cpu_workers is None:
        return default_workers()
    if not isinstance(cpu_workers, int) or isinstance(cpu_workers, bool) or cpu_workers < 1:
        raise ValueError(f"cpu_workers must be a positive int, not {cpu_workers!r}")
    return cpu_workers


async def run_in_worker(workers: int, op_blob: bytes, label: str,
                        kwargs: dict[str, Any]) -> Any:
    """One execution, in the shared pool of ``workers``: what the op ``op_blob`` unpickles to
    returned, or raise what it raised (or a precise error about what could not be pickled,
    or a worker that died). Cancelling the await stops the worker running it."""
    request = encode_request(op_blob, label, kwargs)
    return decode_reply(await shared_pool(workers).run(request))


class WorkerDied(Exception):
    """A worker process died (or could not start) before answering.

    An ``Exception``, not a ``RuntimeError``: mypyc (``operonx compile --native``, which
    compiles this code in a module) cannot subclass most builtin exception types.
    """


# -------- workers --------------------------------------------------------------------------------


class _Worker:
    __slots__ = ("conn", "process")

    def __init__(self, process: _BaseProcess, conn: _Connection) -> None:
        self.process = process
        self.conn = conn

    def exit_description(self) -> str:
        """How the process ended (waiting briefly for it to finish dying)."""
        self.process.join(1.0)
        code = self.process.exitcode
        if code is None:
            return "it stopped answering"
        if code < 0:
            try:
                return f"killed by {_signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def kill(self) -> None:
        """Stop now and reap (in the background: a big process takes a moment to die)."""
        self.process.kill()
        self.conn.close()
        threading.Thread(target=self.process.join, name="operonx-cpu-reaper",
                         daemon=True).start()

    def close(self) -> None:
        """Let an idle worker exit on its own: it reads EOF and returns."""
        self.conn.close()


def _start_worker(context: _multiprocessing.context.BaseContext) -> _Worker:
    parent_end, child_end = context.Pipe(duplex=True)
    process: _BaseProcess = context.Process(  # type: ignore[attr-defined]
        target=worker_entry(), args=(child_end,), name="operonx-cpu-worker")
    try:
        process.start()
    except BaseException:
        parent_end.close()
        raise
    finally:
        child_end.close()  # the worker has its own copy now
    worker = _Worker(process, parent_end)
    try:
        if not parent_end.poll(WORKER_START_TIMEOUT):
            raise WorkerDied(f"a worker process did not start within {WORKER_START_TIMEOUT:g} s"
                             f"{_IMPORT_HINT}")
        if parent_end.recv_bytes() != _READY:
            raise WorkerDied("a worker process answered nonsense while starting")
    except (EOFError, OSError) as exc:
        raise WorkerDied(f"a worker process failed to start ({worker.exit_description()}; "
                         f"its traceback is on stderr){_IMPORT_HINT}") from exc
    except BaseException:
        worker.kill()
        raise
    return worker


_IMPORT_HINT = ("; worker processes import the main script and each op's module, so code "
                "there that runs when imported (a graph run, a long computation, input()) "
                'belongs under `if __name__ == "__main__":`')


# -------- pool -----------------------------------------------------------------------------------


class CpuPool:
    """Up to ``size`` worker processes, each running one execution at a time.

    Thread- and loop-safe: an execution waits on its own event loop for a worker;
    workers are handed over under a lock with ``call_soon_threadsafe``.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._context = _multiprocessing.get_context(START_METHOD)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._count = 0  # workers alive or starting
        self._starting = 0
        self._waiters: collections.deque[asyncio.Future[_Worker]] = collections.deque()
        self._closed = False

    async def run(self, request: bytes) -> bytes:
        """Send one request to a worker and return its reply."""
        worker = await self._acquire()
        try:
            worker.conn.send_bytes(request)
            reply = await _receive(worker.conn)
        except (EOFError, OSError) as exc:
            how = worker.exit_description()  # before _retire kills what is left of it
            self._retire(worker)
            raise WorkerDied(f"the worker process (pid {worker.process.pid}) running it died "
                             f"({how})") from exc
        except BaseException:
            self._retire(worker)  # cancelled: nobody will read what it is computing
            raise
        self._release(worker)
        return reply

    @property
    def pids(self) -> list[int]:
        """The worker processes alive now (for tests and diagnostics)."""
        with self._lock:
            return [w.process.pid for w in (*self._idle, *self._busy) if w.process.pid]

    # -- handing workers out

    async def _acquire(self) -> _Worker:
        loop = asyncio.get_running_loop()
        dead: list[_Worker] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the bound='cpu' process pool is shut down (the interpreter "
                                   "is exiting)")
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    self._busy.add(worker)
                    return worker
                self._count -= 1  # died while idle (killed from outside): replace it
                dead.append(worker)
            waiter: asyncio.Future[_Worker] = loop.create_future()
            self._waiters.append(waiter)
            self._grow_locked()
        for worker in dead:
            worker.kill()
        try:
            return await waiter
        except asyncio.CancelledError:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())  # handed over just as we were cancelled
            raise

    def _release(self, worker: _Worker) -> None:
        """``worker`` is free: give it to the first waiter, else keep it idle."""
        with self._lock:
            self._busy.discard(worker)
            if self._closed:
                worker.close()
                return
            while self._waiters:
                waiter = self._waiters.popleft()
                try:
                    waiter.get_loop().call_soon_threadsafe(self._hand_over, waiter, worker)
                except RuntimeError:  # its loop is closed: it will never need a worker
                    continue
                self._busy.add(worker)
                return
            self._idle.append(worker)

    def _hand_over(self, waiter: asyncio.Future[_Worker], worker: _Worker) -> None:
        if waiter.done():  # cancelled after we picked it
            self._release(worker)
        else:
            waiter.set_result(worker)

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._busy.discard(worker)
            self._count -= 1
            self._grow_locked()  # someone may be waiting for the slot it held

    # -- starting workers

    def _grow_locked(self) -> None:
        """Start workers for waiters that no start in progress will serve (under the lock)."""
        while (not self._closed and self._count < self.size
               and self._starting < len(self._waiters)):
            self._count += 1
            self._starting += 1
            # In a thread: the first start launches the fork server (a new interpreter),
            # which must not stall the event loop.
            threading.Thread(target=self._start_one, name="operonx-cpu-starter",
                             daemon=True).start()

    def _start_one(self) -> None:
        try:
            worker = _start_worker(self._context)
        except BaseException as exc:
            self._start_failed(exc)
            return
        with self._lock:
            self._starting -= 1
        self._release(worker)

    def _start_failed(self, exc: BaseException) -> None:
        """Tell one waiter why; the next waiter (if any) gets a start attempt of its own."""
        with self._lock:
            self._starting -= 1
            self._count -= 1
            while self._waiters:
                waiter = self._waiters.popleft()
                try:
                    waiter.get_loop().call_soon_threadsafe(self._fail_waiter, waiter, exc)
                    break
                except RuntimeError:
                    continue
            self._grow_locked()

    def _fail_waiter(self, waiter: asyncio.Future[_Worker], exc: BaseException) -> None:
        if waiter.done():
            with self._lock:
                self._grow_locked()
        else:
            waiter.set_exception(exc)

    # -- shutting down

    def close(self) -> None:
        """Stop every worker: idle ones exit on their own, busy ones are killed."""
        with self._lock:
            self._closed = True
            idle, busy = self._idle, list(self._busy)
            self._idle, self._busy = [], set()
            waiters, self._waiters = list(self._waiters), collections.deque()
        for waiter in waiters:
            with contextlib.suppress(RuntimeError):  # its loop is closed
                waiter.get_loop().call_soon_threadsafe(_fail_if_waiting, waiter)
        for worker in idle:
            worker.close()
        for worker in busy:
            worker.process.kill()
            worker.conn.close()
        for worker in (*idle, *busy):
            worker.process.join(_GRACE)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()


async def _receive(conn: _Connection) -> bytes:
    """The next message on ``conn``, awaiting readability on the running loop."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()
    loop.add_reader(fd, _set_once, readable)
    try:
        await readable
    finally:
        loop.remove_reader(fd)
    return conn.recv_bytes()  # the worker writes a whole message at once


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail_if_waiting(waiter: asyncio.Future[_Worker]) -> None:
    if not waiter.done():
        waiter.set_exception(RuntimeError("the bound='cpu' process pool was shut down"))


# -------- the shared pools -----------------------------------------------------------------------

_pools: dict[int, CpuPool] = {}
_pools_lock = threading.Lock()
_hooks_registered = False


def shared_pool(workers: int) -> CpuPool:
    """The process's pool of ``workers`` workers (created on first use)."""
    if in_worker():
        raise RuntimeError(
            "a graph with bound='cpu' ops ran inside a worker process of another bound='cpu' "
            "op; usually a main script or graph file that runs its graph when it is imported"
            + _IMPORT_HINT)
    pool = _pools.get(workers)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(workers)
            if pool is None:
                if not _hooks_registered:
                    _register_hooks()
                pool = _pools[workers] = CpuPool(workers)
    return pool


def _register_hooks() -> None:
    """At exit, stop every worker; in a child made by os.fork(), forget the parent's.

    Registered with the first pool, not at import: a process that never runs a cpu op
    gets no hook. multiprocessing registers its own exit hook when it is imported (long
    before this), and atexit runs hooks last-in, first-out: ours runs first, while
    multiprocessing can still reap the workers.
    """
    global _hooks_registered
    _hooks_registered = True
    _atexit.register(shutdown_pools)
    _os.register_at_fork(after_in_child=_forget_pools_after_fork)


def shutdown_pools() -> None:
    """Stop every pool's workers (runs at interpreter exit; later use raises)."""
    with _pools_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.close()


def _forget_pools_after_fork() -> None:
    """In a child made by os.fork(): the workers are the parent's; never touch them."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()
