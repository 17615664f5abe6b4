"""Where values flow, resolved once per Engine: argument reads and output publication.

A node's argument is read from an instance some levels up the region chain (or
from a collect buffer there); its outputs feed collect buffers, scope results
and write-backs. Computing this at build time keeps the run loop to lookups.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

from operonx.engine.runtime import Inst
from operonx.ir import condition
from operonx.ir.branching import effective
from operonx.ir.model import Coalesce, Const, Graph, InputRef, Node, OutputRef, output_refs

Getter = Callable[[Inst], Any]
BufferIds = Mapping[tuple[str, str, str], int]  # (producer, key, collect mode) -> buffer id
by_index = operator.itemgetter(0)


def collect_buffers(graph: Graph, next_id: Callable[[], int]) -> dict[tuple[str, str, str], int]:
    """One buffer per distinct collected (producer, key, mode) of the scope."""
    ids: dict[tuple[str, str, str], int] = {}
    for node in graph.nodes.values():
        for arg in node.args.values():
            for source in output_refs(arg):
                if source.collect is not None:
                    key = (source.node, source.key, source.collect)
                    if key not in ids:
                        ids[key] = next_id()
    return ids


def getter(graph: Graph, node: Node, source: Any,
            buffers: BufferIds) -> Getter:
    if isinstance(source, Coalesce):
        return _coalesce(graph, node, source, buffers)
    if isinstance(source, Const):
        value = source.value
        return lambda inst: value
    if isinstance(source, InputRef):
        key = source.key
        return lambda inst: inst.scope.inputs[key]
    assert isinstance(source, OutputRef)
    producer = graph.nodes[source.node]
    name, key = source.node, source.key
    if source.collect is None:
        up = len(node.context) - len(producer.out_context)
        if up == 0:
            return lambda inst: inst.vals[name][key]
        if up == 1:
            return lambda inst: inst.parent.vals[name][key]  # type: ignore[union-attr]
        return lambda inst: inst.up(up).vals[name][key]
    buffer_id = buffers[(source.node, source.key, source.collect)]
    up = len(node.context) - (len(producer.out_context) - 1)
    if source.collect == "ordered":
        def ordered(inst: Inst) -> list[Any]:
            frames = sorted(inst.up(up).bufs.get(buffer_id, ()), key=by_index)
            return [value for _index, value in frames]
        return ordered
    return lambda inst: list(inst.up(up).bufs.get(buffer_id, ()))


def presence(graph: Graph, at: tuple[str, ...], ref: OutputRef) -> Callable[[Inst], bool]:
    """Whether ``ref`` has a value for a reader in context ``at``: its producer ran (a
    branch did not skip it) and, for a sub-graph, produced that key."""
    if ref.collect is not None:  # the collected stream exists unless its generator was skipped
        up, rep = effective(graph.nodes, ref.node, at)
        return lambda inst: not inst.up(up).is_skipped(rep)
    up = len(at) - len(graph.nodes[ref.node].out_context)
    name, key = ref.node, ref.key

    def present(inst: Inst) -> bool:
        vals = inst.up(up).vals.get(name)
        return vals is not None and key in vals

    return present


def _coalesce(graph: Graph, node: Node, source: Coalesce, buffers: BufferIds) -> Getter:
    """The first option that is there (the node's gate has checked that one is)."""
    options = [(presence(graph, node.context, o) if isinstance(o, OutputRef) else None,
                getter(graph, node, o, buffers)) for o in source.options]

    def first(inst: Inst) -> Any:
        for present, get in options:
            if present is None or present(inst):
                return get(inst)
        raise AssertionError(f"{node.name!r} read coalesce() with no option present")

    return first


def publication(graph: Graph, node: Node, buffers: BufferIds) -> tuple[
        tuple[str, ...], list[tuple[int, str, bool]], list[tuple[str, str]],
        list[tuple[str, str]]]:
    """Which keys must exist, which buffers and result keys this node's outputs feed."""
    reads, collected, specs = publication_index(graph)
    needed: list[str] = []
    collectors: list[tuple[int, str, bool]] = []
    for key, mode in collected.get(node.name, ()):  # in ``buffers`` order
        collectors.append((buffers[(node.name, key, mode)], key, mode == "ordered"))
        needed.append(key)
    needed += reads.get(node.name, ())
    plain: list[tuple[str, str]] = []
    streamed: list[tuple[str, str]] = []
    for result_key, key, depth in specs.get(node.name, ()):
        needed.append(key)
        (streamed if depth > 0 else plain).append((result_key, key))
    return tuple(dict.fromkeys(needed)), collectors, plain, streamed


@functools.cache
def publication_index(graph: Graph) -> tuple[
        dict[str, list[str]], dict[str, list[tuple[str, str]]],
        dict[str, list[tuple[str, str, int]]]]:
    """Per producer, once per scope: the keys read from it (in node order), its collected
    (key, mode) pairs (in ``_collect_buffers`` order) and the (result key, output key,
    depth) of the results and write-backs it feeds."""
    reads: dict[str, list[str]] = {}
    collected: dict[str, dict[tuple[str, str], None]] = {}
    for other in graph.nodes.values():
        for arg in other.args.values():
            for source in output_refs(arg):
                reads.setdefault(source.node, []).append(source.key)
                if source.collect is not None:
                    collected.setdefault(source.node, {})[(source.key, source.collect)] = None
    for branch in graph.branches:  # what conditions compare must be there too
        for arm in branch.arms:
            for ref in condition.refs(arm.condition) if arm.condition is not None else ():
                if isinstance(ref, OutputRef):
                    reads.setdefault(ref.node, []).append(ref.key)
    specs: dict[str, list[tuple[str, str, int]]] = {}
    results = list(graph.writebacks.items())
    if graph.kind == "graph":
        results = [*graph.results.items(), *results]
    for result_key, spec in results:
        specs.setdefault(spec.node, []).append((result_key, spec.key, spec.depth))
    return reads, {k: list(v) for k, v in collected.items()}, specs
