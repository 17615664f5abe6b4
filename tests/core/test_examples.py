"""The tour `make run` ends with (examples/run_all.py), including branching and policies."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_run_all_runs_every_example_through_the_engine() -> None:
    results = {line.split()[1]: json.loads(line.split(" -> ", 1)[1])
               for line in _run("examples/run_all.py").splitlines()}
    assert results["branching.py"] == {
        "stored": ["a.wav: <speech in a.wav>", "b.png: <text seen in b.png>",
                   "c.txt: <contents of c.txt>"],
        "audio_minutes": 3}
    assert len(results["policies.py"]["vector"]) == 4
    assert {"streaming.py", "collect.py", "loop.py"} <= set(results)


def test_policies_example_shows_retries_and_cache_hits() -> None:
    lines = _run("examples/policies.py").splitlines()
    assert "fetch    (1,)  attempts=2" in lines  # the stalled attempt timed out, then retried
    assert "fetch    (3,)  attempts=3" in lines  # two dropped connections
    assert "embed    (2,)  attempts=0 (cache hit)" in lines
