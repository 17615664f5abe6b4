"""Session-wide setup: the type check's mypy cache goes to a fresh temporary directory.

So the suite neither reads nor fills the user's real cache (``~/.cache/operonx/mypy``);
subprocesses the tests start inherit it. A value already set in the environment wins.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_VAR = "OPERONX_MYPY_CACHE_DIR"
_created: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(_VAR):
        _created.append(tempfile.mkdtemp(prefix="operonx-mypy-cache-"))
        os.environ[_VAR] = _created[-1]


def pytest_unconfigure(config: pytest.Config) -> None:
    for path in _created:
        shutil.rmtree(path, ignore_errors=True)
        if os.environ.get(_VAR) == path:
            del os.environ[_VAR]
