"""``operonx compile --native``: the generated module, compiled by mypyc into a C extension.

``build_native("out.py")`` writes ``out.<EXT_SUFFIX>`` next to ``out.py`` (which stays the
readable source of truth); ``import out`` then loads the extension. What is compiled and
what stays CPython code, and why the result computes exactly what ``out.py`` computes:
:mod:`compiler.native.variant`. The build itself (toolchain checks, mypyc in a temporary
directory, the atomic move into place): :mod:`compiler.native.build`.
"""

from compiler.native.build import (
    EXIT_NATIVE,
    NativeBuild,
    NativeBuildError,
    build_native,
    extension_path,
    missing_toolchain,
    remove_native,
)
from compiler.native.variant import compiled_functions, native_source

__all__ = [
    "EXIT_NATIVE",
    "NativeBuild",
    "NativeBuildError",
    "build_native",
    "compiled_functions",
    "extension_path",
    "missing_toolchain",
    "native_source",
    "remove_native",
]
