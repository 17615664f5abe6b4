"""Where mypy's incremental cache lives: the user's cache directory, never the project.

``OPERONX_MYPY_CACHE_DIR`` overrides it; otherwise ``$XDG_CACHE_HOME/operonx/mypy``
(``~/.cache/operonx/mypy`` when that is unset), one sub-directory per mypy version so
two environments with different mypys do not invalidate each other's cache.
"""

from __future__ import annotations

import os

ENV_VAR = "OPERONX_MYPY_CACHE_DIR"


def cache_root() -> str:
    """The directory the check's mypy cache is kept under (not created here)."""
    override = os.environ.get(ENV_VAR)
    if override:
        return os.path.abspath(override)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "operonx", "mypy")


def cache_dir(mypy_version: str) -> str:
    """The cache directory for this mypy, created; ``os.devnull`` (no cache) if it cannot be.

    mypy itself adds a sub-directory per Python version below it.
    """
    root = cache_root()
    path = root if os.environ.get(ENV_VAR) else os.path.join(root, mypy_version)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return os.devnull
    return path if os.access(path, os.W_OK) else os.devnull
