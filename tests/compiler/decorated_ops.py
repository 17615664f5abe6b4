"""Ops under a second decorator that changes what a call returns."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from operonx.core import op


def listify(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return [fn(*args, **kwargs)]

    return wrapper


@op(outputs=["r"])
@listify
def wrapped(v: int) -> dict[str, int]:
    return {"r": v}
