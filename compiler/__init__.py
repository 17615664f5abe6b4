"""The operonx compiler: graph.py -> IR -> passes -> one standalone typed module.

Imported only by the CLI (and tests): ``operonx`` itself never imports it.
"""
