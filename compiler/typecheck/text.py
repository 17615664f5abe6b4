"""Spell a mypy type as annotation text valid in the generated module.

The generated module's namespace is the extraction's (copied definitions keep their
generated names, imports their bound names) plus what the code generator defines. A
type is spelled with those names; a class nothing binds yet gets a new ``from M import
N`` (listed in :attr:`TypeSpeller.imports`) when ``M`` is a public, importable module
and ``N`` is free. Whatever cannot be spelled exactly becomes ``Any`` (never a wider
type: a wider annotation could make ``mypy --strict`` reject the generated module where
the exact one would pass, while ``Any`` is compatible with everything).
"""

from __future__ import annotations

import ast
import builtins
import keyword
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from compiler.typecheck.probe import PROBE_MODULE

if TYPE_CHECKING:
    from mypy.nodes import TypeInfo
    from mypy.types import Type

    from compiler.frontend.extract import Extraction

# Names the texts may use for typing constructs, and where they come from. Their
# ``typing`` spellings (``typing.Mapping``) are mypy's names for the same classes.
VOCABULARY = {
    "Any": "typing", "Literal": "typing",
    **{name: "collections.abc" for name in (
        "AsyncGenerator", "AsyncIterable", "AsyncIterator", "Awaitable", "Callable",
        "Collection", "Container", "Coroutine", "Generator", "Hashable", "ItemsView",
        "Iterable", "Iterator", "KeysView", "Mapping", "MutableMapping", "MutableSequence",
        "MutableSet", "Reversible", "Sequence", "Sized", "ValuesView")},
}
_ABSTRACT_SET = "AbstractSet"  # typing.AbstractSet is collections.abc.Set


class TypeSpeller:
    """Type -> text for one generated module; collects the imports the texts need."""

    def __init__(self, extraction: Extraction, reserved: Iterable[str] = ()) -> None:
        self.from_names: dict[tuple[str, str], str] = {}  # (module, attr) -> bound name
        self.module_names: dict[str, str] = {}  # module -> how the module spells it
        self.bound: dict[str, tuple[str, str | None]] = {}  # name -> (module, attr)
        for line in extraction.imports:
            self._read_import(line)
        self.defined = {block.name for block in extraction.blocks if block.name}
        self.reserved = frozenset(reserved)
        self.by_identity = self._runtime_bindings()
        self.needed: dict[str, str] = {}  # name -> import line

    @property
    def imports(self) -> tuple[str, ...]:
        """Import lines the texts spelled so far need, beyond the extraction's own."""
        return tuple(sorted(set(self.needed.values())))

    # ----------------------------------------------------------------- bindings

    def _read_import(self, line: str) -> None:
        try:
            statement = ast.parse(line).body[0]
        except (SyntaxError, IndexError):
            return
        if isinstance(statement, ast.ImportFrom) and statement.module:
            for alias in statement.names:
                name = alias.asname or alias.name
                self.from_names[(statement.module, alias.name)] = name
                self.bound[name] = (statement.module, alias.name)
        elif isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.asname:
                    self.module_names[alias.name] = alias.asname
                    self.bound[alias.asname] = (alias.name, None)
                else:  # ``import a.b`` binds ``a`` and makes ``a.b`` spellable
                    self.module_names[alias.name] = alias.name
                    root = alias.name.split(".")[0]
                    self.module_names.setdefault(root, root)
                    self.bound[root] = (root, None)

    def _runtime_bindings(self) -> dict[int, str]:
        """Bound classes by identity: ``from decimal import Decimal`` is ``_decimal.Decimal``."""
        found: dict[int, str] = {}
        for (module, attr), name in self.from_names.items():
            value = getattr(sys.modules.get(module), attr, None)
            if isinstance(value, type):
                found.setdefault(id(value), name)
        for module, spelled in self.module_names.items():
            loaded = sys.modules.get(module)
            for attr, value in vars(loaded).items() if loaded is not None else ():
                if isinstance(value, type) and not attr.startswith("_"):
                    found.setdefault(id(value), f"{spelled}.{attr}")
        return found

    def _usable(self, name: str, module: str) -> bool:
        """Can ``name`` mean ``module.name`` in the generated module (importing it if needed)?"""
        if name in self.bound:
            bound_module, attr = self.bound[name]
            return attr == name and _same_module(bound_module, module)
        if name in self.defined or keyword.iskeyword(name) or hasattr(builtins, name):
            return False
        if name in self.reserved:  # the code generator imports the vocabulary itself
            return VOCABULARY.get(name) == module
        return True

    def _vocabulary(self, name: str) -> str | None:
        module = VOCABULARY[name]
        if not self._usable(name, module):
            return None
        if name not in self.bound:
            self.needed[name] = f"from {module} import {name}"
        return name

    # --------------------------------------------------------------------- names

    def class_name(self, info: TypeInfo) -> str | None:
        """How the generated module names the class ``info``; None if it cannot."""
        module, fullname = info.module_name, info.fullname
        path = fullname[len(module) + 1:]
        first, _, rest = path.partition(".")
        suffix = f".{rest}" if rest else ""
        if module == "builtins":
            return path if not rest and isinstance(getattr(builtins, path, None), type) else None
        if module == PROBE_MODULE:
            return path
        if module in ("typing", "collections.abc", "typing_extensions"):
            name = "Set" if first == _ABSTRACT_SET else first
            if name in VOCABULARY and not rest:
                return self._vocabulary(name)
        if (module, first) in self.from_names:
            return self.from_names[(module, first)] + suffix
        if module in self.module_names:
            return f"{self.module_names[module]}.{path}"
        runtime = _runtime_class(module, path)
        if runtime is not None and id(runtime) in self.by_identity:
            return self.by_identity[id(runtime)]
        if _importable(module) and self._usable(first, module):
            self.needed[first] = f"from {module} import {first}"
            return first + suffix
        return None

    # --------------------------------------------------------------------- types

    def spell(self, t: Type) -> str:
        """``t`` as annotation text; ``Any`` where it (or a part of it) cannot be spelled."""
        return self._spell(t) or self._any()

    def _any(self) -> str:
        return self._vocabulary("Any") or "Any"

    def _spell(self, t: Type) -> str | None:
        from mypy.types import (
            AnyType,
            CallableType,
            Instance,
            LiteralType,
            NoneType,
            TupleType,
            TypedDictType,
            TypeType,
            UnionType,
            get_proper_type,
        )

        p = get_proper_type(t)
        if isinstance(p, AnyType):
            return self._any()
        if isinstance(p, NoneType):
            return "None"
        if isinstance(p, Instance):
            return self._instance(p)
        if isinstance(p, UnionType):
            items = list(dict.fromkeys(self.spell(item) for item in p.items))
            return " | ".join(items)
        if isinstance(p, TupleType):
            fallback = p.partial_fallback
            if fallback.type.fullname != "builtins.tuple":  # a NamedTuple class
                return self.class_name(fallback.type)
            return f"tuple[{', '.join(self.spell(i) for i in p.items) or '()'}]"
        if isinstance(p, TypedDictType):
            named = p.fallback.type
            return self.class_name(named) if named.typeddict_type is not None else None
        if isinstance(p, LiteralType):
            return self._literal(p)
        if isinstance(p, TypeType):
            return f"type[{self.spell(p.item)}]"
        if isinstance(p, CallableType):
            return self._callable(p)
        return None

    def _instance(self, t: Type) -> str | None:
        from mypy.types import Instance

        assert isinstance(t, Instance)
        if t.type.fullname == "builtins.function":
            return self._callable_text("...", self._any())
        name = self.class_name(t.type)
        if name is None:
            return None
        if t.type.fullname == "builtins.tuple" and len(t.args) == 1:
            return f"tuple[{self.spell(t.args[0])}, ...]"
        if t.args:
            return f"{name}[{', '.join(self.spell(a) for a in t.args)}]"
        if t.type.type_vars:  # a bare generic: spelled with explicit Any for --strict
            return f"{name}[{', '.join(self._any() for _ in t.type.type_vars)}]"
        return name

    def _literal(self, t: Type) -> str | None:
        from mypy.types import LiteralType

        assert isinstance(t, LiteralType)
        literal = self._vocabulary("Literal")
        if literal is None:
            return None
        if t.is_enum_literal():
            enum = self.class_name(t.fallback.type)
            return f"{literal}[{enum}.{t.value}]" if enum else None
        return f"{literal}[{t.value!r}]"

    def _callable(self, t: Type) -> str | None:
        from mypy.nodes import ARG_POS
        from mypy.types import CallableType

        assert isinstance(t, CallableType)
        if t.variables:
            return None
        ret = self.spell(t.ret_type)
        if t.is_ellipsis_args:
            return self._callable_text("...", ret)
        if any(kind != ARG_POS for kind in t.arg_kinds):
            return None
        return self._callable_text(f"[{', '.join(self.spell(a) for a in t.arg_types)}]", ret)

    def _callable_text(self, args: str, ret: str) -> str | None:
        callable_name = self._vocabulary("Callable")
        return f"{callable_name}[{args}, {ret}]" if callable_name else None


def _same_module(a: str, b: str) -> bool:
    """``typing.Mapping`` and ``collections.abc.Mapping`` are one class to mypy."""
    abc = {"typing", "collections.abc", "typing_extensions"}
    return a == b or (a in abc and b in abc)


def _runtime_class(module: str, path: str) -> object | None:
    value: object | None = sys.modules.get(module)
    for part in path.split("."):
        value = getattr(value, part, None)
    return value if isinstance(value, type) else None


def _importable(module: str) -> bool:
    """Public, and already loaded (the op modules import it) or in the standard library."""
    if any(part.startswith("_") for part in module.split(".")):
        return False
    return module in sys.modules or module.split(".")[0] in sys.stdlib_module_names
