"""Rewrite every golden file from the current compiler: ``python -m tests.golden.regenerate``.

Run from the repository root (``make golden`` does), then review the diff.
Paths are relative so the files do not depend on where the repo lives.
"""

from __future__ import annotations

import os
import sys

from tests.golden.cases import CASES, REPO, golden_path, kinds, ray_kinds, render


def main() -> int:
    os.chdir(REPO)
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    os.makedirs(os.path.dirname(golden_path(CASES[0], "ir")), exist_ok=True)
    changed = 0
    for case in CASES:
        for kind in (*kinds(), *ray_kinds(case)):
            path = golden_path(case, kind)
            text = render(case, kind)
            old = None
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    old = f.read()
            if old != text:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                changed += 1
                print(f"updated {os.path.relpath(path, REPO)}")
    print(f"{changed} golden file(s) changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
