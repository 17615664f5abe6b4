"""What every pass returns besides the new IR: a human account of what it changed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PassReport:
    name: str
    changed: tuple[str, ...]  # human lines, e.g. "fused each_item >> double"
