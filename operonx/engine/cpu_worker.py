"""One ``bound="cpu"`` execution in a worker process, and the messages that carry it.

The parent (:mod:`operonx.engine.cpu_pool`) sends a *request*: the op pickled *by
reference* (what it unpickles to in the worker is the callable: the Engine pickles
an op as ``module.qualname``, :mod:`operonx.core.reference`; a compiled module's ops
are module-level functions, which pickle by name), a label naming it, and each
argument pickled on its own; the worker sends back a *reply*: the pickled outputs,
or the exception the op raised. Everything that can go wrong on the way is named precisely:

* an argument that cannot be pickled: :class:`pickle.PicklingError` naming it
  (raised in the parent, before anything is sent);
* an argument that cannot be unpickled in the worker, or an output that cannot be
  pickled there: the same, naming the argument or the output key;
* an exception that cannot travel back: a stand-in of the same type *name* and
  message (a :class:`WorkerException`), so the ``OpError`` reads as it would have;
* every exception from a worker carries the worker's traceback as its
  ``__cause__`` (a :class:`RemoteTraceback`), as ``concurrent.futures`` does.

**Standard library only**, and only definitions at the top level: this file is also
the source of the worker side of every compiled module with a ``bound="cpu"`` op
(``compiler/codegen/runtime.py`` includes it as text, so a compiled module stays
standalone). Modules imported under ``_``-prefixed names for the same reason: there,
the copied user code may own the plain names (``os``, ``pickle``...).
"""

from __future__ import annotations

import importlib as _importlib
import importlib.util as _importlib_util
import operator
import pickle as _pickle
import signal as _signal
import sys
import traceback as _traceback
from collections.abc import Callable
from multiprocessing.connection import Connection as _Connection
from typing import Any

_PROTOCOL = _pickle.HIGHEST_PROTOCOL
_READY = b"ready"  # a worker's first message: it has started and can take requests

_OK, _RAISED = 0, 1


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(text)

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


class WorkerException(Exception):
    """Stands in for an exception that could not be pickled back from a worker process.

    Each stand-in class is named after the original (``type(exc).__name__`` is
    the original's name), so messages and ``$errors`` read as they would have;
    ``original_type`` is its ``module.qualname`` and the worker's traceback is the
    ``__cause__``.
    """

    original_type = "builtins.Exception"


_stand_ins: dict[tuple[str, str], type[WorkerException]] = {}


def _stand_in(module: str, qualname: str, message: str) -> WorkerException:
    key = (module, qualname)
    cls = _stand_ins.get(key)
    if cls is None:
        name = qualname.rsplit(".", 1)[-1]
        cls = type(name, (WorkerException,), {"original_type": f"{module}.{qualname}",
                                              "__module__": module, "__qualname__": qualname})
        _stand_ins[key] = cls
    return cls(message)


# -------- the parent side ------------------------------------------------------------------------


def encode_request(op_blob: bytes, label: str, kwargs: dict[str, Any]) -> bytes:
    """The request for one execution of the op ``op_blob`` unpickles to (``label`` names it
    in errors); PicklingError naming an argument that cannot be sent."""
    blobs: dict[str, bytes] = {}
    for name, value in kwargs.items():
        try:
            blobs[name] = _pickle.dumps(value, _PROTOCOL)
        except Exception as exc:
            raise _transfer_error(f"argument {name!r} ({type(value).__name__}) cannot be "
                                  "pickled to send it to a worker process", exc) from exc
    return _pickle.dumps((op_blob, label, blobs), _PROTOCOL)


def decode_reply(reply: bytes) -> Any:
    """The op's return value, or raise what it raised (with the worker's traceback as cause)."""
    tag, *rest = _pickle.loads(reply)
    if tag == _OK:
        try:
            return _pickle.loads(rest[0])
        except Exception as exc:
            raise _transfer_error("its outputs came back from the worker process but cannot be "
                                  "unpickled here", exc) from exc
    blob, module, qualname, message, text = rest
    error = _unpickle_exception(blob) if blob is not None else None
    if error is None:
        error = _stand_in(module, qualname, message)
    error.__cause__ = RemoteTraceback(text)
    raise error


def _unpickle_exception(blob: bytes) -> Exception | None:
    """The exception itself; None for one that cannot be unpickled or is no ``Exception``
    (``SystemExit`` in an op fails that execution, it does not exit the parent)."""
    try:
        raised = _pickle.loads(blob)
    except Exception:
        return None
    return raised if isinstance(raised, Exception) else None


# -------- the worker side ------------------------------------------------------------------------


def worker_main(conn: _Connection) -> None:
    """A worker process: answer requests until the parent closes the connection."""
    # Ctrl-C reaches the whole process group; the parent decides what stops (it
    # cancels the run and stops the workers it no longer needs).
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _mark_worker()
    try:
        conn.send_bytes(_READY)
    except OSError:
        return  # the parent gave up on us (it is exiting, or stopped waiting)
    functions: dict[bytes, Any] = {}
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone or shut the pool down
        reply = _execute(request, functions)
        try:
            conn.send_bytes(reply)
        except OSError:
            return


def _execute(request: bytes, functions: dict[bytes, Any]) -> bytes:
    """Run one request; the reply never fails to pickle."""
    try:
        op_blob, label, blobs = _pickle.loads(request)
        fn = functions.get(op_blob)
        if fn is None:
            fn = functions[op_blob] = _import_op(op_blob, label)
        kwargs = {}
        for name, blob in blobs.items():  # after resolving: their classes may live in its module
            try:
                kwargs[name] = _pickle.loads(blob)
            except Exception as exc:
                raise _transfer_error(f"argument {name!r} cannot be unpickled in the worker "
                                      "process", exc) from exc
        out = fn(**kwargs)
        return _pickle.dumps((_OK, _pickle_outputs(out)), _PROTOCOL)
    except BaseException as exc:  # SystemExit too: it fails the execution, not the worker
        return _raised(exc)


def _import_op(op_blob: bytes, label: str) -> Any:
    """The op: unpickling imports its module (the first time) and looks it up by name."""
    try:
        return _pickle.loads(op_blob)
    except Exception as exc:
        raise ImportError(f"a worker process could not import the op {label}: "
                          f"{type(exc).__name__}: {exc}") from exc


def _pickle_outputs(out: Any) -> bytes:
    try:
        return _pickle.dumps(out, _PROTOCOL)
    except Exception as exc:
        what = f"its return value ({type(out).__name__})"
        if isinstance(out, dict):
            for key, value in out.items():
                try:
                    _pickle.dumps(value, _PROTOCOL)
                except Exception:
                    what = f"output {key!r} ({type(value).__name__})"
                    break
        raise _transfer_error(f"{what} cannot be pickled to send it back from the worker "
                              "process", exc) from exc


def _raised(exc: BaseException) -> bytes:
    """The reply for an execution that raised: the exception, and its name and message in
    case it cannot be rebuilt in the parent."""
    text = "".join(_traceback.format_exception(exc))
    blob: bytes | None
    try:
        blob = _pickle.dumps(exc, _PROTOCOL)
        _pickle.loads(blob)  # what the parent will do: many exceptions fail only here
    except Exception:
        blob = None
    cls = type(exc)
    return _pickle.dumps((_RAISED, blob, cls.__module__, cls.__qualname__, str(exc), text),
                        _PROTOCOL)


def _transfer_error(what: str, exc: Exception) -> _pickle.PicklingError:
    return _pickle.PicklingError(f"{what}: {type(exc).__name__}: {exc}")


# -------- am I a worker process? -----------------------------------------------------------------

_IN_WORKER = False


def _mark_worker() -> None:
    global _IN_WORKER
    _IN_WORKER = True


def in_worker() -> bool:
    """True in a worker process (where a graph that runs cpu ops means a missing guard)."""
    return _IN_WORKER


# -------- how a new worker process finds worker_main ---------------------------------------------


def worker_entry() -> Any:
    """The ``target`` of a new worker process: :func:`worker_main`, found there by name.

    A worker unpickles its target by module and name. multiprocessing imports the main
    script itself; a module imported by name is imported again by name. A module loaded
    from a file under a name no fresh process can import (a compiled module loaded with
    ``importlib.util.spec_from_file_location``, say) is loaded the same way in the worker:
    from its file, under its name, registered in ``sys.modules`` (so that the ops pickled
    by name are found in it) before it runs.
    """
    name = worker_main.__module__
    file = globals().get("__file__")
    if name == "__main__" or importable_by_name(name) or not isinstance(file, str):
        return worker_main
    spec = _Call(_importlib_util.spec_from_file_location, name, file)
    module = _Call(_importlib_util.module_from_spec, spec)
    registered = _Call(operator.setitem, _Call(getattr, _Call(_importlib.import_module, "sys"),
                                               "modules"), name, module)
    executed = _Call(_Call(getattr, _Call(getattr, spec, "loader"), "exec_module"), module)
    # The arguments of a call are rebuilt in order: registered, executed, then the module.
    loaded = _Call(operator.getitem, (registered, executed, module), 2)
    return _Call(getattr, loaded, worker_main.__name__)


class _Call:
    """Unpickles to ``fn(*args)``, called where it is unpickled (``fn`` and ``args`` may be
    ``_Call`` too; one ``_Call`` pickled twice is called once and its result used twice)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn = fn
        self.args = args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return self.fn, self.args

    def __call__(self, *args: Any) -> Any:  # pickle insists that ``fn`` be callable
        raise TypeError("a _Call is called only by unpickling it")


def importable_by_name(name: str) -> bool:
    """Whether ``import name`` would find the module afresh (not from ``sys.modules``)."""
    parent, _, _ = name.rpartition(".")
    path = None
    if parent:
        path = getattr(sys.modules.get(parent), "__path__", None)
        if path is None:
            return False
    for finder in sys.meta_path:  # what `import` asks, minus the sys.modules cache
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            if find_spec(name, path) is not None:
                return True
        except Exception:  # a finder's own trouble: ask the next one
            continue
    return False
