"""The operonx compiler: graph.py -> IR -> passes -> one standalone typed module.

Imported only by the CLI (and tests): ``operonx`` itself never imports it. This
module stays light: the heavy parts load when a function is called.
"""

from compiler.api import (
    CompileResult,
    PassReport,
    build_native,
    check_file,
    compile_file,
    compile_graph,
    explain,
    is_stale,
)
from compiler.errors import CompileError

__all__ = ["CompileError", "CompileResult", "PassReport", "build_native", "check_file",
           "compile_file", "compile_graph", "explain", "is_stale"]
