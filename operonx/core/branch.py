"""Branching in the DSL (SPEC §8): ``if_``, ``.elif_``, ``.else_`` and ``coalesce``.

>>> START >> kind >> if_(kind["kind"] == "audio", audio).else_(plain)
>>> out = publish(text=coalesce(audio["text"], plain["text"]))

``if_(...)`` records a :class:`~operonx.ir.branching.BranchDraft` in the open
block; ``>>`` places it after the nodes on its left. The block's closing turns
drafts into IR branches and checks them (``operonx.ir.build.finalize``).
"""

from __future__ import annotations

from typing import Any

from operonx.core.conditions import Cond, as_cond
from operonx.core.dsl import (
    GraphOp,
    ParentRef,
    Ref,
    _ArgumentValue,
    _current_block,
    _find_hidden_ref,
    _Handle,
    _Routing,
    _Terminal,
    user_loc,
)
from operonx.errors import GraphError
from operonx.ir.branching import BranchDraft
from operonx.ir.model import Coalesce, Const, InputRef, OutputRef, Source, SourceLoc


def _error(message: str, loc: SourceLoc, hint: str | None = None) -> GraphError:
    return GraphError(message, loc.file, loc.line, hint)


class Branch(_Routing):
    """An ``if_(...)`` chain. Add every arm before placing it with ``>>``."""

    def __init__(self, block: GraphOp, loc: SourceLoc) -> None:
        self._block = block
        self._draft = BranchDraft(loc)
        self._targets: list[_Handle] = []
        self._has_else = False
        self._wired = False

    def _arm(self, what: str, condition: Any, target: Any) -> Branch:
        loc = user_loc()
        self._block._require_open(what)
        if self._has_else:
            raise _error(f"{what} after .else_(...): the else arm is the last one", loc)
        if self._wired:
            raise _error(f"{what} after the branch was placed with >>", loc,
                         "add every arm first: a >> if_(c1, x).elif_(c2, y).else_(z)")
        handles = self._check_targets(what, target, loc)
        expr = None
        if condition is not None:
            cond = as_cond(condition, what)
            for ref in cond.refs:
                if isinstance(ref, Ref) and ref.handle.block is not self._block:
                    raise _error(f"{what}: the condition reads {ref!r}, a node of another graph",
                                 loc, "a sub-graph reads outer values through inputs={...}")
            expr = cond.expr
        self._draft.arms.append((expr, tuple(h.name for h in handles)))
        self._targets.extend(handles)
        return self

    def _check_targets(self, what: str, target: Any, loc: SourceLoc) -> list[_Handle]:
        targets = list(target) if isinstance(target, (list, tuple)) else [target]
        if not targets:
            raise _error(f"{what} has no target", loc, "give a node, a sub-graph or a list")
        for t in targets:
            if isinstance(t, _Terminal):
                raise _error(f"{what}: {t!r} cannot be a branch target", loc,
                             "a target is a node, a sub-graph or a list of them")
            if not isinstance(t, _Handle):
                raise _error(f"{what}: a branch target is a node, a sub-graph or a list of "
                             f"them, not {type(t).__name__} {t!r}", loc,
                             "place a branch after a target instead: x >> if_(...)")
            if t.block is not self._block:
                raise _error(f"{what}: the target {t.name!r} is a node of another graph", loc)
        return targets

    def elif_(self, condition: Any, target: Any) -> Branch:
        """Another arm: taken when no earlier condition held and this one does."""
        return self._arm(".elif_(...)", condition, target)

    def else_(self, target: Any) -> Branch:
        """The last arm: taken when no condition held."""
        self._arm(".else_(...)", None, target)
        self._has_else = True
        return self

    # -- >>

    def _place_after(self, lefts: list[Any], loc: SourceLoc) -> None:
        self._block._require_open("placing a branch with >>")
        if self._draft.sources is not None:
            raise _error(f"this branch is already placed after {list(self._draft.sources)} "
                         f"(line {self._draft.source_loc.line if self._draft.source_loc else '?'})",
                         loc, "a branch is placed once: write [a, b] >> if_(...)")
        names: list[str] = []
        for x in lefts:
            if x is _end():
                raise _error("END cannot come before a branch", loc)
            if isinstance(x, _Terminal):
                names.append("START")
            elif isinstance(x, _Handle):
                if x.block is not self._block:
                    raise _error(f"{x.name!r} >> if_(...) connects nodes of different graphs",
                                 loc)
                names.append(x.name)
            else:
                raise _error(f">> places a branch after nodes or START, not "
                             f"{type(x).__name__} {x!r}", loc)
        if not names:
            raise _error("a branch is placed after nothing", loc)
        self._draft.sources = tuple(dict.fromkeys(names))
        self._draft.source_loc = loc
        self._wired = True

    def _stands_for(self) -> list[Any]:
        self._wired = True
        return list(self._targets)

    def __rshift__(self, other: Any) -> Any:
        from operonx.core.dsl import _wire

        _wire(self, other)
        return other

    def __rrshift__(self, other: Any) -> Branch:
        from operonx.core.dsl import _wire

        _wire(other, self)
        return self

    def __repr__(self) -> str:
        arms = [f"{'else' if c is None else 'if'} -> {list(t)}" for c, t in self._draft.arms]
        return f"<branch {'; '.join(arms)}>"


def _end() -> Any:
    from operonx.core.dsl import END

    return END


def if_(condition: Cond | Ref | ParentRef, target: Any) -> Branch:
    """Start a branch: ``target`` runs when ``condition`` holds (SPEC §8).

    ``condition`` compares refs with literals or refs (``== != < <= > >=``,
    ``.isin([...])``, ``.is_none()``), combined with ``&``, ``|``, ``~``; a bare
    ref tests its truth value. ``target`` is a node, a sub-graph or a list.
    """
    block = _current_block()
    loc = user_loc()
    if block is None:
        raise _error("if_(...) is used inside a `with GraphOp(...)` block", loc)
    branch = Branch(block, loc)._arm("if_(...)", condition, target)
    block._draft_or_raise().branches.append(branch._draft)  # once its first arm is valid
    return branch


class Coalesced(_ArgumentValue):
    """``coalesce(...)`` as an argument value (see :func:`coalesce`)."""

    def __init__(self, options: tuple[Any, ...]) -> None:
        self.options = options

    def to_argument(self) -> Source:
        out: list[Const | InputRef | OutputRef] = []
        for option in self.options:
            if isinstance(option, Ref):
                out.append(option.to_source())
            elif isinstance(option, ParentRef):
                out.append(InputRef(option.key))
            else:
                out.append(Const(option))
        return Coalesce(tuple(out))

    def dsl_refs(self) -> list[Ref]:
        return [o for o in self.options if isinstance(o, Ref)]

    def __repr__(self) -> str:
        return f"coalesce({', '.join(map(repr, self.options))})"


def coalesce(*options: Any) -> Coalesced:
    """The first of ``options`` whose producer ran; a node reading it runs if any did.

    Options are node refs (``a["k"]``, of one stream depth); the last may be a
    ``PARENT`` ref or a literal, used when no producer ran.
    """
    loc = user_loc()
    if not options:
        raise _error("coalesce() needs at least one ref", loc)
    for i, option in enumerate(options):
        if isinstance(option, Ref):
            continue
        if isinstance(option, (_ArgumentValue, Cond, _Handle, _Terminal, _Routing)):
            raise _error(f"coalesce(...) option {i + 1} is {type(option).__name__} {option!r}; "
                         "options are node refs like a['k']", loc)
        if i != len(options) - 1:
            raise _error(f"coalesce(...) option {i + 1} ({option!r}) is always there, so the "
                         "options after it would never be read", loc,
                         "put a PARENT ref or literal default last")
        if not isinstance(option, ParentRef) and _find_hidden_ref(option) is not None:
            raise _error(f"coalesce(...) default {option!r} hides a reference", loc)
    return Coalesced(options)
