"""SPEC §10, first bullet: ``@op(bound="cpu")`` runs in worker processes.

Real processes throughout: the ops live in ``tests/core/cpu_ops.py`` and every
worker imports that module. Work sizes are tiny (a few naps of tens of ms); the
subprocess tests start a fresh interpreter each, about a second apiece.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from operonx.core import END, PARENT, START, Engine, GraphError, GraphOp, OpError, op
from operonx.engine import cpu_pool
from operonx.engine.cpu_worker import RemoteTraceback, WorkerException
from tests.core import cpu_ops

ROOT = pathlib.Path(__file__).resolve().parents[2]


def fan_out(cpu_op: Any, **args: Any) -> GraphOp:
    """``each_value(values) >> cpu_op(value=..., **args) >> END``."""
    with GraphOp(name="fan_out") as graph:
        gen = cpu_ops.each_value(values=PARENT["values"])
        work = cpu_op(value=gen["value"], **args)
        START >> gen >> work >> END
    return graph


def single(cpu_op: Any, **args: Any) -> GraphOp:
    with GraphOp(name="single") as graph:
        work = cpu_op(**args)
        START >> work >> END
    return graph


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


async def warm_pool(workers: int) -> None:
    """Start every worker of the pool first: a bound measured on a cold pool could be met
    just because the workers were still starting."""
    await Engine(fan_out(cpu_ops.nap, seconds=0.0), cpu_workers=workers).run(
        {"values": list(range(workers))})
    deadline = time.monotonic() + 30
    while len(cpu_pool.shared_pool(workers).pids) < workers and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.02)
    return False


def run_python(args: list[str], cwd: pathlib.Path, timeout: float = 60,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False)


# ----------------------------------------------------------------- where it runs


async def test_cpu_op_runs_in_a_worker_process_of_the_pool() -> None:
    engine = Engine(fan_out(cpu_ops.whoami), cpu_workers=2)
    result = await engine.run({"values": [1, 2, 3, 4]})
    assert result["value"] == [1, 2, 3, 4]
    assert os.getpid() not in result["pid"]
    assert set(result["pid"]) <= set(cpu_pool.shared_pool(2).pids)


def test_cpu_workers_defaults_to_one_per_core_and_must_be_positive() -> None:
    graph = fan_out(cpu_ops.whoami)
    assert Engine(graph).cpu_workers == cpu_pool.default_workers() >= 1
    assert Engine(graph, cpu_workers=3).cpu_workers == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="cpu_workers must be a positive int"):
            Engine(graph, cpu_workers=bad)  # type: ignore[arg-type]


def test_pool_is_reused_across_runs_and_engines_of_the_same_size() -> None:
    graph = fan_out(cpu_ops.whoami)
    first = Engine(graph, cpu_workers=1)
    pids = set(first.run_sync({"values": [1, 2]})["pid"])  # a fresh event loop per run_sync
    pids |= set(first.run_sync({"values": [3]})["pid"])
    pids |= set(Engine(graph, cpu_workers=1).run_sync({"values": [4]})["pid"])
    assert len(pids) == 1  # one worker, started once, served all three runs
    assert cpu_pool.shared_pool(1).pids == list(pids)


def test_engines_on_different_threads_and_event_loops_share_one_pool() -> None:
    graph = fan_out(cpu_ops.nap, seconds=0.02)
    results: list[dict[str, Any]] = []

    def run() -> None:
        results.append(Engine(graph, cpu_workers=2).run_sync({"values": list(range(4))}))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 3
    assert all(len(r["pid"]) == 4 for r in results)
    assert {pid for r in results for pid in r["pid"]} <= set(cpu_pool.shared_pool(2).pids)


async def test_stream_emits_a_frame_per_cpu_execution() -> None:
    frames = [f async for f in Engine(fan_out(cpu_ops.whoami), cpu_workers=2).stream(
        {"values": [5, 6]})]
    ours = sorted((f.index, f.outputs["value"]) for f in frames if f.op_name == "whoami")
    assert ours == [((0,), 5), ((1,), 6)]


# ------------------------------------------------------------------- concurrency


async def test_max_concurrent_bounds_executions_in_flight_and_the_pool_bounds_all() -> None:
    values = list(range(6))
    await warm_pool(3)
    await warm_pool(2)
    alone = await Engine(fan_out(cpu_ops.nap_alone, seconds=0.05), cpu_workers=3).run(
        {"values": values})
    pairs = await Engine(fan_out(cpu_ops.nap_in_pairs, seconds=0.05), cpu_workers=3).run(
        {"values": values})
    pool_bound = await Engine(fan_out(cpu_ops.nap, seconds=0.05), cpu_workers=2).run(
        {"values": values})
    assert max_overlap(alone["span"]) == 1
    assert max_overlap(pairs["span"]) == 2
    assert max_overlap(pool_bound["span"]) == 2  # max_concurrent 64, but 2 workers
    assert len(set(pool_bound["pid"])) == 2


# ------------------------------------------------------------------------ errors


async def test_failure_cancels_pending_work_and_stops_running_workers(
        tmp_path: pathlib.Path) -> None:
    graph = fan_out(cpu_ops.first_fails_others_hang, markers=str(tmp_path))
    await warm_pool(2)
    started = time.monotonic()
    with pytest.raises(OpError) as caught:
        async with asyncio.timeout(30):  # the sleeping items would take a minute
            await Engine(graph, cpu_workers=2).run({"values": list(range(10))})
    assert time.monotonic() - started < 30
    assert (caught.value.op_name, caught.value.index) == ("first_fails_others_hang", (0,))
    assert isinstance(caught.value.__cause__, ValueError)
    ran = {int(p.name): int(p.read_text()) for p in tmp_path.iterdir()}
    assert 1 <= len(ran) <= 2  # item 1, perhaps the item handed item 0's worker; not the rest
    for pid in ran.values():
        assert wait_gone(pid), f"worker {pid} still runs a cancelled execution"
    # The pool replaces what it stopped.
    assert (await Engine(fan_out(cpu_ops.whoami), cpu_workers=2).run({"values": [1]}))["value"]


async def test_op_error_names_op_and_index_with_the_original_exception_as_cause() -> None:
    graph = fan_out(cpu_ops.fail_on, bad=2)
    with pytest.raises(OpError) as caught:
        await Engine(graph, cpu_workers=2).run({"values": [0, 1, 2, 3]})
    err = caught.value
    assert (err.op_name, err.index) == ("fail_on", (2,))
    assert str(err) == "op 'fail_on' at index (2,) raised ValueError: bad 2"
    cause = err.__cause__
    assert type(cause) is ValueError and str(cause) == "bad 2"
    # The worker's traceback travels with it, down to the raising line.
    assert isinstance(cause.__cause__, RemoteTraceback)
    assert 'raise ValueError(f"bad {value}")' in cause.__cause__.text

    collected = await Engine(graph, on_error="collect", cpu_workers=2).run(
        {"values": [0, 1, 2, 3]})
    assert collected == {"value": [0, 1, 3], "$errors": [
        {"op": "fail_on", "index": [2], "type": "ValueError", "message": "bad 2"}]}


@pytest.mark.parametrize(("kind", "type_name", "message"), [
    ("two-arguments", "NeedsTwoArguments", "it broke (code 7)"),
    ("lock", "HoldsALock", "it broke, holding a lock"),
    ("exit", "SystemExit", "3"),
])
async def test_exception_that_cannot_come_back_still_gives_a_precise_op_error(
        kind: str, type_name: str, message: str) -> None:
    graph = single(cpu_ops.raise_unpicklable, kind=PARENT["kind"])
    with pytest.raises(OpError) as caught:
        await Engine(graph, cpu_workers=1).run({"kind": kind})
    assert str(caught.value) == f"op 'raise_unpicklable' raised {type_name}: {message}"
    cause = caught.value.__cause__
    assert isinstance(cause, WorkerException) and type(cause).__name__ == type_name
    assert isinstance(cause.__cause__, RemoteTraceback)
    assert "raise_unpicklable" in cause.__cause__.text
    # The worker survived: it only failed the execution.
    assert (await Engine(single(cpu_ops.whoami, value=1), cpu_workers=1).run())["value"] == 1


async def test_unpicklable_argument_is_an_op_error_naming_the_argument() -> None:
    graph = single(cpu_ops.take_anything, thing=PARENT["thing"])
    with pytest.raises(OpError) as caught:
        await Engine(graph, cpu_workers=1).run({"thing": threading.Lock()})
    assert caught.value.op_name == "take_anything"
    assert str(caught.value) == (
        "op 'take_anything' raised PicklingError: argument 'thing' (lock) cannot be pickled to "
        "send it to a worker process: TypeError: cannot pickle '_thread.lock' object")
    assert isinstance(caught.value.__cause__, pickle.PicklingError)
    assert isinstance(caught.value.__cause__.__cause__, TypeError)


async def test_argument_that_cannot_be_unpickled_in_the_worker_is_named() -> None:
    graph = single(cpu_ops.take_anything, thing=PARENT["thing"])
    with pytest.raises(OpError, match="argument 'thing' cannot be unpickled in the worker "
                                      "process: LookupError: this object cannot be rebuilt"):
        await Engine(graph, cpu_workers=1).run({"thing": cpu_ops.FragileInWorkers()})


async def test_unpicklable_output_is_an_op_error_naming_the_output() -> None:
    graph = single(cpu_ops.return_unpicklable, n=3)
    with pytest.raises(OpError) as caught:
        await Engine(graph, cpu_workers=1).run()
    assert str(caught.value) == (
        "op 'return_unpicklable' raised PicklingError: output 'numbers' (generator) cannot be "
        "pickled to send it back from the worker process: TypeError: cannot pickle "
        "'generator' object")


async def test_a_worker_that_dies_fails_its_execution_and_is_replaced() -> None:
    with pytest.raises(OpError) as caught:
        await Engine(fan_out(cpu_ops.die), cpu_workers=1).run({"values": [1]})
    assert caught.value.op_name == "die" and caught.value.index == (0,)
    assert isinstance(caught.value.__cause__, cpu_pool.WorkerDied)
    assert "died (killed by SIGKILL)" in str(caught.value)
    assert (await Engine(single(cpu_ops.whoami, value=2), cpu_workers=1).run())["value"] == 2


# ------------------------------------------------------------ what cannot run there


def test_lambda_is_a_build_error_at_its_line() -> None:
    line = sys._getframe().f_lineno + 2
    with pytest.raises(GraphError) as caught:
        op(bound="cpu")(lambda value: {"value": value})
    err = caught.value
    assert (err.file, err.line) == (__file__, line)
    assert "cannot run in a worker process: it is a lambda" in err.message
    assert err.hint == "define it with `def` at module level"


def test_nested_function_or_closure_is_a_build_error_at_the_op_line() -> None:
    line = sys._getframe().f_lineno + 3
    factor = 3
    with pytest.raises(GraphError) as caught:
        @op(bound="cpu")
        def scale(value: int) -> dict[str, int]:
            return {"value": value * factor}
    err = caught.value
    assert (err.file, err.line) == (__file__, line)
    assert err.message == (
        "@op(bound='cpu') 'scale' cannot run in a worker process: it is defined inside "
        "test_nested_function_or_closure_is_a_build_error_at_the_op_line() (a nested function "
        "or closure), so a worker process cannot import it by name")
    assert err.hint == "define it at module level; pass what it captured as arguments"


def test_op_whose_module_level_name_is_rebound_is_a_build_error_at_the_node_line(
        tmp_path: pathlib.Path) -> None:
    graph_file = tmp_path / "rebound.py"
    graph_file.write_text(textwrap.dedent("""\
        from operonx.core import END, PARENT, START, GraphOp, op

        @op(bound="cpu")
        def crunch(value: int) -> dict[str, int]:
            return {"value": value}

        crunch_op, crunch = crunch, None

        with GraphOp(name="g") as graph:
            work = crunch_op(value=PARENT["x"])
            START >> work >> END
        """))
    result = run_python([str(graph_file)], tmp_path)
    assert result.returncode == 1
    assert (f"{graph_file}:10: op 'crunch' is bound='cpu', so worker processes import it by its "
            "module-level name, but the name __main__.crunch is bound to NoneType None, not to "
            "this op") in result.stderr
    assert "hint: define it with @op at module level as 'crunch'" in result.stderr


@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_op_of_an_interactive_main_is_a_build_error(how: str, tmp_path: pathlib.Path) -> None:
    code = textwrap.dedent("""\
        from operonx.core import op

        @op(bound="cpu")
        def crunch(value: int) -> dict[str, int]:
            return {"value": value}
        """)
    result = run_python(["-c", code] if how == "-c" else ["-"], tmp_path,
                        stdin=None if how == "-c" else code)
    assert result.returncode == 1
    where = "<string>" if how == "-c" else "<stdin>"
    assert (f"{where}:3: @op(bound='cpu') 'crunch' cannot run in a worker process: it is "
            "defined in an interactive session, a notebook, `python -c` or stdin, which worker "
            "processes cannot import") in result.stderr
    assert "hint: move it into a module of its own and import it" in result.stderr


def test_op_a_worker_cannot_import_is_an_op_error_naming_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "vanishing.py"
    path.write_text(textwrap.dedent("""\
        from operonx.core import END, PARENT, START, GraphOp, op

        @op(bound="cpu")
        def crunch(value: int) -> dict[str, int]:
            return {"value": value}

        with GraphOp(name="g") as graph:
            work = crunch(value=PARENT["x"])
            START >> work >> END
        """))
    spec = importlib.util.spec_from_file_location("_vanishing_graph", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a private name, as `operonx run` loads graph files
    try:
        spec.loader.exec_module(module)
        engine = Engine(module.graph, cpu_workers=1)
        path.unlink()  # the worker can neither import it by name nor load its file
        with pytest.raises(OpError, match=r"op 'crunch' raised ImportError: a worker process "
                                          r"could not import the op _vanishing_graph\.crunch: "
                                          r"FileNotFoundError"):
            engine.run_sync({"x": 1})
        # An Engine built now knows it at once, at the node's line.
        with pytest.raises(GraphError, match=r"vanishing\.py:8: op 'crunch' is bound='cpu' but "
                                             r"cannot run in a worker process: its module "
                                             r"'_vanishing_graph' can neither be imported"):
            Engine(module.graph, cpu_workers=1)
    finally:
        del sys.modules[spec.name]


# -------------------------------------------------------------- pickling by reference


def test_an_op_pickles_as_a_reference_to_its_module_level_name(
        tmp_path: pathlib.Path) -> None:
    assert pickle.loads(pickle.dumps(cpu_ops.whoami)) is cpu_ops.whoami
    assert pickle.loads(pickle.dumps(cpu_ops.each_value)) is cpu_ops.each_value
    # Another interpreter imports the module and gets something that runs the function.
    blob = pickle.dumps(cpu_ops.fail_on)
    code = ("import pickle, sys; f = pickle.loads(sys.stdin.buffer.read()); "
            "print(f(value=1, bad=2))")
    result = subprocess.run([sys.executable, "-c", code], input=blob, cwd=ROOT,
                            capture_output=True, timeout=60, check=False)
    assert result.stdout.decode().strip() == "{'value': 1}", result.stderr.decode()


def test_an_unreachable_op_fails_to_pickle_saying_why() -> None:
    @op
    def local(value: int) -> dict[str, int]:
        return {"value": value}

    with pytest.raises(pickle.PicklingError, match="cannot pickle op 'local': it is defined "
                                                   "inside test_an_unreachable_op_fails"):
        pickle.dumps(local)


# ------------------------------------------------------------ scripts, CLI, exit

SCRIPT = """\
import json, os, sys, asyncio
from operonx.core import END, PARENT, START, Engine, GraphOp, op

@op
def each(values: list[int]):
    for value in values:
        yield {"value": value}

@op(bound="cpu")
def work(value: int, seconds: float) -> dict[str, int]:
    import time
    time.sleep(seconds)
    return {"value": value * 2, "pid": os.getpid()}

with GraphOp(name="g") as graph:
    gen = each(values=PARENT["values"])
    w = work(value=gen["value"], seconds=PARENT["seconds"])
    START >> gen >> w >> END

if __name__ == "__main__":
    engine = Engine(graph, cpu_workers=2)
    if sys.argv[1] == "finish":
        result = engine.run_sync({"values": [1, 2, 3], "seconds": 0.01})
    else:  # abandon: a run cut short while its executions sleep for a minute
        async def cut_short():
            try:
                async with asyncio.timeout(1.0):
                    await engine.run({"values": [1, 2, 3], "seconds": 60})
            except TimeoutError:
                pass
        asyncio.run(cut_short())
        result = {"pid": []}
    from operonx.engine import cpu_pool
    print(json.dumps({"result": result, "workers": cpu_pool.shared_pool(2).pids,
                      "me": os.getpid()}))
"""


@pytest.mark.parametrize("mode", ["finish", "abandon"])
def test_a_script_runs_cpu_ops_in_workers_and_exits_promptly_leaving_none(
        mode: str, tmp_path: pathlib.Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    started = time.monotonic()
    result = run_python([str(script), mode], tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30  # an abandoned execution would sleep 60 s
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if mode == "finish":
        assert report["result"]["value"] == [2, 4, 6]  # an op of __main__, in the workers
        assert report["me"] not in report["result"]["pid"]
        assert set(report["result"]["pid"]) <= set(report["workers"])
    for pid in report["workers"]:
        assert wait_gone(pid), f"worker {pid} outlived its interpreter"


def test_a_script_that_runs_its_graph_when_imported_fails_saying_so_never_hangs(
        tmp_path: pathlib.Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT.replace('if __name__ == "__main__":', "if True:"))
    result = run_python([str(script), "finish"], tmp_path, timeout=60)
    assert result.returncode == 1
    # stderr also has the worker's own traceback (its import of the script ran the graph).
    ours = [line for line in result.stderr.splitlines()
            if line.startswith("operonx.errors.OpError: op 'work' at index (")
            and "raised WorkerDied: a worker process failed to start (exit code 1" in line]
    assert ours, result.stderr
    assert 'belongs under `if __name__ == "__main__":`' in ours[0]


def test_a_graph_file_that_runs_a_graph_when_imported_never_nests_pools(
        tmp_path: pathlib.Path) -> None:
    # `operonx run` loads graph.py; a worker loads it again to find the op, and the
    # unguarded run at its end would start a pool inside the worker, whose workers would
    # load graph.py again... The worker refuses instead, and the parent says why.
    (tmp_path / "graph.py").write_text(textwrap.dedent("""\
        from operonx.core import END, PARENT, START, Engine, GraphOp, op

        @op(bound="cpu")
        def work(value: int) -> dict[str, int]:
            return {"value": value}

        with GraphOp(name="g") as graph:
            w = work(value=PARENT["x"])
            START >> w >> END

        Engine(graph, cpu_workers=1).run_sync({"x": 1})
        """))
    result = run_python(["-m", "operonx", "run", "graph.py", "--inputs", '{"x": 2}'], tmp_path)
    assert result.returncode == 1
    assert "could not import the op" in result.stderr
    assert ("a graph with bound='cpu' ops ran inside a worker process of another "
            "bound='cpu' op") in result.stderr


def test_operonx_run_reaches_a_graph_file_loaded_under_a_private_name(
        tmp_path: pathlib.Path) -> None:
    (tmp_path / "helper.py").write_text("def triple(x: int) -> int:\n    return 3 * x\n")
    (tmp_path / "graph.py").write_text(textwrap.dedent("""\
        import os
        from helper import triple
        from operonx.core import END, PARENT, START, GraphOp, op

        @op(bound="cpu")
        def work(value: int) -> dict[str, int]:
            return {"value": triple(value), "pid": os.getpid()}

        with GraphOp(name="g") as graph:
            w = work(value=PARENT["x"])
            START >> w >> END
        """))
    cli = subprocess.Popen([sys.executable, "-m", "operonx", "run", "graph.py", "--inputs",
                            '{"x": 5}'], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 0, stderr
    out = json.loads(stdout)
    assert out["value"] == 15  # the worker loaded graph.py, and its sibling helper.py
    assert out["pid"] != cli.pid
