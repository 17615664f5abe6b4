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
from operonx.ir.model import Graph, InputRef, Node, OutputRef

Getter = Callable[[Inst], Any]
BufferIds = Mapping[tuple[str, str, str], int]  # (producer, key, collect mode) -> buffer id
by_index = operator.itemgetter(0)


def collect_buffers(graph: Graph, next_id: Callable[[], int]) -> dict[tuple[str, str, str], int]:
    """One buffer per distinct collected (producer, key, mode) of the scope."""
    ids: dict[tuple[str, str, str], int] = {}
    for node in graph.nodes.values():
        for source in node.args.values():
            if isinstance(source, OutputRef) and source.collect is not None:
                key = (source.node, source.key, source.collect)
                if key not in ids:
                    ids[key] = next_id()
    return ids


def getter(graph: Graph, node: Node, source: Any,
            buffers: BufferIds) -> Getter:
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
        for source in other.args.values():
            if isinstance(source, OutputRef):
                reads.setdefault(source.node, []).append(source.key)
                if source.collect is not None:
                    collected.setdefault(source.node, {})[(source.key, source.collect)] = None
    specs: dict[str, list[tuple[str, str, int]]] = {}
    results = list(graph.writebacks.items())
    if graph.kind == "graph":
        results = [*graph.results.items(), *results]
    for result_key, spec in results:
        specs.setdefault(spec.node, []).append((result_key, spec.key, spec.depth))
    return reads, {k: list(v) for k, v in collected.items()}, specs
