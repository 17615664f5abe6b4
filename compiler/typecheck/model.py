"""What the analysis hands the code generator and the CLI: type *text* and located problems.

Every text is valid in the generated module: it uses the generated names of copied
definitions (after the extractor's renames), the names the extraction imports, the
typing vocabulary in :data:`compiler.typecheck.text.VOCABULARY`, and the import lines
in :attr:`GraphTypes.imports`. ``"Any"`` means unknown (the user wrote ``Any``, left a
type out, or mypy could not tell).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from compiler.errors import CompileError
from operonx.ir.model import Graph, OpDef

ANY = "Any"


@dataclass(frozen=True)
class FieldType:
    """A field of the ``Inputs`` or ``Result`` TypedDict."""

    text: str
    required: bool  # False: ``NotRequired[text]`` (an optional input, a maybe-absent result)


@dataclass(frozen=True)
class OpTypes:
    """One op function's types."""

    params: Mapping[str, str]  # parameter -> annotation text (``Any`` where unannotated)
    outputs: Mapping[str, str]  # output key -> the type of one returned/yielded value

    def param(self, name: str) -> str:
        return self.params.get(name, ANY)

    def output(self, key: str) -> str:
        return self.outputs.get(key, ANY)


@dataclass(frozen=True)
class ScopeTypes:
    """One scope (top-level graph, sub-graph body or loop body) as its readers see it."""

    inputs: Mapping[str, str]  # PARENT key -> type of what it reads (in a loop: the state)
    outputs: Mapping[str, Mapping[str, str]]  # node -> key -> value at the node's own depth
    results: Mapping[str, str]  # what one run of the scope gives (streamed keys are lists)
    state: Mapping[str, str] = field(default_factory=dict)  # loops: state key -> type

    def output(self, node: str, key: str) -> str:
        return self.outputs.get(node, {}).get(key, ANY)


_UNKNOWN_OP = OpTypes({}, {})
_UNKNOWN_SCOPE = ScopeTypes({}, {}, {})


@dataclass(frozen=True)
class GraphTypes:
    """The types of one graph: see the package docstring for how the generator uses them."""

    inputs: Mapping[str, FieldType]  # the ``Inputs`` TypedDict, in input order
    result: Mapping[str, FieldType]  # the ``Result`` TypedDict, in result-key order
    ops: Mapping[OpDef, OpTypes] = field(default_factory=dict)
    scopes: Mapping[Graph, ScopeTypes] = field(default_factory=dict)
    imports: tuple[str, ...] = ()  # import lines the texts need beyond the extraction's
    problems: tuple[CompileError, ...] = ()  # wiring errors, in source order
    warnings: tuple[str, ...] = ()  # why some types are unknown (the analysis degraded)

    def op(self, op: OpDef) -> OpTypes:
        """``op``'s types (every text ``Any`` for an op the analysis did not see)."""
        return self.ops.get(op, _UNKNOWN_OP)

    def scope(self, graph: Graph) -> ScopeTypes:
        return self.scopes.get(graph, _UNKNOWN_SCOPE)

    def raise_problems(self) -> None:
        """Raise :class:`TypeCheckError` listing every problem, if there is one."""
        if self.problems:
            raise TypeCheckError(self.problems)


class TypeCheckError(CompileError):
    """Every wiring problem of a graph; ``str(err)`` has one located line per problem."""

    def __init__(self, problems: tuple[CompileError, ...]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.message, first.file, first.line, first.col, first.hint)

    def render(self) -> str:
        return "\n".join(problem.render() for problem in self.problems)


class TypeCheckWarning(UserWarning):
    """The analysis could not run (or not completely): types are unknown, nothing is refused."""
