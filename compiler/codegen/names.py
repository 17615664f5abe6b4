"""Name allocation: unique identifiers that never shadow keywords, builtins or copied names."""

from __future__ import annotations

import builtins
import keyword
import re

_BUILTINS = frozenset(dir(builtins))


def identifier(text: str) -> str:
    """``text`` made into a lowercase-friendly identifier (``"my-key"`` -> ``"my_key"``)."""
    ident = re.sub(r"\W", "_", text)
    if not ident or ident[0].isdigit():
        ident = f"v_{ident}"
    return ident


class Namespace:
    """Hands out names; a child namespace also avoids everything its parent has taken."""

    def __init__(self, reserved: set[str] | frozenset[str] = frozenset(),
                 parent: Namespace | None = None) -> None:
        self.taken: set[str] = set(reserved)
        self.parent = parent

    def _is_free(self, name: str) -> bool:
        if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in _BUILTINS:
            return False
        ns: Namespace | None = self
        while ns is not None:
            if name in ns.taken:
                return False
            ns = ns.parent
        return True

    def fresh(self, base: str) -> str:
        base = identifier(base)
        name, n = base, 2
        while not self._is_free(name):
            name = f"{base}_{n}"
            n += 1
        self.taken.add(name)
        return name

    def child(self) -> Namespace:
        return Namespace(parent=self)
