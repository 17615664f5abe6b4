"""Which sync ops the Ray module fuses into one task per frame.

Legality is the local target's (``compiler/passes/fuse_chains.py``: a single
forward edge, a single consumer, both plain sync ops with the same
``max_concurrent``, neither ``fuse=False``), plus one condition of Ray's: the ops
ask for the same ``resources``, since the fused task is submitted with one set.
A chain that mixes resources is cut where they change; the pieces of a legal
chain are legal chains.
"""

from __future__ import annotations

from compiler.ir.nodes import ModuleIR, ScopeIR
from compiler.passes import fuse_chains


def fused_chains(module: ModuleIR) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Per scope symbol, its fused chains (each at least two stage names, in order)."""
    fused, _report = fuse_chains.run(module)
    found: dict[str, tuple[tuple[str, ...], ...]] = {}

    def visit(scope: ScopeIR) -> None:
        chains: list[tuple[str, ...]] = []
        for region in scope.regions:
            for chain in region.chains:
                chains += _cut_at_resource_changes(scope, chain)
        found[scope.symbol] = tuple(chains)
        for stage in scope.stages:
            if stage.body is not None:
                visit(stage.body)

    visit(fused.top)
    return found


def _cut_at_resource_changes(scope: ScopeIR, chain: tuple[str, ...]) -> list[tuple[str, ...]]:
    pieces: list[list[str]] = [[chain[0]]]
    for name in chain[1:]:
        if scope.stage(name).resources == scope.stage(pieces[-1][-1]).resources:
            pieces[-1].append(name)
        else:
            pieces.append([name])
    return [tuple(piece) for piece in pieces if len(piece) > 1]
