"""Branch conditions: small expression trees over refs, built by the DSL, never ``eval``ed.

``if_(kind["kind"] == "audio", audio)`` records ``Compare("==", OutputRef("kind",
"kind"), Const("audio"))``. The Engine turns a tree into a closure with
:func:`compile_condition`; the compiler and ``operonx graph`` print it as Python
with :func:`to_python`, given how to spell each ref. No other form exists: a
condition is one of the dataclasses below, so there is nothing to sanitise.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from operonx.ir.model import Const, InputRef, OutputRef

CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]
Operand = Const | InputRef | OutputRef

COMPARE: dict[CompareOp, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    left: Operand
    right: Operand


@dataclass(frozen=True)
class IsIn:
    """``ref.isin([...])``: membership in a tuple of literals."""

    operand: Operand
    values: tuple[Any, ...]


@dataclass(frozen=True)
class IsNone:
    operand: Operand


@dataclass(frozen=True)
class Truth:
    """A bare ref used as a condition: its truth value (``if_(check["ok"], ...)``)."""

    operand: Operand


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


Condition = Compare | IsIn | IsNone | Truth | AllOf | AnyOf | Not


def operands(cond: Condition) -> Iterator[Operand]:
    """Every operand of the tree, left to right."""
    match cond:
        case Compare(left=left, right=right):
            yield left
            yield right
        case IsIn(operand=x) | IsNone(operand=x) | Truth(operand=x):
            yield x
        case AllOf(parts=parts) | AnyOf(parts=parts):
            for part in parts:
                yield from operands(part)
        case Not(part=part):
            yield from operands(part)


def refs(cond: Condition) -> Iterator[InputRef | OutputRef]:
    """The refs a condition reads (operands that are not literals)."""
    for x in operands(cond):
        if not isinstance(x, Const):
            yield x


# ------------------------------------------------------------------------ printing


def to_python(cond: Condition, ref: Callable[[InputRef | OutputRef], str],
              literal: Callable[[Any], str] = repr) -> str:
    """The condition as a Python expression.

    ``ref`` spells a ref as an expression (an atom: a name or a subscript);
    ``literal`` spells a constant (the compiler passes its checked literal
    writer, which refuses what cannot round-trip). Nested ``and``/``or`` are
    parenthesised, so the text means the tree whatever the reader's precedence.
    """

    def operand(x: Operand) -> str:
        return literal(x.value) if isinstance(x, Const) else ref(x)

    def text(c: Condition) -> str:
        match c:
            case Compare(op=op, left=left, right=right):
                return f"{operand(left)} {op} {operand(right)}"
            case IsIn(operand=x, values=values):
                return f"{operand(x)} in {literal(values)}"
            case IsNone(operand=x):
                return f"{operand(x)} is None"
            case Truth(operand=x):
                return operand(x)
            case AllOf(parts=parts):
                return " and ".join(nested(p) for p in parts)
            case AnyOf(parts=parts):
                return " or ".join(nested(p) for p in parts)
            case Not(part=IsIn(operand=x, values=values)):
                return f"{operand(x)} not in {literal(values)}"
            case Not(part=IsNone(operand=x)):
                return f"{operand(x)} is not None"
            case Not(part=part):
                return f"not {nested(part)}"
        raise AssertionError(f"not a condition: {c!r}")

    def nested(c: Condition) -> str:
        return f"({text(c)})" if isinstance(c, (AllOf, AnyOf, Not)) else text(c)

    return text(cond)


def describe(cond: Condition) -> str:
    """The condition as the user wrote it (for labels and messages)."""

    def spell(x: InputRef | OutputRef) -> str:
        return f"PARENT[{x.key!r}]" if isinstance(x, InputRef) else f"{x.node}[{x.key!r}]"

    return to_python(cond, spell)


# ---------------------------------------------------------------------- evaluation

T = TypeVar("T")
Reader = Callable[[T], Any]


def compile_condition(cond: Condition,
                      read: Callable[[InputRef | OutputRef], Reader[T]]) -> Callable[[T], bool]:
    """A closure evaluating the tree; ``read(ref)`` returns how to fetch a ref's value.

    ``and``/``or`` short-circuit like Python's; every result is a ``bool``.
    """

    def value_of(x: Operand) -> Reader[T]:
        if isinstance(x, Const):
            constant = x.value
            return lambda _ctx: constant
        return read(x)

    def build(c: Condition) -> Callable[[T], bool]:
        match c:
            case Compare(op=op, left=left, right=right):
                fn, lhs, rhs = COMPARE[op], value_of(left), value_of(right)
                return lambda ctx: bool(fn(lhs(ctx), rhs(ctx)))
            case IsIn(operand=x, values=values):
                get = value_of(x)
                return lambda ctx: get(ctx) in values
            case IsNone(operand=x):
                get = value_of(x)
                return lambda ctx: get(ctx) is None
            case Truth(operand=x):
                get = value_of(x)
                return lambda ctx: bool(get(ctx))
            case AllOf(parts=parts):
                built = [build(p) for p in parts]
                return lambda ctx: all(p(ctx) for p in built)
            case AnyOf(parts=parts):
                built = [build(p) for p in parts]
                return lambda ctx: any(p(ctx) for p in built)
            case Not(part=part):
                inner = build(part)
                return lambda ctx: not inner(ctx)
        raise AssertionError(f"not a condition: {c!r}")

    return build(cond)
