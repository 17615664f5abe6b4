"""The benchmark cases: sizes, inputs and expected results, shared by every engine.

Pure Python with no operonx import, so both the project's venv and the PyPI
venv (``bench/.venv-pypi``) can import it.  Every engine's result is checked
against :func:`expected` before a single timing is kept: a wrong answer is
reported as an error, never as a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    unit: str  # what one unit of N is: a yield, an iteration, a run
    n_full: int
    n_quick: int
    is_async: bool = False
    #: A sample times ``runs_per_sample(n)`` consecutive runs (the per-run latency case).
    many_runs: bool = False
    #: The dimension the result list has: N frames, or nothing (a scalar).
    width: int = 100  # nested case: leaves per row
    #: bench/handwritten.py also has ``run_<case>_gather`` (the gather+semaphore idiom),
    #: measured as an extra column; the ratios stay against the best hand-written code.
    gather_baseline: bool = False


CASES: dict[str, Case] = {c.name: c for c in [
    Case("seed_fanout", "seed fan-out: generator → double", "yield", 20_000, 2_000),
    Case("chain5", "generator → 5-op sync chain", "yield", 20_000, 2_000),
    Case("scalar_chain10", "10-op scalar chain, run N times (per-run latency)", "run",
         1_000, 100, many_runs=True),
    Case("loop", "loop of N iterations (increment until count >= N)", "iteration",
         10_000, 1_000),
    Case("async_fanout", "generator → async op (await asyncio.sleep(0)), 64 in flight",
         "yield", 10_000, 1_000, is_async=True, gather_baseline=True),
    Case("nested", "nested generators: rows → cells → double (100 cells a row)", "yield",
         10_000, 1_000),
    Case("diamond", "diamond gen → [left, right] → join, joined per frame", "yield",
         10_000, 1_000),
    Case("sink", "generator → sink op returning None (appends to a list input)", "yield",
         20_000, 2_000),
    Case("routed", "generator → per-frame if_/else_ to one of two sync ops (SPEC §8)",
         "yield", 20_000, 2_000),
]}

SYNC_CASES = [c.name for c in CASES.values() if not c.is_async]
CHAIN_STEPS = 5
SCALAR_STEPS = 10
MAX_CONCURRENT = 64


#: The scale graph (``bench/scale.py``): a chain of N copies of ``step``; N is its op count.
CHAIN_OPS = "chain_ops"
#: Its input starts far above CPython's small-int cache (-5..256), so every ``x + 1``
#: allocates at every graph size; from 0, a 1,000-op chain would look slower per op
#: than a 100-op one for that reason alone.
CHAIN_START = 1_000_000


def inputs(case: str, n: int) -> dict[str, Any]:
    """The run inputs for one run of ``case`` at size ``n`` (same for every engine)."""
    if case in (CHAIN_OPS, "memory_stream"):
        return {"x": CHAIN_START} if case == CHAIN_OPS else {"n": n}
    if case in ("seed_fanout", "chain5", "async_fanout", "routed"):
        return {"numbers": list(range(n))}
    if case == "sink":
        return {"numbers": list(range(n)), "into": []}  # the sink appends every value here
    if case == "scalar_chain10":
        return {"x": 0}
    if case == "loop":
        return {"limit": n}
    if case == "nested":
        width = CASES["nested"].width
        return {"n_rows": max(1, n // width), "width": width}
    if case == "diamond":
        return {"n": n}
    raise KeyError(case)


def runs_per_sample(case: str, n: int) -> int:
    if case == CHAIN_OPS:
        return max(1, 10_000 // n)  # about 10,000 op runs per sample at every size
    return n if CASES[case].many_runs else 1


def units(case: str, n: int) -> int:
    """How many units (yields, iterations, runs) one sample covers: the per-unit divisor."""
    if case == "nested":
        width = CASES["nested"].width
        return max(1, n // width) * width
    if case == CHAIN_OPS:
        return n * runs_per_sample(case, n)  # per-op cost
    return n


def expected(case: str, n: int) -> dict[str, Any]:
    """The result every engine must return (after its own shape is normalised)."""
    if case == "seed_fanout":
        return {"result": [2 * i for i in range(n)]}
    if case == "chain5":
        return {"value": [i + CHAIN_STEPS for i in range(n)]}
    if case == "scalar_chain10":
        return {"x": SCALAR_STEPS}
    if case == "loop":
        return {"count": n}
    if case == "async_fanout":
        return {"result": [i + 1 for i in range(n)]}
    if case == "nested":
        return {"result": [2 * i for i in range(units(case, n))]}
    if case == "diamond":
        return {"total": [(i + 1) + 3 * i for i in range(n)]}
    if case == "routed":  # even values doubled, odd ones negated, each in yield order
        return {"even": [2 * i for i in range(0, n, 2)], "odd": [-i for i in range(1, n, 2)]}
    if case == "sink":
        return {}  # no outputs: what it did is in the ``into`` input (see ``check``)
    raise KeyError(case)


def check(case: str, n: int, result: dict[str, Any],
          inputs: dict[str, Any] | None = None) -> str | None:
    """``None`` when ``result`` has the expected keys and values, else what differs.

    ``inputs`` are the ones the (first) run was given: the sink case's effect is there.
    """
    if case == "sink" and inputs is not None and sorted(inputs["into"]) != list(range(n)):
        got = inputs["into"]
        return f"the sink recorded {len(got)} values, expected {n}; head {got[:5]}"
    want = {"x": CHAIN_START + n} if case == CHAIN_OPS else expected(case, n)
    for key, value in want.items():
        if key not in result:
            return f"result lacks {key!r} (keys: {sorted(result)})"
        got = result[key]
        if got != value:
            if isinstance(value, list) and isinstance(got, list):
                if sorted(got) == value:
                    return f"{key!r} has the right values in the wrong order"
                return f"{key!r}: {len(got)} values, expected {len(value)}; head {got[:5]}"
            return f"{key!r} = {got!r}, expected {value!r}"
    return None
