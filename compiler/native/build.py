"""Build the extension: mypyc, in a subprocess, in a temporary directory; moved into place.

The extension ``out.<EXT_SUFFIX>`` (``out.cpython-311-x86_64-linux-gnu.so``) stands next
to ``out.py``; Python's import system prefers it, so ``import out`` loads the native
build. It is made for the interpreter that runs the build (``sys.executable``).

Nothing is left half-done: the C sources, objects and mypy's cache live in a temporary
directory that is always removed; the finished extension is copied to a temporary file
next to ``out.py`` and renamed over the final name (``os.replace``), so the extension
appears complete or not at all. A build that cannot be made raises
:class:`NativeBuildError` saying what is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import keyword
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from compiler.errors import CompileError
from compiler.native.variant import VariantError, compiled_functions, native_source

EXIT_NATIVE = 3  # the CLI's exit code: out.py was written, its native build was not
# mypyc's own settings for the build; ``--config-file=`` keeps any mypy configuration of
# the user's (``strict``...) out of it: the variant is checked as mypyc needs, no more.
_BUILD_SCRIPT = """\
import sys
from mypyc.build import mypycify
from setuptools import setup

source, opt_level = sys.argv[1:]
setup(name="operonx_native", script_args=["build_ext", "--inplace"],
      ext_modules=mypycify(["--config-file=", source], opt_level=opt_level))
"""
_INSTALL_CC = ("install one (Debian/Ubuntu: apt-get install gcc python3-dev; "
               "macOS: xcode-select --install)")


class NativeBuildError(CompileError):
    """``--native`` could not build the extension (``out.py`` itself is fine)."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, file, line, hint=hint, exit_code=EXIT_NATIVE)


def extension_path(out_path: str) -> str:
    """Where the native build of ``out_path`` goes (for this interpreter)."""
    root, _ext = os.path.splitext(out_path)
    return root + _ext_suffix()


def _ext_suffix() -> str:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    return suffix if isinstance(suffix, str) else ".so"


def missing_toolchain() -> str | None:
    """What the build needs and this machine lacks (a sentence), or None."""
    compiler = _c_compiler()
    if compiler is None:
        return f"no C compiler found ({_c_compiler_name()!r} is not on PATH); {_INSTALL_CC}"
    include = sysconfig.get_paths().get("include", "")
    if not os.path.exists(os.path.join(include, "Python.h")):
        return (f"the Python headers are missing (no Python.h in {include}); install them "
                "(Debian/Ubuntu: apt-get install python3-dev)")
    if importlib.util.find_spec("setuptools") is None:
        return ("setuptools is not installed (mypyc builds with it); "
                "pip install 'operonx[native]'")
    return None


def _c_compiler_name() -> str:
    """The compiler setuptools will call: ``$CC``, else the one Python was built with."""
    configured = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(str(configured))
    return words[0] if words else "cc"


def _c_compiler() -> str | None:
    return shutil.which(_c_compiler_name())


@dataclass(frozen=True)
class NativeBuild:
    """A finished native build."""

    path: str  # the extension, next to out.py
    # Copied functions mypyc refused, which run as CPython code inside the extension,
    # with mypyc's reasons (``out.py:LINE: error: ...``).
    refused: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


_ATTEMPTS = 3  # a build, and up to two more without the functions mypyc refused


def build_native(out_path: str, *, opt_level: str = "3") -> NativeBuild:
    """Compile the generated module ``out_path`` with mypyc into an extension next to it
    (:mod:`compiler.native.variant` says what is compiled and how it stays exact).

    A copied function mypyc refuses stays CPython code (named in the result); anything
    else it refuses, or a missing C compiler, raises :class:`NativeBuildError`, and then
    no extension of ``out_path`` is left (an old one would shadow the new ``out.py``).
    ``opt_level``: the C compiler's optimisation level (mypyc's default, ``3``).
    """
    try:
        remove_native(out_path)
        name = os.path.splitext(os.path.basename(out_path))[0]
        if not name.isidentifier() or keyword.iskeyword(name):
            raise NativeBuildError(
                f"--native: {name!r} is not a module name Python can import, so no "
                "extension can stand in for it", out_path,
                hint="name the output as an identifier, e.g. -o my_graph.py")
        source = _read(out_path)
        missing = missing_toolchain()
        if missing is not None:
            raise NativeBuildError(f"--native: {missing}", out_path)
        return _build(out_path, name, source, opt_level)
    except OSError as exc:  # a full disk, a permission: the system's, said as such
        where = f" ({exc.filename})" if exc.filename else ""
        raise NativeBuildError(f"--native: {exc.strerror or exc}{where}", out_path) from exc


def _build(out_path: str, name: str, source: str, opt_level: str) -> NativeBuild:
    filename = f"{name}.py"
    refused: dict[str, tuple[str, ...]] = {}
    with tempfile.TemporaryDirectory(prefix="operonx-native-") as build_dir:
        for _attempt in range(_ATTEMPTS):
            variant = native_source(source, os.path.basename(out_path), refused)
            built, log = _mypyc(build_dir, name, variant, opt_level)
            if built is not None:
                return NativeBuild(_install(built, extension_path(out_path)), refused)
            blamed = _blame(source, refused, _errors(log, filename))
            if not blamed:
                break
            refused.update(blamed)
    raise NativeBuildError(f"--native: mypyc could not compile {out_path}:\n"
                           + _why(log, filename), out_path)


def _read(out_path: str) -> str:
    try:
        with open(out_path, encoding="utf-8") as f:
            source = f.read()
        native_source(source, os.path.basename(out_path))  # its shape, before any build
    except OSError as exc:
        raise NativeBuildError(f"--native: cannot read {out_path}: {exc.strerror or exc}",
                               out_path) from exc
    except (VariantError, SyntaxError) as exc:
        raise NativeBuildError(f"--native: {out_path} is not a module operonx generated "
                               f"({exc})", out_path) from exc
    return source


def _mypyc(build_dir: str, name: str, variant: str, opt_level: str) -> tuple[str | None, str]:
    """Run mypyc over ``variant`` (as module ``name``) in ``build_dir``: the built file (or
    None) and the build's log."""
    source = f"{name}.py"
    with open(os.path.join(build_dir, source), "w", encoding="utf-8") as f:
        f.write(variant)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, source, opt_level],
                          cwd=build_dir, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace", check=False)
    built = os.path.join(build_dir, name + _ext_suffix())
    ok = done.returncode == 0 and os.path.exists(built)
    return (built if ok else None), done.stdout + done.stderr


def _errors(log: str, filename: str) -> list[tuple[int, str]]:
    """mypy's and mypyc's errors in the log: (line in out.py, the error line)."""
    found = []
    for line in log.splitlines():
        head, _, rest = line.partition(":")
        number, _, _message = rest.partition(":")
        if head == filename and number.strip().isdigit() and ": error:" in line:
            found.append((int(number), line))
    return found


def _blame(source: str, refused: Mapping[str, tuple[str, ...]],
           errors: list[tuple[int, str]]) -> dict[str, tuple[str, ...]]:
    """The compiled copied functions the errors are in, when every error is in one; else
    nothing (an error in the generated code does not go away by leaving functions out)."""
    spans = {name: span for name, (span, _node) in compiled_functions(source, refused).items()}
    blamed: dict[str, list[str]] = {}
    for number, line in errors:
        owner = next((n for n, (first, last) in spans.items() if first <= number <= last),
                     None)
        if owner is None:
            return {}
        blamed.setdefault(owner, []).append(line)
    return {name: tuple(lines) for name, lines in blamed.items()}


def _why(log: str, filename: str, limit: int = 12) -> str:
    """The lines of a failed build's log that say why: mypy's and mypyc's errors (at
    out.py's lines: the variant keeps them), else the C compiler's, else the log's end."""
    lines = [line for line in log.splitlines() if line.strip()]
    errors = [line for _number, line in _errors(log, filename)]
    if not errors:
        errors = [line for line in lines if "error" in line.lower()] or lines[-limit:]
    more = f"\n  ... ({len(errors) - limit} more)" if len(errors) > limit else ""
    return "\n".join(f"  {line}" for line in errors[:limit]) + more


def _install(built: str, target: str) -> str:
    """Copy ``built`` next to ``target`` under a temporary name, then rename it into place."""
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, open(built, "rb") as f:
            shutil.copyfileobj(f, out)
        umask = os.umask(0)  # mkstemp made it private: give it a new file's usual mode
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def remove_native(out_path: str) -> list[str]:
    """Remove the native builds of ``out_path`` this interpreter would import instead of it
    (``out.cpython-311-x86_64-linux-gnu.so``, ``out.abi3.so``, ``out.so``): one built from
    an older ``out.py`` would shadow the new one. Returns the paths removed."""
    import importlib.machinery

    root, _ext = os.path.splitext(out_path)
    removed = []
    for suffix in dict.fromkeys([_ext_suffix(), *importlib.machinery.EXTENSION_SUFFIXES]):
        path = root + suffix
        if os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)
            removed.append(path)
    return removed
