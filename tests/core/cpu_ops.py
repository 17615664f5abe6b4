"""Module-level ``bound="cpu"`` ops for the process-pool tests (workers import this module).

Kept apart from the test module so a worker imports only this and operonx.
"""

from __future__ import annotations

import os
import pathlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from operonx.core import op


@op
def each_value(values: list[Any]) -> Iterator[dict[str, Any]]:
    for value in values:
        yield {"value": value}


@op(bound="cpu")
def whoami(value: int) -> dict[str, int]:
    return {"value": value, "pid": os.getpid()}


def _nap(value: int, seconds: float) -> dict[str, Any]:
    start = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes on one machine
    time.sleep(seconds)
    return {"span": (start, time.monotonic()), "pid": os.getpid()}


@op(bound="cpu", max_concurrent=1, outputs=["span", "pid"])
def nap_alone(value: int, seconds: float) -> dict[str, Any]:
    return _nap(value, seconds)


@op(bound="cpu", max_concurrent=2, outputs=["span", "pid"])
def nap_in_pairs(value: int, seconds: float) -> dict[str, Any]:
    return _nap(value, seconds)


@op(bound="cpu", outputs=["span", "pid"])
def nap(value: int, seconds: float) -> dict[str, Any]:
    return _nap(value, seconds)


@op(bound="cpu", timeout=0.2)
def crunch_too_long(value: int, pid_file: str) -> dict[str, int]:
    """Records its worker's pid, then takes a minute: only its timeout ends it."""
    pathlib.Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)
    return {"result": value}


@op(bound="cpu")
def fail_on(value: int, bad: int) -> dict[str, int]:
    if value == bad:
        raise ValueError(f"bad {value}")
    return {"value": value}


@op(bound="cpu")
def first_fails_others_hang(value: int, markers: str) -> dict[str, int]:
    """Item 0 fails after a moment; every other item records its pid and sleeps a minute."""
    if value == 0:
        time.sleep(0.3)
        raise ValueError("item 0 failed")
    pathlib.Path(markers, str(value)).write_text(str(os.getpid()))
    time.sleep(60)
    return {"value": value}


class NeedsTwoArguments(Exception):
    """Pickles, but cannot be unpickled: ``Exception.__reduce__`` passes only ``args``."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} (code {code})")
        self.code = code


class HoldsALock(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


@op(bound="cpu")
def raise_unpicklable(kind: str) -> dict[str, int]:
    if kind == "two-arguments":
        raise NeedsTwoArguments("it broke", 7)
    if kind == "lock":
        raise HoldsALock("it broke, holding a lock")
    raise SystemExit(3)


@op(bound="cpu")
def take_anything(thing: Any) -> dict[str, str]:
    return {"kind": type(thing).__name__}


@op(bound="cpu", outputs=["n", "numbers"])
def return_unpicklable(n: int) -> dict[str, Any]:
    return {"n": n, "numbers": (i for i in range(n))}  # a generator does not pickle


@op(bound="cpu")
def die(value: int) -> dict[str, int]:
    os.kill(os.getpid(), signal.SIGKILL)
    return {"value": value}


def _explode_in_a_worker() -> Any:
    from operonx.engine.cpu_worker import in_worker

    if in_worker():
        raise LookupError("this object cannot be rebuilt in a worker")
    return FragileInWorkers()


class FragileInWorkers:
    """Pickles in the parent; unpickling it in a worker process fails."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _explode_in_a_worker, ()
