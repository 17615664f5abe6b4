"""The lowered IR as units of scheduling, and where each unit's arguments come from.

A *unit* is what the driver schedules: one op's task, a fused chain's task (one
per frame), a generator's streaming task, a sub-graph or a loop. Units of a
region keep the plan's dependencies (``StageIR.deps``, hoisted across stream
levels by ``operonx.ir.plan``): a chain waits for what its head waits for, and
what waits for any of its ops waits for its tail (the only op read from outside).
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir.nodes import ArgIR, RegionIR, ScopeIR, StageIR


@dataclass(frozen=True)
class Unit:
    stages: tuple[StageIR, ...]  # one stage, or a fused chain in order

    @property
    def head(self) -> StageIR:
        return self.stages[0]

    @property
    def tail(self) -> StageIR:
        return self.stages[-1]

    @property
    def runs_task(self) -> bool:
        return self.tail.kind in ("call", "gen")


def region_units(scope: ScopeIR, region: RegionIR,
                 chains: tuple[tuple[str, ...], ...]) -> list[Unit]:
    """The region's units in plan order (a chain where its head is)."""
    by_head = {chain[0]: chain for chain in chains}
    inside = {name for chain in chains for name in chain[1:]}
    units = []
    for level in region.levels:
        for name in level:
            if name in inside:
                continue
            chain = by_head.get(name, (name,))
            units.append(Unit(tuple(scope.stage(n) for n in chain)))
    return units


def argument_key(arg: ArgIR) -> tuple[str, str, str, bool]:
    return (arg.kind, arg.key, arg.node, arg.ordered)


def task_arguments(unit: Unit) -> list[ArgIR]:
    """What the driver passes a unit's task: every read from outside the unit, once each."""
    own = {stage.name for stage in unit.stages}
    found: dict[tuple[str, str, str, bool], ArgIR] = {}
    for stage in unit.stages:
        for arg in stage.args:
            if arg.kind == "const" or (arg.kind == "value" and arg.node in own):
                continue
            found.setdefault(argument_key(arg), arg)
    return list(found.values())


def out_context(stage: StageIR) -> tuple[str, ...]:
    """The context a stage's outputs live in: a generator's are one level deeper."""
    return (*stage.context, stage.name) if stage.kind == "gen" else stage.context


def levels_up(scope: ScopeIR, reader: StageIR, arg: ArgIR) -> int:
    """How many region instances above the reader's the value (or collect buffer) lives."""
    producer = out_context(scope.stage(arg.node))
    if arg.kind == "collect":  # the buffer is held one level above the stream
        return len(reader.context) - (len(producer) - 1)
    return len(reader.context) - len(producer)


def buffer_id(scope: ScopeIR, node: str, key: str, ordered: bool) -> int:
    for i, collect in enumerate(scope.collects):
        if (collect.node, collect.key, collect.ordered) == (node, key, ordered):
            return i
    raise AssertionError(f"no collect buffer for {node}[{key!r}]")
