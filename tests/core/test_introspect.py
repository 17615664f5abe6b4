"""What an op's source proves about its outputs (the compiler drops checks on this)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from operonx.ir.introspect import function_ast, op_kind, proven_outputs, static_outputs


def returns_literal(x: int) -> dict[str, int]:
    return {"r": x}


def shares_one_key(x: int) -> dict[str, int]:
    if x:
        return {"r": 1, "s": 2}
    return {"r": 2}


def may_fall_off_the_end(x: int) -> dict[str, int] | None:
    if x:
        return {"r": 1}
    return None


def implicit_none(x: int) -> Any:
    if x:
        return {"r": 1}


def yields_literals(xs: list[int]) -> Iterator[dict[str, int]]:
    for x in xs:
        yield {"v": x}


def yields_from(xs: list[int]) -> Iterator[dict[str, int]]:
    yield from ({"v": x} for x in xs)


def spreads(x: dict[str, int]) -> dict[str, int]:
    return {**x, "r": 1}


def nested_function_returns_are_not_ours(x: int) -> dict[str, int]:
    def helper() -> int:
        return 3

    return {"r": helper()}


def try_then_raise(x: int) -> dict[str, int]:
    try:
        return {"r": 1 // x}
    except ZeroDivisionError:
        raise ValueError("x must not be 0") from None


async def async_literal(x: int) -> dict[str, int]:
    return {"r": x}


def _listify(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return [fn(*args, **kwargs)]

    return wrapper


@_listify
def decorated(x: int) -> dict[str, int]:
    return {"r": x}


@pytest.mark.parametrize(("fn", "proven"), [
    (returns_literal, ("r",)),
    (shares_one_key, ("r",)),
    (may_fall_off_the_end, None),
    (implicit_none, None),
    (yields_literals, ("v",)),
    (yields_from, None),
    (spreads, None),
    (nested_function_returns_are_not_ours, ("r",)),
    (try_then_raise, ("r",)),
    (async_literal, ("r",)),
    (decorated, None),  # its source says dict, but the decorator returns a list
])
def test_proven_outputs(fn: Callable[..., Any], proven: tuple[str, ...] | None) -> None:
    assert proven_outputs(function_ast(fn), op_kind(fn)) == proven


def test_static_outputs_keep_every_key_but_proof_keeps_only_shared_ones() -> None:
    tree = function_ast(shares_one_key)
    assert static_outputs(tree, op_kind(shares_one_key)) == ("r", "s")
    assert proven_outputs(tree, op_kind(shares_one_key)) == ("r",)
