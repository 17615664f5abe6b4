"""Name allocation for generated code: unique ASCII identifiers, never a user's or a builtin.

Every name the code generator writes — locals, parameters, helper functions —
comes from a :class:`Namespace`, which hands out :class:`~compiler.codegen.pyast.Ident`
values. They are ASCII, so Python's NFKC normalisation of identifiers cannot
merge two of them (``ﬁx`` and ``fix`` are one name to the parser), and they
never equal a name the module already binds (copied user code, imports, the
runtime) nor a builtin or keyword, so generated code cannot shadow what it calls.
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata
from collections.abc import Iterable

from compiler.codegen.pyast import Ident

_BUILTINS = frozenset(dir(builtins))
_NOT_ASCII_WORD = re.compile(r"[^A-Za-z0-9_]+")


def ascii_hint(text: str) -> str:
    """``text`` as a readable ASCII identifier stem: ``"área m²"`` -> ``"area_m2"``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem = _NOT_ASCII_WORD.sub("_", folded)
    if not stem or stem[0].isdigit():
        stem = f"v_{stem}"
    return stem


def canonical(name: str) -> str:
    """How the parser sees an identifier (NFKC): the key for "is this name taken?"."""
    return unicodedata.normalize("NFKC", name)


class Namespace:
    """Hands out fresh names; a child namespace also avoids everything its parents took."""

    def __init__(self, reserved: Iterable[str] = (), parent: Namespace | None = None) -> None:
        self.taken: set[str] = {canonical(n) for n in reserved}
        self.parent = parent
        self._next: dict[str, int] = {}  # stem -> next ``_N`` suffix to try

    def _is_free(self, name: str) -> bool:
        if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in _BUILTINS:
            return False
        ns: Namespace | None = self
        while ns is not None:
            if name in ns.taken:
                return False
            ns = ns.parent
        return True

    def fresh(self, hint: str) -> Ident:
        """A new identifier that reads like ``hint``."""
        stem = ascii_hint(hint)
        name = stem
        if not self._is_free(name):
            n = self._next.get(stem, 2)
            while not self._is_free(f"{stem}_{n}"):
                n += 1
            self._next[stem] = n + 1
            name = f"{stem}_{n}"
        self.taken.add(name)
        return Ident(name)

    def child(self) -> Namespace:
        return Namespace(parent=self)
