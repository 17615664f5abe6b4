"""Fuse linear chains of sync ops into straight-line code (Flink operator chaining).

Legality — producer P and consumer C are fused only when:

* C has a single input edge: its only dependency (data or ``>>``) is P;
* P's outputs have a single consumer: nothing else reads P, depends on P,
  collects P, or takes a result key or write-back from P;
* the edge is a plain forward one: same region (same frames), no ``.collect()``;
* both are plain sync ops (``def``, not ``bound="cpu"``, not a generator), so
  both run inline on the event loop with the same (absent) concurrency bound;
* the same ``max_concurrent``, and neither is marked ``@op(fuse=False)``.

Under these conditions C runs exactly when P has run, in the same frame, and
nothing observes P between the two calls, so emitting them as one block (one
skip guard in collect mode, no intermediate bookkeeping) cannot change §2–§6.
"""

from __future__ import annotations

from dataclasses import replace

from compiler.ir.nodes import ModuleIR, ScopeIR, StageIR
from compiler.passes.base import PassReport
from compiler.passes.util import map_scopes

NAME = "fuse_chains"


def _fusible(stage: StageIR) -> bool:
    return stage.kind == "call" and stage.flavor == "sync" and stage.fuse


def run(module: ModuleIR) -> tuple[ModuleIR, PassReport]:
    changed: list[str] = []

    def scope(s: ScopeIR) -> ScopeIR:
        readers: dict[str, set[str]] = {st.name: set() for st in s.stages}
        collected = {c.node for c in s.collects}
        results = {r.node for r in s.results}
        for st in s.stages:
            for arg in st.args:
                if arg.kind in ("value", "collect"):
                    readers[arg.node].add(st.name)
            for dep in st.deps:
                readers[dep].add(st.name)
        # hoisted readers from deeper regions appear as deps on a generator, so a
        # producer read from a deeper region has that generator among its readers.
        for st in s.stages:
            for arg in st.args:
                if arg.kind == "value" and s.stage(arg.node).context != st.context:
                    readers[arg.node].add(f"<{st.name}>")
        regions = []
        for region in s.regions:
            members = {n for level in region.levels for n in level}
            nxt: dict[str, str] = {}
            for name in members:
                c = s.stage(name)
                if not _fusible(c) or len(c.deps) != 1:
                    continue
                p = s.stage(c.deps[0])
                if (p.name in members and _fusible(p) and readers[p.name] == {c.name}
                        and p.name not in collected and p.name not in results
                        and p.max_concurrent == c.max_concurrent
                        and all(a.kind != "collect" for a in c.args)):
                    nxt[p.name] = c.name
            consumers = set(nxt.values())  # a set: a chain of N ops must not cost N²
            heads = [n for n in nxt if n not in consumers]
            position = {n: i for i, n in enumerate(n for level in region.levels for n in level)}
            chains = []
            for head in sorted(heads, key=position.__getitem__):
                chain = [head]
                while chain[-1] in nxt:
                    chain.append(nxt[chain[-1]])
                chains.append(tuple(chain))
                changed.append(f"fused {' >> '.join(s.qual + n for n in chain)}")
            regions.append(replace(region, chains=tuple(chains)))
        return replace(s, regions=tuple(regions))

    return map_scopes(module, scope), PassReport(NAME, tuple(changed))
