"""The wiring check: every value that flows along an edge against what receives it.

Two passes over the scopes of a graph:

1. **Readers** (bottom-up): for every ``PARENT`` key, the parameters that read it,
   directly or inside a sub-graph or loop it feeds. At the top level these decide
   the type of each run input (their *meet*: the most general type every reader
   accepts); readers with no common type are a conflict.
2. **Values** (top-down): the type of every node output (an op's inferred outputs; a
   sub-graph's results; a loop's state), of every ``PARENT`` key inside a scope (its
   source outside; a loop's state) and of every argument, checked against the
   parameter with mypy's subtype relation. A ``.collect()`` makes ``list[T]``; a
   result or write-back of a streamed value (depth >= 1) is ``list[T]``.

Loop state starts as the type of its initial value (a literal, or its ``inputs=``
source); a write-back must fit it. Two refinements keep good graphs good: state
initialised to ``None`` has the type ``W | None`` (W: the write-back's type), and state
whose initial type holds ``Any`` (``[]``) takes an equivalent, more precise write-back
type.

A ``coalesce(a["k"], b["k"], default)`` argument (SPEC §8) gives whichever option is
there, so its type is the union of its options' types (refs as above, the default a
``PARENT`` key or a literal); one unknown option makes the whole union unknown. A
``PARENT`` default is read by the parameter like a plain ``PARENT`` argument.
:func:`result_required` is where a result whose producer may be skipped at depth 0
becomes ``NotRequired``; unknown source kinds are ``Any``, so they can never cause an
error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from compiler.errors import CompileError
from compiler.typecheck import locate
from compiler.typecheck import mypytypes as mt
from compiler.typecheck.inference import (
    OpSignature,
    arg_key,
    default_key,
    input_key,
    state_key,
)
from compiler.typecheck.locate import Site, quoted
from operonx.ir.model import (
    Coalesce,
    Const,
    Graph,
    InputRef,
    Node,
    NodeKind,
    OutputRef,
    ResultSpec,
    Source,
    leaves,
)

if TYPE_CHECKING:
    from mypy.nodes import TypeInfo
    from mypy.options import Options
    from mypy.types import ProperType

LiteralKey = tuple[str, int, str]
SourceType = Callable[[Source, str], "ProperType"]  # a source's type in the enclosing scope


@dataclass(frozen=True)
class Reader:
    """A parameter that reads a ``PARENT`` key (possibly through sub-graph inputs)."""

    type: ProperType
    node: Node
    arg: str

    @property
    def site(self) -> Site:  # computed only for a message: it parses graph.py
        return arg_site(self.node, self.arg)

    @property
    def what(self) -> str:
        return _what(self.node, self.arg, self.site)


@dataclass
class ScopeFacts:
    """The mypy types of one scope, recorded by the final (checking) pass."""

    inputs: dict[str, ProperType]
    outputs: dict[str, dict[str, ProperType]]
    results: dict[str, ProperType]
    state: dict[str, ProperType] = field(default_factory=dict)


@dataclass
class Wiring:
    """Runs both passes over one top-level graph; see the module docstring."""

    signatures: Mapping[int, OpSignature]  # by id(OpDef)
    literals: Mapping[LiteralKey, ProperType]
    options: Options
    list_info: TypeInfo | None
    problems: list[CompileError] = field(default_factory=list)
    facts: dict[int, tuple[Graph, ScopeFacts]] = field(default_factory=dict)  # by id(Graph)
    run_inputs: dict[str, ProperType] = field(default_factory=dict)
    _readers: dict[int, dict[str, list[Reader]]] = field(default_factory=dict)

    # ------------------------------------------------------------------ entry

    def run(self, root: Graph) -> None:
        """Check ``root`` (a top-level graph or loop); fill ``facts`` and ``run_inputs``."""
        readers = self.readers(root)
        by_input: dict[str, list[Reader]] = {}
        for key, found in readers.items():
            by_input.setdefault(_run_input_of(root, key), []).extend(found)
        # A top-level loop's optional inputs are its state: typed by their initial values.
        names = root.required_inputs if root.kind == "loop" else [
            *root.required_inputs, *root.optional_inputs]
        for name in names:
            self.run_inputs[name] = self.agreed_type(by_input.get(name, []), name)
        if root.kind == "loop":
            initial = {key: self._initial(root, key, self._root_source) for key in
                       root.result_keys}
            self.loop_state(root, initial, check=True)
            return
        parent: dict[str, ProperType] = {}
        for key in dict.fromkeys([*readers, *root.declared_inputs]):
            parent[key] = self.run_inputs.get(_run_input_of(root, key), mt.unknown())
            source = root.declared_inputs.get(key)
            if isinstance(source, Const):
                parent[key] = self._literal_default(root, key, parent[key])
        self.scope_facts(root, parent, check=True)

    def _root_source(self, source: Source, key: str) -> ProperType:
        if isinstance(source, InputRef):
            return self.run_inputs.get(source.key, mt.unknown())
        return mt.unknown()

    def _literal_default(self, root: Graph, key: str, wanted: ProperType) -> ProperType:
        """A top-level ``inputs={"k": literal}`` default: it must suit k's readers."""
        literal = self.literals.get(input_key(root, key), mt.unknown())
        if mt.is_unknown(wanted):
            return literal
        if not mt.is_compatible(literal, wanted, self.options):
            self.problem(locate.input_key(root.loc, key),
                         f"input {quoted(key)} of graph {root.name!r} expects "
                         f"{self.describe(wanted)}, got "
                         f"{self.describe_value(literal, self.describe(wanted))} from its "
                         "default value")
        return wanted

    # --------------------------------------------------------- pass 1: readers

    def readers(self, scope: Graph) -> dict[str, list[Reader]]:
        """PARENT key -> every parameter reading it, in this scope and the scopes it feeds."""
        if id(scope) in self._readers:
            return self._readers[id(scope)]
        found: dict[str, list[Reader]] = {}
        for node in scope.nodes.values():
            for arg, source in node.args.items():
                # A coalesce's PARENT default is read whenever no producer ran.
                for read in (s for s in leaves(source) if isinstance(s, InputRef)):
                    if node.op is not None:
                        reader = Reader(self.signatures[id(node.op)].param(arg), node, arg)
                        found.setdefault(read.key, []).append(reader)
                    elif node.body is not None:
                        inner = self.readers(node.body).get(arg, [])
                        found.setdefault(read.key, []).extend(inner)
        self._readers[id(scope)] = found
        return found

    def agreed_type(self, readers: list[Reader], key: str) -> ProperType:
        """The meet of what ``readers`` accept; a conflict is a problem (and ``Any``)."""
        agreed: ProperType = mt.unknown()
        seen: list[Reader] = []
        for reader in readers:
            if mt.is_unknown(reader.type):
                continue
            combined = mt.meet(agreed, reader.type)
            if mt.is_never(combined):
                other = next((r for r in seen if mt.is_never(mt.meet(r.type, reader.type))),
                             seen[0])
                self.problem(reader.site,
                             f"{reader.what} expects {self.describe(reader.type)}, but "
                             f"PARENT[{quoted(key)}] is also read as "
                             f"{self.describe(other.type)} by {other.what} "
                             f"(line {other.site.line})",
                             "one input has one type: make the annotations agree")
                return mt.unknown()
            agreed = combined
            seen.append(reader)
        return agreed

    # ---------------------------------------------------------- pass 2: values

    def scope_facts(self, scope: Graph, parent: dict[str, ProperType],
                    check: bool) -> ScopeFacts:
        """Types of everything in ``scope`` given its PARENT types; ``check``: report."""
        outputs: dict[str, dict[str, ProperType]] = {}
        for node in scope.nodes.values():  # declaration order: producers come first
            outputs[node.name] = self.node_outputs(scope, node, parent, outputs, check)
        facts = ScopeFacts(dict(parent), outputs, {})
        if scope.kind == "loop":
            facts.state = dict(parent)
            facts.results = dict(parent)
        else:
            specs = {**scope.results, **scope.writebacks}
            facts.results = {key: self.result_type(outputs, spec) for key, spec in specs.items()}
        if check:
            self.facts[id(scope)] = (scope, facts)
        return facts

    def node_outputs(self, scope: Graph, node: Node, parent: dict[str, ProperType],
                     outputs: dict[str, dict[str, ProperType]],
                     check: bool) -> dict[str, ProperType]:
        if node.op is not None:
            signature = self.signatures[id(node.op)]
            if check:
                for arg, source in node.args.items():
                    self.check_argument(scope, node, arg, source, signature.param(arg),
                                        parent, outputs)
            return dict(signature.outputs)
        body = node.body
        assert body is not None

        def source_type(source: Source, key: str) -> ProperType:
            return self.source_type(scope, node, key, source, parent, outputs)

        if node.kind is NodeKind.LOOP:
            initial = {key: self._initial(body, key, source_type) for key in body.result_keys}
            return self.loop_state(body, initial, check)
        inner = {key: source_type(source, key) for key, source in node.args.items()}
        if check:
            for key, source in node.args.items():
                if not isinstance(source, InputRef) and mt.is_unknown(inner[key]):
                    inner[key] = self.agreed_type(self.readers(body).get(key, []), key)
        return self.scope_facts(body, inner, check).results

    def _initial(self, loop: Graph, key: str, source_type: SourceType) -> ProperType:
        """The type of a state variable's initial value, as a variable's (literals widened)."""
        if key in loop.state:
            return mt.widen(self.literals.get(state_key(loop, key), mt.unknown()))
        source = loop.declared_inputs.get(key)
        if isinstance(source, Const):
            return mt.widen(self.literals.get(input_key(loop, key), mt.unknown()))
        return mt.widen(source_type(source, key)) if source is not None else mt.unknown()

    def loop_state(self, loop: Graph, initial: dict[str, ProperType],
                   check: bool) -> dict[str, ProperType]:
        """The type of each state variable; ``check``: write-backs must fit it."""
        first = self.scope_facts(loop, initial, check=False)
        state: dict[str, ProperType] = {}
        written: dict[str, ProperType] = {}
        for key in loop.result_keys:
            start = initial.get(key, mt.unknown())
            spec = loop.writebacks.get(key)
            if spec is None:
                state[key] = start
                continue
            written[key] = self.result_type(first.outputs, spec)
            state[key] = self.state_type(start, written[key])
        if check:
            for key, value in written.items():
                if not mt.is_compatible(value, state[key], self.options):
                    spec = loop.writebacks[key]
                    self.problem(locate.writeback(loop.loc, key),
                                 f"PARENT[{quoted(key)}] (state of loop {loop.name!r}) expects "
                                 f"{self.describe(state[key])}, got "
                                 f"{self.describe_value(value, self.describe(state[key]))} "
                                 f"from {spec.node}[{quoted(spec.key)}]",
                                 f"state {quoted(key)} {_loop_start(loop, key)}; a write-back "
                                 "must keep the type of its initial value")
            self.scope_facts(loop, state, check=True)
        return state

    def state_type(self, start: ProperType, written: ProperType) -> ProperType:
        written = mt.widen(written)
        if mt.is_none(start):
            return mt.optional(written)
        if mt.has_any(start) and not mt.has_any(written) \
                and mt.is_compatible(written, start, self.options) \
                and mt.is_compatible(start, written, self.options):
            return written
        return start

    def result_type(self, outputs: dict[str, dict[str, ProperType]],
                    spec: ResultSpec) -> ProperType:
        value = outputs.get(spec.node, {}).get(spec.key, mt.unknown())
        return mt.list_of(value, self.list_info) if spec.depth >= 1 else value

    def source_type(self, scope: Graph, node: Node, arg: str, source: Source,
                    parent: dict[str, ProperType],
                    outputs: dict[str, dict[str, ProperType]]) -> ProperType:
        """The type of the value ``source`` gives ``node``'s argument ``arg``."""
        if isinstance(source, Const):
            return self.literals.get(arg_key(scope, node.name, arg), mt.unknown())
        if isinstance(source, InputRef):
            return parent.get(source.key, mt.unknown())
        if isinstance(source, OutputRef):
            value = outputs.get(source.node, {}).get(source.key, mt.unknown())
            return mt.list_of(value, self.list_info) if source.collect is not None else value
        if isinstance(source, Coalesce):
            options = self.option_types(scope, node, arg, source, parent, outputs)
            if any(mt.is_unknown(t) for t in options):
                return mt.unknown()  # never guess: one unknown option could be anything
            return mt.union(options)
        return mt.unknown()  # a source kind this check does not know (never an error)

    def option_types(self, scope: Graph, node: Node, arg: str, source: Coalesce,
                     parent: dict[str, ProperType],
                     outputs: dict[str, dict[str, ProperType]]) -> list[ProperType]:
        """The type of each option of a ``coalesce``, first to last."""
        return [self.literals.get(default_key(scope, node.name, arg), mt.unknown())
                if isinstance(option, Const)
                else self.source_type(scope, node, arg, option, parent, outputs)
                for option in source.options]

    def check_argument(self, scope: Graph, node: Node, arg: str, source: Source,
                       expected: ProperType, parent: dict[str, ProperType],
                       outputs: dict[str, dict[str, ProperType]]) -> None:
        actual = self.source_type(scope, node, arg, source, parent, outputs)
        if mt.is_compatible(actual, expected, self.options):
            return
        site = arg_site(node, arg)
        wanted = self.describe(expected)
        hint = _hint(scope, source)
        if isinstance(source, Coalesce):
            options = self.option_types(scope, node, arg, source, parent, outputs)
            hint = self._misfits(source, options, expected, wanted)
        self.problem(site, f"{_what(node, arg, site)} expects {wanted}, got "
                           f"{self.describe_value(actual, wanted)} from {_describe_source(source)}",
                     hint)

    def _misfits(self, source: Coalesce, options: list[ProperType], expected: ProperType,
                 wanted: str) -> str | None:
        """Which options of a refused ``coalesce`` do not fit: ``b["k"] is str``."""
        misfits = []
        for option, t in zip(source.options, options, strict=True):
            if not mt.is_compatible(t, expected, self.options):
                what = _describe_option(option)
                if not isinstance(option, OutputRef):  # only the last option can be
                    what = f"the default {what}"
                misfits.append(f"{what} is {self.describe_value(t, wanted)}")
        return "; ".join(misfits) or None

    # ---------------------------------------------------------------- output

    def describe(self, t: ProperType) -> str:
        return mt.describe(t, self.options)

    def describe_value(self, t: ProperType, wanted: str) -> str:
        """A value's type: ``str`` for ``"a"``, unless a ``Literal`` was wanted."""
        return self.describe(t if "Literal[" in wanted else mt.widen(t))

    def problem(self, site: Site, message: str, hint: str | None = None) -> None:
        self.problems.append(CompileError(message, site.file, site.line, site.col, hint))


def arg_site(node: Node, arg: str) -> Site:
    function = node.op.fn.__name__ if node.op is not None else node.name
    return locate.argument(node.loc, function, arg)


def _run_input_of(root: Graph, key: str) -> str:
    """The run input a PARENT key of the top-level scope reads."""
    source = root.declared_inputs.get(key)
    return source.key if isinstance(source, InputRef) else key


def _what(node: Node, arg: str, site: Site) -> str:
    callee = site.callee or (node.op.fn.__name__ if node.op is not None else node.name)
    return f"{callee}({arg}=...)"


def _describe_source(source: Source) -> str:
    if isinstance(source, Const):
        return f"the literal {_short_repr(source.value)}"
    if isinstance(source, InputRef):
        return f"PARENT[{quoted(source.key)}]"
    if isinstance(source, OutputRef):
        ref = f"{source.node}[{quoted(source.key)}]"
        if source.collect == "ordered":
            return f"{ref}.collect(ordered=True)"
        return f"{ref}.collect()" if source.collect else ref
    if isinstance(source, Coalesce):
        return f"coalesce({', '.join(_describe_option(o) for o in source.options)})"
    return "its source"


def _describe_option(option: Const | InputRef | OutputRef) -> str:
    """An option as written inside ``coalesce(...)``: a literal default is its repr."""
    return _short_repr(option.value) if isinstance(option, Const) else _describe_source(option)


def _hint(scope: Graph, source: Source) -> str | None:
    """Where a PARENT key inside a sub-graph or loop gets its value."""
    if not isinstance(source, InputRef) or (not scope.nested and scope.kind != "loop"):
        return None
    key = source.key
    if scope.kind == "loop":
        start = _loop_start(scope, key)
        spec = scope.writebacks.get(key)
        written = f"written back from {spec.node}[{quoted(spec.key)}]" if spec else ""
        parts = ", ".join(p for p in (start, written) if p)
        return f"PARENT[{quoted(key)}] is the state of loop {scope.name!r}" + (
            f" ({parts})" if parts else "")
    declared = scope.declared_inputs.get(key)
    if declared is None:
        return None
    return f"PARENT[{quoted(key)}] of sub-graph {scope.name!r} is {_describe_source(declared)}"


def _loop_start(loop: Graph, key: str) -> str:
    if key in loop.state:
        return f"starts as {_short_repr(loop.state[key])}"
    source = loop.declared_inputs.get(key)
    return f"starts as {_describe_source(source)}" if source is not None else ""


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def result_required(scope: Graph, key: str) -> bool:
    """Is result ``key`` always present? (SPEC §8 adds keys whose producer may be skipped.)"""
    return True
