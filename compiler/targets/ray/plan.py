"""The plan as data, and the functions it points at.

Walks the lowered IR once and produces, for the module: one stage function per
task-running unit (``worker.py``), one ``until`` function per checked loop
condition, and the plan the driver's scheduler reads — ``_Region`` / ``_Stage`` /
``_Read`` / ``_Loop`` / ``_Scope`` constructor calls (``templates/ray/driver.py.j2``),
one module-level constant per region and body scope, innermost first.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field

from compiler.ir.nodes import ArgIR, LoopIR, RegionIR, ScopeIR, StageIR, literal_text
from compiler.targets.ray.source import Call, Code, Names, comment, ident, lines, literal
from compiler.targets.ray.units import (
    Unit,
    buffer_id,
    levels_up,
    region_units,
    task_arguments,
)
from compiler.targets.ray.worker import stage_function
from operonx.ir.model import UntilExpr
from operonx.ir.resources import BUILTIN

# Ray retries a task whose worker died; an op must run once per frame (a retried generator
# would yield again), so a lost worker fails the run instead.
_NO_RETRIES = ("max_retries", 0)


@dataclass
class Planner:
    names: Names  # module-level names: copied code, runtime, and what this adds
    chains: dict[str, tuple[tuple[str, ...], ...]]  # per scope symbol
    functions: list[str] = field(default_factory=list)
    definitions: list[str] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)
    fused: list[str] = field(default_factory=list)  # "a >> b" per fused chain, for the header

    def top(self, scope: ScopeIR) -> None:
        """Plan the whole module; the top scope becomes ``_PLAN``."""
        self.definitions += ["", *lines(self._scope(scope), 0, "_PLAN = ")]

    # -- scopes and regions

    def _scope(self, scope: ScopeIR) -> Call:
        root = self._region(scope, scope.region(()))
        return Call("_Scope", kwargs=(
            ("root", root),
            ("results", tuple(r.key for r in scope.results)),
            ("streamed", tuple(r.key for r in scope.results if r.depth > 0))))

    def _region(self, scope: ScopeIR, region: RegionIR) -> Code:
        chains = self.chains.get(scope.symbol, ())
        self.fused += [" >> ".join(scope.qual + n for n in chain) for chain in chains
                       if scope.stage(chain[0]).context == region.context]
        units = region_units(scope, region, chains)
        position = {unit.tail.name: i for i, unit in enumerate(units)}
        stages = tuple(self._stage(scope, unit) for unit in units)
        waits = tuple(len(unit.head.deps) for unit in units)
        dependents: list[list[int]] = [[] for _unit in units]
        for j, unit in enumerate(units):
            for dep in unit.head.deps:  # a chain is waited for through its tail, never inside
                dependents[position[dep]].append(j)
        suffix = "__".join((scope.symbol, *region.context))
        name = self.names.fresh(f"_REGION_{suffix}")
        value = Call("_Region", kwargs=(
            ("stages", stages), ("waits", waits),
            ("dependents", tuple(tuple(d) for d in dependents)), ("window", region.window)))
        self.definitions += ["", *lines(value, 0, f"{name} = ")]
        return ident(name)

    # -- stages

    def _stage(self, scope: ScopeIR, unit: Unit) -> Call:
        tail = unit.tail
        kind = tail.kind
        fields: list[tuple[str, object]] = [
            ("name", tail.name), ("kind", kind),
            ("ops", tuple(s.qualname for s in unit.stages)),
            ("names", tuple(s.name for s in unit.stages)),
            ("after", unit.head.deps)]
        if unit.runs_task:
            reads = tuple(self._read(scope, tail, arg) for arg in task_arguments(unit))
            fields.append(("reads", reads))
        else:
            fields.append(("reads", tuple(self._read(scope, tail, arg) for arg in tail.args)))
            fields.append(("params", tuple(arg.name for arg in tail.args)))
        if tail.needed:
            fields.append(("keys", tail.needed))
        if unit.runs_task:
            self.limits.append(tail.max_concurrent)
            fields.append(("slot", len(self.limits) - 1))
            fields.append(("task", self._task(scope, unit)))
        collectors = tuple((buffer_id(scope, c.node, c.key, c.ordered), c.key, c.ordered)
                           for c in scope.collects if c.node == tail.name)
        if collectors:
            fields.append(("collectors", collectors))
        mine = [r for r in scope.results if r.node == tail.name]
        plain = tuple((r.key, r.out_key) for r in mine if r.depth == 0)
        streamed = tuple((r.key, r.out_key) for r in mine if r.depth > 0)
        if plain:
            fields.append(("plain", plain))
        if streamed:
            fields.append(("streamed", streamed))
        if kind == "gen":
            fields.append(("child", self._region(scope, scope.region((*tail.context,
                                                                       tail.name)))))
        if tail.body is not None:
            body = self._scope(tail.body)
            body_name = self.names.fresh(f"_SCOPE_{tail.body.symbol}")
            self.definitions += ["", *lines(body, 0, f"{body_name} = ")]
            fields.append(("body", ident(body_name)))
            if tail.body.loop is not None:
                fields.append(("loop", self._loop(tail.body, tail.body.loop)))
        return Call("_Stage", kwargs=tuple(fields))

    def _read(self, scope: ScopeIR, reader: StageIR, arg: ArgIR) -> Call:
        if arg.kind == "const":
            return Call("_Read", ("const",), (("value", literal(literal_text(arg.value))),))
        if arg.kind == "input":
            return Call("_Read", ("input", arg.key))
        kwargs: list[tuple[str, object]] = [("node", arg.node)]
        up = levels_up(scope, reader, arg)
        if up:
            kwargs.append(("up", up))
        if arg.kind == "collect":
            kwargs.append(("buffer", buffer_id(scope, arg.node, arg.key, arg.ordered)))
            if arg.ordered:
                kwargs.append(("ordered", True))
        return Call("_Read", (arg.kind, arg.key), tuple(kwargs))

    def _task(self, scope: ScopeIR, unit: Unit) -> Call:
        """``_Task(function, **ray_options)``, and the function itself."""
        tail = unit.tail
        fn = self.names.fresh(f"_stage_{scope.symbol}__{tail.name}")
        self.functions.append(stage_function(unit, fn, frozenset(self.names.taken)))
        options: list[tuple[str, object]] = []
        custom: dict[str, object] = {}
        for name, amount in tail.resources:
            if name in BUILTIN:
                options.append((name, amount))
            else:
                custom[name] = amount
        if custom:
            options.append(("resources", custom))
        if tail.kind == "gen":
            # A generator mostly waits for its consumers; holding a CPU while it does would
            # deadlock a small cluster once streams nest. Its own `resources` still apply.
            if all(name != "num_cpus" for name, _amount in tail.resources):
                options.append(("num_cpus", 0))
            window = scope.region((*tail.context, tail.name)).window
            objects = (1 + len(tail.needed)) * window  # a report and its values per frame
            options = [("num_returns", "streaming"), *options,
                       ("_generator_backpressure_num_objects", objects)]
        else:
            options = [("num_returns", 1 + len(tail.needed)), *options]
        return Call("_Task", (ident(fn),), (*options, _NO_RETRIES))

    def _loop(self, body: ScopeIR, loop: LoopIR) -> Call:
        if isinstance(loop.until, UntilExpr):
            fn = self.names.fresh(f"_until_{body.symbol}")
            text = _until_source(loop.until)
            self.functions.append(
                f"# {comment(body.qual.rstrip('.') or body.name)}: "
                f"until={comment(repr(loop.until.source))}\n"
                f"def {fn}(state: Mapping[str, Any]) -> object:\n"
                f"    return {text}")
            looks_at: object = tuple(dict.fromkeys(loop.until.names))
        else:  # a callable until, copied into the module: it gets the whole state
            fn = loop.until
            looks_at = None
        return Call("_Loop", kwargs=(
            ("state", tuple((key, literal(literal_text(value))) for key, value in loop.state)),
            ("until", ident(fn)), ("looks_at", looks_at),
            ("max_iterations", loop.max_iterations)))


def _until_source(until: UntilExpr) -> str:
    """The checked expression with each state name read from ``state`` (call names stay)."""

    class Rename(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.Call:
            node.args = [self.visit(arg) for arg in node.args]
            return node

        def visit_Name(self, node: ast.Name) -> ast.expr:
            key = ast.Constant(node.id)
            return ast.copy_location(ast.Subscript(ast.Name("state", ast.Load()), key,
                                                   ast.Load()), node)

    return ast.unparse(Rename().visit(copy.deepcopy(until.tree)))
