"""The CLI on a graph with a branch (SPEC §8): run, graph and compile."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import Invoke


def test_run_routes_through_the_engine(workdir: Path, invoke: Invoke) -> None:
    result = invoke("run", "branching.py", "--inputs", '{"text": "a.wav"}')
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"published": "transcript of a.wav"}


def test_graph_draws_conditional_edges_dashed_with_their_condition(invoke: Invoke,
                                                                   workdir: Path) -> None:
    mermaid = invoke("graph", "branching.py", "--format", "mermaid")
    assert mermaid.exit_code == 0, mermaid.stderr
    lines = mermaid.stdout.splitlines()
    assert """    n_classify -.->|"if classify['kind'] == 'audio'"| n_transcribe""" in lines
    assert '    n_classify -.->|"else"| n_passthrough' in lines
    assert "    n_passthrough --> n_publish" in lines  # the join is an ordinary edge
    dot = invoke("graph", "branching.py", "--format", "dot")
    assert (""""n_classify" -> "n_transcribe" [label="if classify['kind'] == 'audio'", """
            "style=dashed];") in dot.stdout


def test_compile_writes_a_module_that_routes_like_the_engine(workdir: Path,
                                                            invoke: Invoke) -> None:
    import subprocess
    import sys

    result = invoke("compile", "branching.py", "-o", "out.py")
    assert result.exit_code == 0, result.stderr
    for inputs in ('{"text": "a.wav"}', '{"text": "hello"}'):
        compiled = subprocess.run([sys.executable, "out.py", "--inputs", inputs], cwd=workdir,
                                  capture_output=True, text=True, check=False)
        engine = invoke("run", "branching.py", "--inputs", inputs)
        assert compiled.returncode == 0, compiled.stderr
        assert json.loads(compiled.stdout) == json.loads(engine.stdout)


def test_run_stream_prints_attempts_and_cache_hits(workdir: Path, invoke: Invoke) -> None:
    import shutil

    from tests.cli.helpers import REPO

    shutil.copy(REPO / "examples" / "policies.py", workdir / "policies.py")
    result = invoke("run", "policies.py", "--inputs", '{"urls": ["a", "a"]}', "--stream")
    assert result.exit_code == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    embeds = sorted((f["attempts"], f["cached"]) for f in frames if f["op_name"] == "embed")
    assert embeds == [(0, True), (1, False)]  # one call, one hit
