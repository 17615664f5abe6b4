"""Writing Python source safely: checked identifiers, literals, and a small pretty-printer.

User text (names, keys, literals, file names) reaches generated code only through
here: as ``repr()`` of a str/int/bool/tuple, as a literal source text that
``ast.literal_eval`` accepts, or as an identifier that ``str.isidentifier()``
accepts and that is not a keyword. Anything else is a compiler bug and raises.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from dataclasses import dataclass

LIMIT = 100
_BUILTINS = frozenset(dir(builtins))


class Names:
    """Hands out identifiers that never shadow keywords, builtins or names already taken."""

    def __init__(self, taken: set[str] | frozenset[str] = frozenset()) -> None:
        self.taken: set[str] = set(taken)

    def fresh(self, base: str) -> str:
        base = re.sub(r"\W", "_", base) or "v"
        if base[0].isdigit():
            base = f"v_{base}"
        name, n = base, 2
        while (name in self.taken or name in _BUILTINS or keyword.iskeyword(name)
               or keyword.issoftkeyword(name)):
            name = f"{base}_{n}"
            n += 1
        self.taken.add(name)
        return name


@dataclass(frozen=True)
class Code:
    """Source text that is safe by construction (see :func:`ident` and :func:`literal`)."""

    text: str


def ident(name: str) -> Code:
    """An identifier, checked."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise AssertionError(f"not an identifier: {name!r}")
    return Code(name)


def literal(text: str) -> Code:
    """Literal source text (from ``compiler.ir.lower.literal``), checked again."""
    ast.literal_eval(text)
    return Code(text)


@dataclass(frozen=True)
class Call:
    """``fn(*args, **kwargs)`` in generated code: ``fn`` is an identifier, or :class:`Code`
    the compiler wrote (``calls.call``, ``lambda: double``); keyword names are identifiers."""

    fn: str | Code
    args: tuple[object, ...] = ()
    kwargs: tuple[tuple[str, object], ...] = ()

    @property
    def opening(self) -> str:
        return f"{self.fn.text if isinstance(self.fn, Code) else ident(self.fn).text}("


def comment(text: str) -> str:
    """``text`` fit for a ``#`` comment: nothing that could end the line."""
    return "".join(c if c.isprintable() else "?" for c in text)


def flat(value: object) -> str:
    """``value`` as source on one line."""
    if isinstance(value, Code):
        return value.text
    if isinstance(value, Call):
        parts = [flat(a) for a in value.args]
        parts += [f"{ident(k).text}={flat(v)}" for k, v in value.kwargs]
        return f"{value.opening}{', '.join(parts)})"
    if isinstance(value, tuple):
        inner = ", ".join(flat(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{flat(k)}: {flat(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise AssertionError(f"cannot write {type(value).__name__} into generated code")


def lines(value: object, indent: int = 0, prefix: str = "", suffix: str = "") -> list[str]:
    """``value`` as source lines within :data:`LIMIT` columns where it can be broken."""
    pad = " " * indent
    one = f"{pad}{prefix}{flat(value)}{suffix}"
    if len(one) <= LIMIT or not isinstance(value, (Call, tuple, dict)) or not value:
        return [one]
    items: list[tuple[str, object]]
    if isinstance(value, Call):
        opening, closing = value.opening, ")"
        items = [("", a) for a in value.args]
        items += [(f"{ident(k).text}=", v) for k, v in value.kwargs]
    elif isinstance(value, tuple):
        opening, closing = "(", ")"
        items = [("", v) for v in value]
    else:
        opening, closing = "{", "}"
        items = [(f"{flat(k)}: ", v) for k, v in value.items()]
    out = [f"{pad}{prefix}{opening}"]
    for item_prefix, item in items:
        out += lines(item, indent + 4, item_prefix, ",")
    out.append(f"{pad}{closing}{suffix}")
    return out
