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
from collections.abc import Callable, Iterator
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


def per_frame(graph: GraphOp, items: list[int], rounds: int,
              warm: Callable[[Engine], None] | None = None) -> float:
    engine = Engine(graph)
    if warm is not None:
        warm(engine)
    samples = []
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for _ in range(rounds):
            started = time.perf_counter()
            runner.run(engine.run({"items": items}))
            samples.append((time.perf_counter() - started) / len(items))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, rounds = args.n, args.rounds
    items = list(range(n))
    distinct = list(range(n))  # every frame a new key: all misses
    repeated = [i % 8 for i in range(n)]  # 8 keys: hits after the first 8

    def warm_repeated(engine: Engine) -> None:
        engine.run_sync({"items": repeated[:8]})

    cases: list[tuple[str, float, float]] = []
    base_sync = per_frame(plain_graph(), items, rounds)
    cases.append(("route (if_/else_, sync)", base_sync,
                  per_frame(routed_graph(n // 2), items, rounds)))
    base_async = per_frame(async_graph(), items, rounds)
    cases.append(("timeout=10", base_async, per_frame(async_graph(timeout=10.0), items, rounds)))
    cases.append(("retry=3", base_async, per_frame(async_graph(retry=3), items, rounds)))
    cases.append(("timeout + retry", base_async,
                  per_frame(async_graph(timeout=10.0, retry=3), items, rounds)))
    cases.append(("cache miss", base_async,
                  per_frame(async_graph(cache=n + 1), distinct, rounds)))
    base_repeated = per_frame(async_graph(), repeated, rounds)
    cases.append(("cache hit", base_repeated,
                  per_frame(async_graph(cache=True), repeated, rounds, warm_repeated)))
    print(f"Engine, {n} frames, median of {rounds} rounds, per frame")
    print(f"{'case':26} {'without':>10} {'with':>10} {'ratio':>7}")
    for name, without, with_ in cases:
        print(f"{name:26} {without * 1e6:8.2f}µs {with_ * 1e6:8.2f}µs {with_ / without:6.2f}×")


if __name__ == "__main__":
    main()
