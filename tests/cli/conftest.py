"""Fixtures for the CLI tests (defined in helpers.py, which the tests also import)."""

from tests.cli.helpers import invoke, workdir

__all__ = ["invoke", "workdir"]
