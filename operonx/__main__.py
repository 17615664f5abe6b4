"""``python -m operonx`` is the ``operonx`` command."""

from operonx.cli import main

main()
