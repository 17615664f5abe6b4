"""Property-based: random graphs (the local target's generator of shapes) run the same on Ray.

Sync and async ops, generators nested two deep, diamonds, collects, loops and
sub-graphs, with an injected failure value: the Engine and the Ray module agree
on results, collect-mode results, frames and errors. Fewer examples than the
local target's (each is a few Ray runs); ``OPERONX_RAY_PROPERTY_EXAMPLES=100`` for more.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import compile_graph
from operonx.core import Engine
from tests.compiler import oplib
from tests.compiler.helpers import (
    compiled_stream,
    engine_stream,
    frames_multiset,
    load_source,
    normalise_collect,
    outcome,
)
from tests.compiler.test_properties import STEPS, build
from tests.ray.cluster import Cluster


def _errors(result: dict[str, object]) -> set[tuple[str, tuple[int, ...]]]:
    return {(e["op"], tuple(e["index"])) for e in result.get("$errors", [])}  # type: ignore


@settings(max_examples=int(os.environ.get("OPERONX_RAY_PROPERTY_EXAMPLES", "20")),
          deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=4),
       items=st.lists(st.integers(min_value=0, max_value=4), max_size=3),
       fail=st.sampled_from([-1, -1, 2, 21]))
def test_engine_and_ray_module_agree(cluster: Cluster, steps: list[str], items: list[int],
                                     fail: int) -> None:
    graph = build(steps, fail)
    inputs = {"items": items}
    want = outcome(lambda: Engine(graph).run_sync(inputs))
    want_collect = Engine(graph, on_error="collect").run_sync(inputs)
    with tempfile.TemporaryDirectory() as tmp:
        source = compile_graph(graph, source_path=oplib.__file__, graph_name="prop",
                               target="ray").source
        module = load_source(source, Path(tmp), "prop_ray")
        got = outcome(lambda: module.run_sync(inputs))
        if want[0] == "ok":
            assert got == want, steps
            assert frames_multiset(compiled_stream(module, inputs)) == \
                frames_multiset(engine_stream(graph, inputs))
        else:  # frames run in parallel: the failure raised is one the Engine also meets
            assert got[0] == "error" and got[1][0] == want[1][0], steps
            if got[1][0] == "OpError":
                assert (got[1][1], got[1][2]) in _errors(want_collect), steps
        got_collect = normalise_collect(module.run_sync(inputs, on_error="collect"))
        want_collect = normalise_collect(want_collect)
        assert got_collect == want_collect, steps
