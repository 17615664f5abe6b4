"""The benchmark cases written for ``operonx==1.35.0`` from PyPI (run by ``bench/.venv-pypi``).

One module per case, mirroring ``bench/graphs/``: ``build(n)`` returns the 1.35
graph and ``extract(result)`` maps its result to the shape ``bench/cases.py``
checks.  The 1.35 imports live inside ``build`` so that every file here imports
without the PyPI venv (our own ``operonx`` has the same import name).

How 1.35 differs, and what each module does about it:

* Streams are **sequential per item** by default in 1.35; ours run every frame
  concurrently (bounded by ``max_stream_concurrent``).  Sync consumers keep the
  1.35 default (what its users write, and its fastest mode for inline ops); the
  async fan-out uses ``.parallel(max=64)``, the same bound as ours.  1.35 does not
  keep yield order under ``.parallel()``, so that case's result is sorted.
* ``GraphOp.loop(until=...)`` was removed in 1.0.0: the loop case is a back-edge
  ``if_(s["count"] >= n, END).else_(s)`` over a ``PARENT.declare`` cell, which
  1.35 rewrites into a hidden loop.  Its result lists the cell's value per
  iteration; the last is the count.
* ``run`` returns ``"$state"`` (and ``"$cells"``) beside the outputs; ignored.
"""
