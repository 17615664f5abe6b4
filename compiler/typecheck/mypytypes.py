"""Small operations on mypy types, in the vocabulary the wiring check needs.

Every type that leaves inference goes through :func:`clean`, which keeps only what is
*known*: type variables of generic ops and ``Never`` (an empty ``[]`` inferred without
context) become ``Any``, recursive aliases are cut off, and a literal's "last known
value" (mypy's ``"a"`` is a ``str`` known to be ``"a"``) is either kept as the literal
type (a value passed on: it still fits a ``Literal["a", "b"]`` parameter) or dropped
(:func:`widen`, for a variable such as loop state, which may later hold any ``str``).
``Any`` is compatible with everything in mypy's subtype relation, so an unknown type
can never produce an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import mypy.types  # noqa: F401 -- must load before mypy.type_visitor (import cycle in mypy)
from mypy.type_visitor import TypeTranslator
from mypy.types import (
    AnyType,
    CallableType,
    DeletedType,
    ErasedType,
    Instance,
    LiteralType,
    NoneType,
    Overloaded,
    ParamSpecType,
    PartialType,
    ProperType,
    Type,
    TypeAliasType,
    TypeOfAny,
    TypeVarTupleType,
    TypeVarType,
    UnboundType,
    UninhabitedType,
    UnpackType,
    get_proper_type,
)

if TYPE_CHECKING:
    from mypy.nodes import MypyFile, TypeInfo
    from mypy.options import Options

_MAX_ALIAS_DEPTH = 6


def unknown() -> AnyType:
    return AnyType(TypeOfAny.special_form)


class _Clean(TypeTranslator):
    """The known part of a type: see the module docstring."""

    def __init__(self, widen: bool = False) -> None:
        super().__init__()
        self.alias_depth = 0
        self.saw_any = False
        self.widen = widen

    def visit_any(self, t: AnyType, /) -> Type:
        self.saw_any = True
        return t

    def _unknown(self) -> Type:
        self.saw_any = True
        return unknown()

    def visit_type_alias_type(self, t: TypeAliasType, /) -> Type:
        if self.alias_depth >= _MAX_ALIAS_DEPTH:
            return self._unknown()
        self.alias_depth += 1
        try:
            return get_proper_type(t).accept(self)
        finally:
            self.alias_depth -= 1

    def visit_instance(self, t: Instance, /) -> Type:
        return Instance(t.type, [arg.accept(self) for arg in t.args], t.line, t.column)

    def visit_literal_type(self, t: LiteralType, /) -> Type:
        return t.fallback.accept(self) if self.widen else t

    def visit_callable_type(self, t: CallableType, /) -> Type:
        if t.variables:  # a generic callable: its type variables cannot be spelled here
            return self._unknown()
        return t.copy_modified(arg_types=self.translate_type_list(t.arg_types),
                               ret_type=t.ret_type.accept(self))

    def visit_overloaded(self, t: Overloaded, /) -> Type:
        return self._unknown()

    def visit_type_var(self, t: TypeVarType, /) -> Type:
        return self._unknown()

    def visit_param_spec(self, t: ParamSpecType, /) -> Type:
        return self._unknown()

    def visit_type_var_tuple(self, t: TypeVarTupleType, /) -> Type:
        return self._unknown()

    def visit_unpack_type(self, t: UnpackType, /) -> Type:
        return self._unknown()

    def visit_uninhabited_type(self, t: UninhabitedType, /) -> Type:
        return self._unknown()

    def visit_erased_type(self, t: ErasedType, /) -> Type:
        return self._unknown()

    def visit_deleted_type(self, t: DeletedType, /) -> Type:
        return self._unknown()

    def visit_partial_type(self, t: PartialType, /) -> Type:
        return self._unknown()

    def visit_unbound_type(self, t: UnboundType, /) -> Type:
        return self._unknown()


def clean(t: Type | None, literal: bool = False) -> ProperType:
    """The known part of ``t`` (None: nothing is known, ``Any``).

    ``literal``: the type of a value (not of a variable): a literal stays a literal.
    """
    if t is None:
        return unknown()
    proper = get_proper_type(t)
    if literal and isinstance(proper, Instance) and proper.last_known_value is not None:
        proper = proper.last_known_value
    return get_proper_type(proper.accept(_Clean()))


def widen(t: Type) -> ProperType:
    """``t`` as the type of a variable: ``Literal["a"]`` is ``str``, ``Literal[1]`` ``int``."""
    return get_proper_type(t.accept(_Clean(widen=True)))


def has_any(t: Type) -> bool:
    """Does ``t`` contain ``Any`` anywhere (``list[Any]``, ``int | Any``, ``Any``)?"""
    cleaner = _Clean()
    t.accept(cleaner)
    return cleaner.saw_any


def is_unknown(t: Type) -> bool:
    return isinstance(get_proper_type(t), AnyType)


def is_none(t: Type) -> bool:
    return isinstance(get_proper_type(t), NoneType)


def is_never(t: Type) -> bool:
    return isinstance(get_proper_type(t), UninhabitedType)


def is_compatible(actual: Type, expected: Type, options: Options) -> bool:
    """mypy's own answer to "can a value of type ``actual`` be passed as ``expected``?"."""
    from mypy.subtypes import is_subtype

    return is_subtype(actual, expected, options=options)


def union(types: list[ProperType]) -> ProperType:
    from mypy.typeops import make_simplified_union

    if not types:
        return unknown()
    return get_proper_type(make_simplified_union(types))


def meet(a: Type, b: Type) -> ProperType:
    """The most general type both ``a`` and ``b`` accept; ``Never`` when none exists."""
    from mypy.meet import meet_types

    return meet_types(a, b)


def optional(t: ProperType) -> ProperType:
    return union([t, NoneType()])


def type_info(modules: Mapping[str, MypyFile], fullname: str) -> TypeInfo | None:
    """The TypeInfo of ``module.Name`` from the build's modules, if it was loaded."""
    from mypy.nodes import TypeInfo

    module, _, name = fullname.rpartition(".")
    tree = modules.get(module)
    symbol = tree.names.get(name) if tree is not None else None
    node = symbol.node if symbol is not None else None
    return node if isinstance(node, TypeInfo) else None


def list_of(item: Type, list_info: TypeInfo | None) -> ProperType:
    """``list[item]`` (``Any`` if builtins.list is somehow unavailable)."""
    if list_info is None:
        return unknown()
    return Instance(list_info, [item])


def describe(t: Type, options: Options) -> str:
    """How a message spells ``t``: ``int``, ``list[str]``, ``int | None``."""
    from mypy.messages import format_type_bare

    return format_type_bare(t, options)
