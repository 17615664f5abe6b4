"""``@op(resources={...})``: what one execution of an op asks a cluster scheduler for.

Only the Ray target reads them (``operonx compile --target ray``: each stage's
Ray task is submitted with them); the Engine and the local compiled module run
on one machine and ignore them. They are checked when the op is declared, with
Ray's own rules, so a typo is a located ``GraphError`` rather than a failure on
the cluster in the middle of a run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from operonx.errors import GraphError
from operonx.ir.model import SourceLoc

#: Keys Ray takes as task options of their own; any other key is a custom resource.
BUILTIN = ("num_cpus", "num_gpus", "memory")
_SPELLED_BY_RAY = {"CPU": "num_cpus", "GPU": "num_gpus"}

Resources = tuple[tuple[str, float], ...]


def check_resources(resources: Mapping[str, Any] | None, loc: SourceLoc) -> Resources:
    """The resources as sorted ``(name, amount)`` pairs; ``GraphError`` at ``loc`` if invalid."""
    if resources is None:
        return ()
    where = f"@op(resources={resources!r})"
    if not isinstance(resources, Mapping):
        raise GraphError(f"{where} must be a dict of resource name to amount", loc.file, loc.line)
    checked: dict[str, float] = {}
    for name, amount in resources.items():
        if not isinstance(name, str) or not name:
            raise GraphError(f"{where}: resource names are non-empty strings, not {name!r}",
                             loc.file, loc.line)
        if name in _SPELLED_BY_RAY:
            raise GraphError(f"{where}: write {_SPELLED_BY_RAY[name]!r}, not {name!r}",
                             loc.file, loc.line)
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) \
                or not math.isfinite(amount) or amount < 0:
            raise GraphError(f"{where}: {name!r} must be a number >= 0, not {amount!r}",
                             loc.file, loc.line)
        if amount > 1 and amount != int(amount):
            # Ray's rule: fractions of a resource exist only below one unit.
            raise GraphError(f"{where}: {name!r}={amount!r}: amounts above 1 must be whole",
                             loc.file, loc.line)
        checked[name] = int(amount) if amount == int(amount) else float(amount)
    return tuple(sorted(checked.items()))
