"""What branches and policies cost the Engine per execution (SPEC §8, §9), when nothing fails.

    .venv/bin/python bench/engine_branching_policies.py [--n 20000] [--rounds 5]

Each case runs a stream of N frames through the Engine; the printed number is the
median over rounds of (run time / N), next to the same graph without the feature:

* ``route``: each frame routed by ``if_(v < half, small).else_(large)`` to one of two
  sync ops, against the same stream feeding one sync op (what a per-frame branch
  adds: the gate and the decision);
* ``timeout``, ``retry``, ``cache miss``, ``cache hit``: an async op with the policy,
  against the same op without it (``asyncio.timeout`` per call, the retry loop, the
  key lookup and single-flight bookkeeping).

Not part of ``make bench`` (it measures the Engine alone; the compiled module
does not support these yet).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterator
from typing import Any

import uvloop

from operonx.core import END, PARENT, START, Engine, GraphOp, if_, op


@op
def each(items: list[int]) -> Iterator[dict[str, int]]:
    for item in items:
        yield {"v": item}


@op
def small(v: int) -> dict[str, int]:
    return {"s": v + 1}


@op
def large(v: int) -> dict[str, int]:
    return {"l": v - 1}


def plain_graph() -> GraphOp:
    with GraphOp(name="plain") as g:
        gen = each(items=PARENT["items"])
        s = small(v=gen["v"])
        START >> gen >> s >> END
    return g


def routed_graph(half: int) -> GraphOp:
    with GraphOp(name="routed") as g:
        gen = each(items=PARENT["items"])
        s, lg = small(v=gen["v"]), large(v=gen["v"])
        START >> gen >> if_(gen["v"] < half, s).else_(lg)
        [s, lg] >> END
    return g


def async_graph(**policy: Any) -> GraphOp:
    async def work(v: int) -> dict[str, int]:
        return {"w": v * 2}

    node_op = op(name="work", max_concurrent=64, **policy)(work)
    with GraphOp(name="awaited") as g:
        gen = each(items=PARENT["items"])
        w = node_op(v=gen["v"])
        START >> gen >> w >> END
    return g


def measure(variants: dict[str, tuple[GraphOp, list[int]]], rounds: int) -> dict[str, float]:
    """Median seconds per frame of each variant, rounds interleaved across variants (so a
    busy machine slows them all alike). Each Engine runs once untimed first (which also
    fills the caches the ``cache hit`` variant is about)."""
    engines = {name: (Engine(graph), items) for name, (graph, items) in variants.items()}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for engine, items in engines.values():
            runner.run(engine.run({"items": items}))
        for _ in range(rounds):
            for name, (engine, items) in engines.items():
                started = time.perf_counter()
                runner.run(engine.run({"items": items}))
                samples[name].append((time.perf_counter() - started) / len(items))
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    items = list(range(args.n))
    repeated = [i % 8 for i in range(args.n)]  # 8 keys: all hits once warmed
    variants: dict[str, tuple[GraphOp, list[int]]] = {
        "sync": (plain_graph(), items),
        "route (if_/else_, sync)": (routed_graph(args.n // 2), items),
        "async": (async_graph(), items),
        "timeout=10": (async_graph(timeout=10.0), items),
        "retry=3": (async_graph(retry=3), items),
        "timeout + retry": (async_graph(timeout=10.0, retry=3), items),
        "cache miss": (async_graph(cache=1), items),  # every key new: evicted at once
        "async, 8 keys": (async_graph(), repeated),
        "cache hit": (async_graph(cache=True), repeated),
    }
    per_frame = measure(variants, args.rounds)
    print(f"Engine, {args.n} frames, median of {args.rounds} interleaved rounds, per frame")
    print(f"{'case':26} {'without':>10} {'with':>10} {'ratio':>7}")
    pairs = [("route (if_/else_, sync)", "sync"), ("timeout=10", "async"),
             ("retry=3", "async"), ("timeout + retry", "async"), ("cache miss", "async"),
             ("cache hit", "async, 8 keys")]
    for name, base in pairs:
        without, with_ = per_frame[base], per_frame[name]
        print(f"{name:26} {without * 1e6:8.2f}µs {with_ * 1e6:8.2f}µs {with_ / without:6.2f}×")


if __name__ == "__main__":
    main()
