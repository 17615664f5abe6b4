"""Conditions built from refs: ``kind["kind"] == "audio"``, ``(a["n"] > 3) & ~b["ok"]``.

``Ref`` and ``ParentRef`` get comparison operators that return a :class:`Cond`
(data: an :mod:`operonx.ir.condition` tree) instead of a bool, the way
SQLAlchemy columns do. Only ``if_``/``elif_`` consume them.

Refs stay usable as plain objects. Their hash is the identity hash, and the truth
value of ``ref == other`` (``ref != other``) is ``ref is other`` (``is not``),
exactly what it was before refs had operators, so dicts and sets of refs, ``in``
and ``list.index`` behave as before. Every other condition refuses to be a bool
(``TypeError``): ``if ref > 3:`` or ``0 < ref < 10`` in a graph block is a
mistake that would otherwise be silently wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from operonx.errors import GraphError
from operonx.ir.condition import (
    AllOf,
    AnyOf,
    Compare,
    CompareOp,
    Condition,
    IsIn,
    IsNone,
    Not,
    Operand,
    Truth,
    describe,
)
from operonx.ir.model import Const


def _located(message: str, hint: str | None = None) -> GraphError:
    from operonx.core.dsl import user_loc  # dsl imports this module: resolve at error time

    loc = user_loc()
    return GraphError(message, loc.file, loc.line, hint)


class Cond:
    """A condition over refs, for ``if_(cond, target)`` and ``.elif_(cond, target)``.

    Combine with ``&`` (and), ``|`` (or) and ``~`` (not); parenthesise the
    comparisons, since ``&`` binds tighter than ``==``: ``(a["x"] == 1) & (b["y"] > 2)``.
    """

    __slots__ = ("_identity", "expr", "refs")

    def __init__(self, expr: Condition, refs: tuple[Any, ...],
                 identity: tuple[bool, object, object] | None = None) -> None:
        self.expr = expr
        self.refs = refs  # the DSL refs read, for the same-graph check in if_()
        self._identity = identity  # (is ==, left, right) for == and != only

    def __and__(self, other: Any) -> Cond:
        right = as_cond(other, "&")
        parts = [*_flat(self.expr, AllOf), *_flat(right.expr, AllOf)]
        return Cond(AllOf(tuple(parts)), (*self.refs, *right.refs))

    def __rand__(self, other: Any) -> Cond:
        return as_cond(other, "&") & self

    def __or__(self, other: Any) -> Cond:
        right = as_cond(other, "|")
        parts = [*_flat(self.expr, AnyOf), *_flat(right.expr, AnyOf)]
        return Cond(AnyOf(tuple(parts)), (*self.refs, *right.refs))

    def __ror__(self, other: Any) -> Cond:
        return as_cond(other, "|") | self

    def __invert__(self) -> Cond:
        return Cond(Not(self.expr), self.refs)

    def __bool__(self) -> bool:
        if self._identity is not None:  # ``ref in [...]``, dict probing: identity, as before
            equal, left, right = self._identity
            return (left is right) == equal
        raise TypeError(f"the condition {self!r} has no truth value while the graph is built; "
                        "pass it to if_(...) / .elif_(...). Chained comparisons such as "
                        "`0 < ref < 10` are not conditions: write `(ref > 0) & (ref < 10)`")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return describe(self.expr)


def _flat(expr: Condition, kind: type[AllOf] | type[AnyOf]) -> Iterable[Condition]:
    return expr.parts if isinstance(expr, kind) else (expr,)


def as_cond(value: Any, where: str) -> Cond:
    """A condition from a ``Cond`` or a bare ref (its truth value); anything else is refused."""
    if isinstance(value, Cond):
        return value
    if isinstance(value, Comparable):
        return Cond(Truth(value._operand()), (value,))
    if isinstance(value, bool):
        raise _located(
            f"{where} got the bool {value!r}, not a condition built from refs",
            "write ref.isin([...]) rather than `ref in [...]`, and parenthesise comparisons "
            "joined with & or |: (a['x'] == 1) & (b['y'] > 2)")
    raise _located(f"{where} takes conditions built from refs (node['k'] == 1, "
                   f"PARENT['k'].isin([...]), ...), not {type(value).__name__} {value!r}",
                   "parenthesise comparisons joined with & or |: (a['x'] == 1) & (b['y'] > 2)")


def _literal(value: Any) -> Operand:
    from operonx.core.dsl import _find_hidden_ref

    if isinstance(value, Cond):
        raise _located("a condition cannot be compared with another condition",
                       "combine conditions with & and |")
    if _find_hidden_ref(value) is not None:
        raise _located(f"a condition compares with {value!r}, which holds a reference; "
                       "compare a ref with a literal or with another ref")
    return Const(value)


def _operand_of(value: Any) -> Operand:
    return value._operand() if isinstance(value, Comparable) else _literal(value)


class Comparable:
    """Comparison operators for ``Ref`` and ``ParentRef`` (see the module docstring)."""

    __slots__ = ()

    def _operand(self) -> Operand:
        raise NotImplementedError

    def _compare(self, op: CompareOp, other: Any, identity: bool | None = None) -> Cond:
        left = self._operand()
        right = _operand_of(other)
        refs = (self, other) if isinstance(other, Comparable) else (self,)
        expr = Compare(op, left, right)
        return Cond(expr, refs, None if identity is None else (identity, self, other))

    def __eq__(self, other: Any) -> Cond:  # type: ignore[override]
        return self._compare("==", other, identity=True)

    def __ne__(self, other: Any) -> Cond:  # type: ignore[override]
        return self._compare("!=", other, identity=False)

    def __lt__(self, other: Any) -> Cond:
        return self._compare("<", other)

    def __le__(self, other: Any) -> Cond:
        return self._compare("<=", other)

    def __gt__(self, other: Any) -> Cond:
        return self._compare(">", other)

    def __ge__(self, other: Any) -> Cond:
        return self._compare(">=", other)

    __hash__ = object.__hash__  # identity, as before: refs key dicts and sets unchanged

    def isin(self, values: Iterable[Any]) -> Cond:
        """``ref.isin([...])``: the value is one of these literals."""
        if isinstance(values, (str, bytes)) or not isinstance(
                values, (list, tuple, set, frozenset)):
            raise _located(f"{self!r}.isin(...) takes a list of literals, not "
                           f"{type(values).__name__} {values!r}")
        items = list(values)
        for item in items:
            _literal(item)
        if isinstance(values, (set, frozenset)):
            items.sort(key=repr)  # one order, so the compiled module is deterministic
        return Cond(IsIn(self._operand(), tuple(items)), (self,))

    def is_none(self) -> Cond:
        """``ref.is_none()``: the value is ``None``."""
        return Cond(IsNone(self._operand()), (self,))

    def __invert__(self) -> Cond:
        return ~as_cond(self, "~")

    def __and__(self, other: Any) -> Cond:
        return as_cond(self, "&") & as_cond(other, "&")

    def __rand__(self, other: Any) -> Cond:
        return as_cond(other, "&") & as_cond(self, "&")

    def __or__(self, other: Any) -> Cond:
        return as_cond(self, "|") | as_cond(other, "|")

    def __ror__(self, other: Any) -> Cond:
        return as_cond(other, "|") | as_cond(self, "|")

