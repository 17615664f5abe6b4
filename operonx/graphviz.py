"""Draw a graph IR as Mermaid or Graphviz dot text (what ``operonx graph`` prints).

Both renderers walk the same :class:`Scene`: every scope (the top-level graph, a
sub-graph, a loop body) becomes a cluster with its own START and END; a
sub-graph or loop node of the enclosing scope is drawn as that cluster, so an
edge into it lands on its START and an edge out of it leaves from its END.

* ops are boxes labelled ``name`` and their kind (sync, async, gen, asyncgen);
  generators are parallelograms marked ``stream``;
* ``a >> b`` is a solid edge, labelled with what ``b`` collects from ``a``;
* a read without a direct ``>>`` edge is a dashed edge labelled with the key;
* an edge of a branch (``a >> if_(cond, b)``) is dashed and labelled with its arm:
  ``if <cond>``, ``elif <cond>`` or ``else``;
* a write-back ``node["k"] >> PARENT["x"]`` is a dashed edge to the scope's END
  labelled ``k → x``; a loop's END has a dashed ``repeat until ...`` edge back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from operonx.ir.condition import describe
from operonx.ir.model import Arm, Graph, Node, OutputRef, UntilExpr, output_refs

Shape = Literal["terminal", "op", "stream"]
Style = Literal["solid", "dashed"]


@dataclass(frozen=True)
class Box:
    id: str
    label: str
    shape: Shape


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str = ""
    style: Style = "solid"


@dataclass
class Cluster:
    id: str
    label: str
    boxes: list[Box] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)


@dataclass
class Scene:
    root: Cluster
    edges: list[Edge] = field(default_factory=list)


def _node_id(path: tuple[str, ...], name: str) -> str:
    # "n_" keeps ids clear of Mermaid keywords such as `end` and `graph`.
    return "n_" + "__".join((*path, name))


def _until_text(graph: Graph) -> str:
    if isinstance(graph.until, UntilExpr):
        return graph.until.source
    return "<callable>"


def _scope_label(graph: Graph) -> str:
    if graph.kind == "loop":
        return f"loop {graph.name} · until {_until_text(graph)}"
    return f"graph {graph.name}"


def build_scene(graph: Graph) -> Scene:
    scene = Scene(Cluster("", ""))
    scene.root = _scope(graph, (), scene)
    return scene


def _scope(graph: Graph, path: tuple[str, ...], scene: Scene) -> Cluster:
    cluster = Cluster("cluster_" + "__".join(("top", *path)), _scope_label(graph))
    start, end = _node_id(path, "START"), _node_id(path, "END")
    cluster.boxes.append(Box(start, "START", "terminal"))

    def entry(name: str) -> str:
        node = graph.nodes.get(name)
        if name == "START":
            return start
        if name == "END":
            return end
        return _node_id((*path, name), "START") if node and node.body else _node_id(path, name)

    def exit_(name: str) -> str:
        node = graph.nodes.get(name)
        if name == "START":
            return start
        return _node_id((*path, name), "END") if node and node.body else _node_id(path, name)

    for node in graph.nodes.values():
        if node.body is not None:
            cluster.clusters.append(_scope(node.body, (*path, node.name), scene))
        else:
            cluster.boxes.append(_op_box(node, _node_id(path, node.name)))
    cluster.boxes.append(Box(end, "END", "terminal"))
    scene.edges.extend(_scope_edges(graph, entry, exit_))
    if graph.kind == "loop":
        scene.edges.append(Edge(end, start, f"repeat until {_until_text(graph)}", "dashed"))
    return cluster


def _op_box(node: Node, node_id: str) -> Box:
    assert node.op is not None
    kind = node.op.kind.value
    if node.op.bound == "cpu":
        kind += ", cpu"
    if node.is_generator:
        return Box(node_id, f"{node.name}\n{kind} · stream", "stream")
    return Box(node_id, f"{node.name}\n{kind}", "op")


def _reads(node: Node) -> Iterator[OutputRef]:
    for source in node.args.values():
        yield from output_refs(source)  # every option of a coalesce too


def _arm_label(arm: Arm, position: int) -> str:
    if arm.condition is None:
        return "else"
    return f"{'if' if position == 0 else 'elif'} {describe(arm.condition)}"


def _read_label(ref: OutputRef) -> str:
    if ref.collect == "ordered":
        return f"ordered {ref.key}"
    return f"collect {ref.key}" if ref.collect else ref.key


def _scope_edges(graph: Graph, entry: Callable[[str], str],
                 exit_: Callable[[str], str]) -> Iterator[Edge]:
    ordered = set(graph.edges)
    guards = graph.edge_guards()
    for a, b in graph.edges:
        consumer = graph.nodes.get(b)
        collects = [] if consumer is None else [
            _read_label(r) for r in _reads(consumer) if r.node == a and r.collect]
        guard = guards.get((a, b))
        if guard is not None:
            branch, arm = guard
            label = ", ".join([_arm_label(branch.arms[arm], arm), *collects])
            yield Edge(exit_(a), entry(b), label, "dashed")
            continue
        yield Edge(exit_(a), entry(b), ", ".join(collects))
    for node in graph.nodes.values():
        loose = [r for r in _reads(node) if (r.node, node.name) not in ordered]
        by_source: dict[str, list[str]] = {}
        for ref in loose:
            by_source.setdefault(ref.node, []).append(_read_label(ref))
        for src, labels in by_source.items():
            yield Edge(exit_(src), entry(node.name), ", ".join(labels), "dashed")
    for target, spec in graph.writebacks.items():
        yield Edge(exit_(spec.node), entry("END"), f"{spec.key} → {target}", "dashed")


# ------------------------------------------------------------------------ Mermaid


def _mermaid_text(label: str) -> str:
    return '"' + label.replace('"', "#quot;").replace("\n", "<br/>") + '"'


def _mermaid_box(box: Box) -> str:
    text = _mermaid_text(box.label)
    if box.shape == "terminal":
        return f"{box.id}(({text}))"
    if box.shape == "stream":
        return f"{box.id}[/{text}/]"
    return f"{box.id}[{text}]"


def to_mermaid(graph: Graph) -> str:
    scene = build_scene(graph)
    lines = ["flowchart TD"]

    def emit(cluster: Cluster, depth: int) -> None:
        pad = "    " * depth
        lines.extend(pad + _mermaid_box(box) for box in cluster.boxes)
        for child in cluster.clusters:
            lines.append(f"{pad}subgraph {child.id} [{_mermaid_text(child.label)}]")
            emit(child, depth + 1)
            lines.append(f"{pad}end")

    lines.append(f"    subgraph {scene.root.id} [{_mermaid_text(scene.root.label)}]")
    emit(scene.root, 2)
    lines.append("    end")
    for edge in scene.edges:
        arrow = "-->" if edge.style == "solid" else "-.->"
        label = f"|{_mermaid_text(edge.label)}|" if edge.label else ""
        lines.append(f"    {edge.src} {arrow}{label} {edge.dst}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- dot


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_DOT_SHAPES: dict[Shape, str] = {
    "terminal": "shape=circle, style=filled, fillcolor=lightgray",
    "op": "shape=box, style=rounded",
    "stream": "shape=parallelogram, style=bold",
}


def to_dot(graph: Graph) -> str:
    scene = build_scene(graph)
    lines = [f"digraph {_dot_quote(graph.name)} {{",
             '    node [fontname="Helvetica"];',
             '    edge [fontname="Helvetica", fontsize=10];']

    def emit(cluster: Cluster, depth: int) -> None:
        pad = "    " * depth
        lines.append(f"{pad}subgraph {_dot_quote(cluster.id)} {{")
        lines.append(f"{pad}    label={_dot_quote(cluster.label)};")
        for box in cluster.boxes:
            lines.append(f"{pad}    {_dot_quote(box.id)} "
                         f"[label={_dot_quote(box.label)}, {_DOT_SHAPES[box.shape]}];")
        for child in cluster.clusters:
            emit(child, depth + 1)
        lines.append(f"{pad}}}")

    emit(scene.root, 1)
    for edge in scene.edges:
        attrs = [f"label={_dot_quote(edge.label)}"] if edge.label else []
        if edge.style == "dashed":
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {_dot_quote(edge.src)} -> {_dot_quote(edge.dst)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
