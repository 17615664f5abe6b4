"""The type of every op parameter and output key, and of every literal in the graph.

Outputs come from the op's return annotation when the user wrote one (``dict[str, T]``,
``Mapping[str, T]``, a ``TypedDict``, or ``Iterator`` / ``AsyncIterator`` / ``Generator``
/ ``AsyncGenerator`` / ``Iterable`` of those for generators; ``X | None`` counts as
``X``, since returning ``None`` means "no outputs"). Otherwise they come from mypy's
inference over the op body: per key, the union of the types of the value expressions
in the dict literals it returns (or yields), each literal read on its own. Anything
mypy cannot tell is ``Any``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compiler.typecheck import mypytypes as mt
from operonx.ir.model import Coalesce, Const, Graph, OpDef, OpKind

if TYPE_CHECKING:
    from mypy.nodes import Expression, FuncDef
    from mypy.types import ProperType

    from compiler.typecheck.probe import Probe

_STREAMS = frozenset(f"{module}.{name}" for module in ("typing", "collections.abc") for name in (
    "Iterator", "Iterable", "Generator", "AsyncIterator", "AsyncIterable", "AsyncGenerator"))
_COROUTINES = frozenset({"typing.Coroutine", "collections.abc.Coroutine"})
_MAPPING = "typing.Mapping"
_MAX_LITERAL = 20_000  # characters: a bigger literal is typed Any rather than probed


@dataclass(frozen=True)
class OpSignature:
    """What an op accepts and produces, as mypy types."""

    params: Mapping[str, ProperType]  # every named parameter; Any where unannotated
    var_keyword: ProperType | None  # the value type of ``**kwargs``, if it takes them
    outputs: Mapping[str, ProperType]  # per output key, the type of one frame's value

    def param(self, name: str) -> ProperType:
        if name in self.params:
            return self.params[name]
        return self.var_keyword if self.var_keyword is not None else mt.unknown()


def unknown_signature(op: OpDef) -> OpSignature:
    return OpSignature({p.name: mt.unknown() for p in op.params if not p.is_var_keyword},
                       mt.unknown() if any(p.is_var_keyword for p in op.params) else None,
                       {k: mt.unknown() for k in op.outputs or ()})


# ------------------------------------------------------------------------- literals


@dataclass
class Literals:
    """Every literal of a graph, keyed by where it is used, and its probe source text."""

    texts: list[str] = field(default_factory=list)
    index: dict[tuple[str, int, str], int] = field(default_factory=dict)

    def add(self, key: tuple[str, int, str], value: Any) -> None:
        text = literal_text(value)
        if text is not None:
            self.index[key] = len(self.texts)
            self.texts.append(text)


def literal_text(value: Any) -> str | None:
    """``repr(value)`` when it reads back as an equal value of the same type, else None."""
    try:
        text = repr(value)
    except Exception:
        return None
    if len(text) > _MAX_LITERAL:
        return None
    try:
        back = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    try:
        same = type(back) is type(value) and bool(back == value)
    except Exception:
        return None
    return text if same else None


def arg_key(scope: Graph, node_name: str, arg: str) -> tuple[str, int, str]:
    return ("arg", id(scope), f"{node_name}\0{arg}")


def default_key(scope: Graph, node_name: str, arg: str) -> tuple[str, int, str]:
    """The literal default of a ``coalesce(...)`` argument (its last option)."""
    return ("default", id(scope), f"{node_name}\0{arg}")


def state_key(loop: Graph, key: str) -> tuple[str, int, str]:
    return ("state", id(loop), key)


def input_key(scope: Graph, key: str) -> tuple[str, int, str]:
    return ("input", id(scope), key)


def collect_literals(graph: Graph) -> Literals:
    literals = Literals()
    for scope in scopes(graph):
        for node in scope.nodes.values():
            for arg, source in node.args.items():
                if isinstance(source, Const):
                    literals.add(arg_key(scope, node.name, arg), source.value)
                elif isinstance(source, Coalesce) and isinstance(source.options[-1], Const):
                    literals.add(default_key(scope, node.name, arg), source.options[-1].value)
        for key, value in scope.state.items():
            literals.add(state_key(scope, key), value)
        for key, source in scope.declared_inputs.items():
            if isinstance(source, Const):
                literals.add(input_key(scope, key), source.value)
    return literals


def scopes(graph: Graph) -> Iterator[Graph]:
    yield graph
    for node in graph.nodes.values():
        if node.body is not None:
            yield from scopes(node.body)


def ops_of(graph: Graph) -> list[OpDef]:
    found: dict[int, OpDef] = {}
    for scope in scopes(graph):
        for node in scope.nodes.values():
            if node.op is not None:
                found.setdefault(id(node.op), node.op)
    return list(found.values())


def literal_types(probe: Probe, literals: Literals) -> dict[tuple[str, int, str], ProperType]:
    """The type of each literal as a value: ``"fast"`` is ``Literal["fast"]``, ``[1]``
    ``list[int]`` (loop state widens it: see :func:`mypytypes.widen`)."""
    from mypy.nodes import AssignmentStmt, NameExpr

    values: dict[str, ProperType] = {}
    wanted = set(probe.constant_names)
    for statement in probe.tree.defs:
        if isinstance(statement, AssignmentStmt) and len(statement.lvalues) == 1:
            target = statement.lvalues[0]
            if isinstance(target, NameExpr) and target.name in wanted:
                found = probe.types.get(statement.rvalue)
                values[target.name] = mt.clean(found, literal=True)
    return {key: values.get(probe.constant_names[i], mt.unknown())
            for key, i in literals.index.items()}


# ------------------------------------------------------------------------------ ops


def signature(probe: Probe, op: OpDef, name: str) -> OpSignature:
    """``op``'s types from its copy ``name`` in the probe."""
    from mypy.nodes import ARG_STAR, ARG_STAR2, FuncDef

    symbol = probe.tree.names.get(name)
    fn = symbol.node if symbol is not None else None
    if not isinstance(fn, FuncDef):
        # A Decorator node: another decorator than @op wraps it and may change both
        # what it accepts and what it returns.
        return unknown_signature(op)
    from mypy.types import CallableType

    typed = fn.type if isinstance(fn.type, CallableType) else None  # None: no annotation
    declared = mt.clean(typed.ret_type) if typed is not None else None
    params: dict[str, ProperType] = {}
    var_keyword: ProperType | None = None
    arg_types = typed.arg_types if typed is not None else [None] * len(fn.arg_names)
    for arg_name, kind, arg_type in zip(fn.arg_names, fn.arg_kinds, arg_types, strict=True):
        if kind == ARG_STAR2:
            var_keyword = mt.clean(arg_type)
        elif kind != ARG_STAR and arg_name is not None:
            params[arg_name] = mt.clean(arg_type)
    keys = op.outputs or ()
    if op.return_annotation is not None and declared is not None:
        outputs = _declared_outputs(probe, op, declared, keys)
    else:
        outputs = _inferred_outputs(probe, op, fn, keys)
    return OpSignature(params, var_keyword, outputs)


def _declared_outputs(probe: Probe, op: OpDef, declared: ProperType,
                      keys: tuple[str, ...]) -> dict[str, ProperType]:
    from mypy.types import Instance

    item: ProperType = declared
    if op.kind is OpKind.ASYNC and isinstance(item, Instance) and \
            item.type.fullname in _COROUTINES and len(item.args) == 3:
        item = mt.clean(item.args[2])
    if op.kind.is_generator:
        if isinstance(item, Instance) and item.type.fullname in _STREAMS and item.args:
            item = mt.clean(item.args[0])
        else:
            item = mt.unknown()
    return {key: _value_type(item, key) for key in keys}


def _value_type(result: ProperType, key: str) -> ProperType:
    """The type of ``result[key]`` for a dict-like result type; ``Any`` if unknown."""
    from mypy.maptype import map_instance_to_supertype
    from mypy.types import Instance, NoneType, TypedDictType, UnionType

    if isinstance(result, TypedDictType):
        return mt.clean(result.items.get(key))
    if isinstance(result, UnionType):  # ``X | None``: None means "no outputs"
        items = [mt.clean(t) for t in result.items]
        return mt.union([_value_type(t, key) for t in items if not isinstance(t, NoneType)])
    if isinstance(result, Instance):
        mapping = next((base for base in result.type.mro if base.fullname == _MAPPING), None)
        if mapping is not None:
            as_mapping = map_instance_to_supertype(result, mapping)
            if len(as_mapping.args) == 2:
                return mt.clean(as_mapping.args[1])
    return mt.unknown()


def _inferred_outputs(probe: Probe, op: OpDef, fn: FuncDef,
                      keys: tuple[str, ...]) -> dict[str, ProperType]:
    """Per key, the union of what each returned (or yielded) expression gives it."""
    from mypy.nodes import StrExpr
    from mypy.types import NoneType

    found: dict[str, list[ProperType]] = {key: [] for key in keys}
    for expr in _result_expressions(fn, op.kind):
        pairs = _literal_pairs(expr)
        if pairs is not None:
            for item_key, value in pairs:
                if isinstance(item_key, StrExpr):
                    if item_key.value in found and value in probe.types:
                        found[item_key.value].append(_value(probe, value))
                else:  # ``**spread``: its value type, for every key
                    _add_for_every_key(found, _typed(probe, value))
            continue
        whole = _typed(probe, expr)
        if whole is not None and not isinstance(whole, NoneType):
            _add_for_every_key(found, whole)
    return {key: mt.union(types) for key, types in found.items()}


def _value(probe: Probe, expr: Expression) -> ProperType:
    """The type of one output value expression.

    A literal constant keeps its literal type. A value built by a display holding a
    dict display (``{"a": 1}``, ``[{"a": 1}]``) is ``Any``: mypy types those by their
    context (the same display is a ``TypedDict`` where one is expected), and the
    probe has no context to give, so a plain ``dict[str, int]`` would be a guess.
    """
    if _context_typed(expr):
        return mt.unknown()
    return mt.clean(probe.types[expr], literal=True)


def _context_typed(expr: Expression) -> bool:
    from mypy.nodes import DictExpr, ListExpr, SetExpr, TupleExpr

    if isinstance(expr, DictExpr):
        return True
    if isinstance(expr, (ListExpr, SetExpr, TupleExpr)):
        return any(_context_typed(item) for item in expr.items)
    return False


def _literal_pairs(expr: Expression) -> list[tuple[Expression | None, Expression]] | None:
    """The (key, value) entries of a result dict literal, as the probe rewrote it.

    ``(("k", v), (None, spread))`` (see ``probe.probe_function``); a dict display left
    as it was is read too (its values then carry mypy's dict-display context).
    """
    from mypy.nodes import DictExpr, TupleExpr

    if isinstance(expr, DictExpr):
        return list(expr.items)
    if not isinstance(expr, TupleExpr):
        return None
    pairs: list[tuple[Expression | None, Expression]] = []
    for item in expr.items:
        if not (isinstance(item, TupleExpr) and len(item.items) == 2):
            return None
        pairs.append((item.items[0], item.items[1]))
    return pairs


def _typed(probe: Probe, expr: Expression) -> ProperType | None:
    """The expression's type, or None when mypy did not check it (unreachable code)."""
    found = probe.types.get(expr)
    return mt.clean(found) if found is not None else None


def _add_for_every_key(found: dict[str, list[ProperType]], whole: ProperType | None) -> None:
    if whole is None:
        return
    for key, types in found.items():
        types.append(_value_type(whole, key))


def _result_expressions(fn: FuncDef, kind: OpKind) -> list[Expression]:
    from mypy.traverser import all_return_statements, all_yield_expressions

    if kind.is_generator:
        return [y.expr for y, _ in all_yield_expressions(fn) if y.expr is not None]
    return [r.expr for r in all_return_statements(fn) if r.expr is not None]


def signatures(probe: Probe, ops: list[OpDef],
               names: Mapping[Any, str]) -> dict[int, OpSignature]:
    """Per op (by ``id``), its signature; ``Any`` throughout for one the probe lacks."""
    found: dict[int, OpSignature] = {}
    for op in ops:
        name = names.get(op.fn)
        found[id(op)] = signature(probe, op, name) if name else unknown_signature(op)
    return found


def inferred_ops(ops: list[OpDef], names: Mapping[Any, str]) -> dict[str, bool]:
    """Generated name -> is-a-generator, for the ops whose outputs are inferred."""
    return {names[op.fn]: op.kind.is_generator for op in ops
            if op.return_annotation is None and op.fn in names}

