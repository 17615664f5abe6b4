"""The ``operonx`` command: compile, check, explain, graph and run a ``graph.py``.

Every error a user can cause is one diagnostic on stderr,
``path:LINE:COL: error: message`` (plus ``  hint: ...`` where one helps), and
no traceback unless ``operonx --debug`` (or ``OPERONX_DEBUG=1``). Exit codes:

* 0 success (``compile --check``: the output is fresh);
* 1 an error in the user's graph, code or inputs' content (``--check``: stale; a type
  error in the wiring, for ``compile`` and ``check``), or one the system reports (a full
  disk, out of memory, a permission);
* 2 a usage error: bad flags, unreadable files, inputs that are not a JSON object
  (or nested too deeply to read), an ``-o`` that must not be written;
* 3 ``compile --native`` only: the module was written and works, but its C extension
  could not be built (no C compiler or Python headers, or mypyc refused the module);
* 70 an internal error: a bug in operonx, and only that (``--debug`` shows the traceback);
* 130 interrupted.

``run --trace`` and ``trace -o`` write atomically: the file appears complete or not at all.

The ``compiler`` package is imported lazily, inside the commands that need it,
so ``operonx --help`` and ``operonx run`` stay cheap.
"""

from __future__ import annotations

import contextlib
import json
import linecache
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import click

from operonx import __version__

if TYPE_CHECKING:
    from compiler.errors import CompileError
    from operonx.core import Frame, GraphOp
    from operonx.errors import OperonxError
    from operonx.ir.model import Graph, Node, SourceLoc
    from operonx.tracing import Tracer

EXIT_INTERNAL = 70  # also compiler.errors.EXIT_INTERNAL (not imported: the CLI starts cheap)
EXIT_INTERRUPTED = 130
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep  # sep: not operonx_demo/
_INSTALL_GRAPHVIZ = ("install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), "
                     "`brew install graphviz` (macOS); or use --format dot or mermaid")


# ----------------------------------------------------------------------- diagnostics


def _error(message: str, file: str | None = None, line: int | None = None,
           col: int | None = None, hint: str | None = None, exit_code: int = 1) -> CompileError:
    from compiler.errors import CompileError

    return CompileError(message, file, line, col, hint, exit_code)


def display_path(file: str) -> str:
    """``file`` relative to the working directory when it lies below it, else unchanged."""
    if file.startswith("<"):
        return file
    relative = os.path.relpath(os.path.abspath(file))
    return file if relative.startswith(os.pardir) else relative


def column_of(file: str, line: int, needle: str | None = None) -> int:
    """1-based column of ``needle`` on that source line, else of its first non-blank character."""
    text = linecache.getline(file, line)
    found = re.search(rf"\b{re.escape(needle)}\b", text) if needle else None
    if found:
        return found.start() + 1
    stripped = text.lstrip()
    return len(text) - len(stripped) + 1 if stripped else 1


def _at(loc: SourceLoc, message: str, needle: str | None = None,
        hint: str | None = None) -> CompileError:
    return _error(message, loc.file, loc.line, column_of(loc.file, loc.line, needle), hint)


def _report(err: CompileError) -> NoReturn:
    """Print ``path:LINE:COL: error: message`` (the column found when only a line is known).

    A type check error carries several problems: each is printed, located the same way.
    """
    for problem in getattr(err, "problems", None) or (err,):
        if problem.file is not None:
            if problem.line is not None and problem.col is None:
                problem.col = column_of(problem.file, problem.line)
            problem.file = display_path(problem.file)
    click.echo(err.render(), err=True)
    sys.exit(err.exit_code)


@contextlib.contextmanager
def _type_check_warnings() -> Iterator[None]:
    """Show why the type check could not run (it then checks nothing, and refuses nothing)."""
    from compiler.typecheck import TypeCheckWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TypeCheckWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, TypeCheckWarning):
                    click.echo(str(warning.message), err=True)
                else:
                    warnings.showwarning(warning.message, warning.category, warning.filename,
                                         warning.lineno)


class OperonxGroup(click.Group):
    """Turns every operonx error raised by a command into one diagnostic and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        from operonx.errors import GraphError, OperonxError

        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`operonx run ... --stream | head`): stop quietly.
            silence_stdout()
            sys.exit(1)
        except KeyboardInterrupt:
            if debug:
                traceback.print_exc()
            click.echo("operonx: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except OperonxError as err:
            from compiler.errors import CompileError

            if debug:
                traceback.print_exc()
            if isinstance(err, CompileError):
                _report(err)
            if isinstance(err, GraphError):
                _report(_error(err.message, err.file, err.line, hint=err.hint))
            _report(_error(str(err)))
        except MemoryError:
            if debug:
                traceback.print_exc()
            _report(_error("out of memory", hint="the graph, its inputs or its result do not "
                           "fit in this machine's memory"))
        except OSError as err:
            # The system refused something (a full disk, a permission, a vanished file):
            # the user's environment, not a bug in operonx.
            if debug:
                traceback.print_exc()
            where = f" ({err.filename})" if err.filename else ""
            _report(_error(f"{err.strerror or err}{where}"))
        except Exception as err:
            if debug:
                traceback.print_exc()
            _report(_error(f"internal error: {type(err).__name__}: {err}",
                           hint="this is a bug in operonx; rerun with `operonx --debug` for "
                                "the traceback and report it", exit_code=EXIT_INTERNAL))

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)


# --------------------------------------------------------------------------- helpers


def _load(source: str, graph_name: str | None) -> tuple[str, GraphOp]:
    from compiler.frontend.load import find_graphs, load_module, select_graph

    module = load_module(source)
    return select_graph(find_graphs(module), graph_name, source)


def _file_mode(path: str) -> int:
    """Keep an existing file's permissions; give a new one the usual umask-derived ones."""
    with contextlib.suppress(OSError):
        return os.stat(path).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


def check_output(path: str, protected: Iterable[str] = ()) -> None:
    """Refuse an ``-o`` target that writing would damage (a usage error, exit 2).

    ``path`` may be a new name or an existing regular file; never a directory, a
    device, a FIFO or a socket (replacing ``/dev/null`` with a file as root would
    break the system), never a symbolic link (operonx writes what it is asked to,
    not what a link happens to point to), and never one of the ``protected`` files
    (the graph's source and the modules the compile read), however it is spelled.
    """
    shown = path  # as the user typed it; the location in front is normalised
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise _error(f"-o {shown}: cannot inspect it: {err.strerror}", path,
                     exit_code=2) from err
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(path)
        raise _error(f"-o {shown} is a symbolic link (to {target}); operonx does not write "
                     "through links or replace them", path,
                     hint="name the file itself, or remove the link first", exit_code=2)
    if stat.S_ISDIR(info.st_mode):
        raise _error(f"-o {shown} is a directory", path,
                     hint=f"name a file inside it, e.g. -o {os.path.join(shown, 'out.py')}",
                     exit_code=2)
    for is_kind, kind in _FILE_KINDS:
        if is_kind(info.st_mode):
            raise _error(f"-o {shown} is {kind}, not a regular file; operonx writes only "
                         "regular files", path, hint="name a regular file", exit_code=2)
    for index, source in enumerate(protected):
        with contextlib.suppress(OSError):
            if os.path.samefile(path, source):
                what = ("the graph's own source" if index == 0
                        else "a source file this command read (the graph's ops come from it)")
                raise _error(f"-o {shown} is {what}; writing there would destroy it", path,
                             hint="write the output to a new file, e.g. -o "
                                  f"{_sibling_name(shown)}", exit_code=2)


def _sibling_name(path: str) -> str:
    root, ext = os.path.splitext(path)
    return f"{root}_compiled{ext or '.py'}"


def write_atomic(path: str, data: bytes, protected: Iterable[str] = ()) -> None:
    """Write through a temporary file in the same directory, then ``os.replace``.

    The target is checked first (:func:`check_output`). On any failure ``path`` is
    left as it was and no temporary file remains.
    """
    check_output(path, protected)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                   suffix=".tmp")
    except OSError as err:
        raise _error(f"cannot write {path}: {err.strerror}", path, exit_code=2) from err
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _error(f"cannot write {path}: {err.strerror}", path, exit_code=2) from err
        raise


def _emit(data: str | bytes, output: str | None, protected: Iterable[str] = ()) -> None:
    payload = data.encode() if isinstance(data, str) else data
    if output is None or output == "-":
        with _writing_stdout():
            stream = sys.stdout.buffer
            stream.write(payload)
            stream.flush()
    else:
        write_atomic(output, payload, protected)


def write_stdout(text: str) -> None:
    """Write and flush now, so that a full disk is reported here and not at exit."""
    with _writing_stdout():
        sys.stdout.write(text)
        sys.stdout.flush()


@contextlib.contextmanager
def _writing_stdout() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise  # the reader went away: OperonxGroup stops quietly
    except OSError as err:
        silence_stdout()
        raise _error(f"cannot write the output: {err.strerror or err}") from err


def silence_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered must not fail again at exit."""
    with contextlib.suppress(OSError, ValueError):  # no real fd under CliRunner
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def read_inputs(value: str | None) -> dict[str, Any]:
    """``--inputs``: a JSON object inline, or ``@path`` (``@-`` reads stdin)."""
    if value is None:
        return {}
    where = "--inputs"
    text = value
    if value.startswith("@"):
        where = value[1:]
        try:
            if where == "-":
                where, text = "<stdin>", sys.stdin.read()
            else:
                with open(where, encoding="utf-8") as handle:
                    text = handle.read()
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
            raise _error(f"cannot read inputs: {reason}", where, exit_code=2) from err
    try:
        inputs = json.loads(text)
    except RecursionError as err:
        raise _error("inputs are nested too deeply to read", where, exit_code=2,
                     hint="flatten the JSON (Python's parser stops near 1000 levels)") from err
    except json.JSONDecodeError as err:
        raise _error(f"invalid JSON in inputs: {err.msg}", where, err.lineno, err.colno,
                     hint='inputs are a JSON object, e.g. --inputs \'{"numbers": [1, 2]}\'',
                     exit_code=2) from err
    if not isinstance(inputs, dict):
        raise _error(f"inputs must be a JSON object, not a JSON {_json_kind(inputs)}", where,
                     1, 1, hint='e.g. --inputs \'{"numbers": [1, 2]}\'', exit_code=2)
    return inputs


def _json_kind(value: object) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _json_default(value: object) -> object:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return repr(value)


def to_json(value: object, indent: int | None = None) -> str:
    """JSON text; NaN and infinities (which JSON cannot spell) as the strings "NaN",
    "Infinity" and "-Infinity" — as a compiled module's ``main()`` prints them.

    Raises ``CompileError`` (exit 1) for a value JSON cannot hold (too deeply nested,
    circular).
    """
    try:
        try:
            return json.dumps(value, default=_json_default, ensure_ascii=False, indent=indent,
                              allow_nan=False)
        except ValueError:  # a NaN or an infinity somewhere (or a cycle: raised again below)
            return json.dumps(finite(value), default=_json_default, ensure_ascii=False,
                              indent=indent, allow_nan=False)
    except (RecursionError, TypeError, ValueError) as err:  # deep, circular, odd keys
        reason = "it is nested too deeply" if isinstance(err, RecursionError) else err
        raise _error(f"the result cannot be written as JSON: {reason}") from err


def finite(value: Any) -> Any:
    """``value`` with every non-finite float spelled as a string."""
    if isinstance(value, float) and value - value != 0.0:  # NaN, or an infinity
        return "NaN" if value != value else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {finite(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [finite(v) for v in sorted(value, key=repr)]
    return value


def frame_to_json(frame: Frame) -> str:
    span = frame.span
    return to_json({
        "op_name": frame.op_name, "index": list(frame.index), "outputs": dict(frame.outputs),
        "span": {"trace_id": span.trace_id, "span_id": span.span_id,
                 "parent_span_id": span.parent_span_id},
        "start_ns": frame.start_ns, "end_ns": frame.end_ns,
        "attempts": frame.attempts, "cached": frame.cached,
    })


class Progress:
    """A live ``\\r``-rewritten status line (only when ``stream`` is a terminal)."""

    def __init__(self, stream: TextIO, label: str, enabled: bool | None = None,
                 interval: float = 0.1) -> None:
        self.stream = stream
        self.label = label
        self.enabled = stream.isatty() if enabled is None else enabled
        self.interval = interval
        self.frames = 0
        self.started = time.monotonic()
        self._shown = 0.0

    def update(self, frame: Frame) -> None:
        self.frames += 1
        now = time.monotonic()
        if not self.enabled or now - self._shown < self.interval:
            return
        self._shown = now
        index = "".join(f"[{i}]" for i in frame.index)
        self.stream.write(f"\r\x1b[K{self.label}: {self.frames} frames · "
                          f"{frame.op_name}{index} · {now - self.started:.1f}s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


# ---------------------------------------------------------------- run: error locations


def find_node(graph: Graph, qualified: str) -> Node | None:
    """The node named ``inner.double`` (a dotted path through sub-graphs and loops)."""
    scope: Graph | None = graph
    node = None
    for part in qualified.split("."):
        if scope is None or part not in scope.nodes:
            return None
        node = scope.nodes[part]
        scope = node.body
    return node


def _user_frame(err: BaseException | None) -> str | None:
    """``file:line in func`` of the innermost frame of ``err`` outside operonx."""
    if err is None:
        return None
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)]
    if not frames:
        return None
    last = frames[-1]
    return f"{display_path(last.filename)}:{last.lineno} in {last.name}"


def _run_error(err: OperonxError, graph: Graph) -> CompileError:
    from operonx.errors import InputError, LoopLimitExceeded, OpError

    if isinstance(err, OpError):
        node = find_node(graph, err.op_name)
        raised = _user_frame(err.__cause__)
        hint = f"raised at {raised}" if raised else None
        if node is None:
            return _at(graph.loc, str(err), "GraphOp", hint)
        needle = node.op.fn.__name__ if node.op is not None else "GraphOp"
        return _at(node.loc, str(err), needle, hint)
    if isinstance(err, LoopLimitExceeded):
        node = find_node(graph, err.loop_name)
        hint = "raise max_iterations=..., or check that the body moves the state towards until"
        return _at(node.loc if node else graph.loc, str(err), "GraphOp", hint)
    if isinstance(err, InputError):
        required = ", ".join(graph.required_inputs) or "none"
        optional = ", ".join(graph.optional_inputs) or "none"
        return _at(graph.loc, str(err), "GraphOp",
                   f"graph {graph.name!r} takes inputs: required {required}; optional {optional}")
    return _at(graph.loc, str(err), "GraphOp")


def _run_stream(graph_op: GraphOp, inputs: dict[str, Any], label: str,
                tracers: Sequence[Tracer]) -> None:
    from operonx.core import Engine

    progress = Progress(sys.stderr, label)
    out = sys.stdout

    async def consume() -> None:
        async for frame in Engine(graph_op, tracers=tracers).stream(inputs=inputs):
            progress.update(frame)
            line = frame_to_json(frame) + "\n"
            with _writing_stdout():
                out.write(line)
                out.flush()

    try:
        _event_loop_run(consume)
    finally:
        progress.close()


@contextlib.contextmanager
def trace_output(path: str | None, source: str) -> Iterator[list[Tracer]]:
    """``--trace``: a Chrome trace written to a temporary file, moved to ``path`` when the run ends.

    The run's end includes failing and being interrupted (the trace says how it
    ended); a run that never started (bad inputs) leaves ``path`` as it was.
    """
    if path is None:
        yield []
        return
    from operonx.tracing import ChromeTraceTracer

    with contextlib.suppress(OSError):
        if os.path.samefile(path, source):
            raise _error("--trace would overwrite the graph's own source", path, exit_code=2)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                   suffix=".tmp")
    except OSError as err:
        raise _error(f"cannot write {path}: {err.strerror}", path, exit_code=2) from err
    os.close(fd)
    tracer = ChromeTraceTracer(tmp)
    try:
        yield [tracer]
    except BaseException:
        _settle_trace(tmp, path, tracer.complete, report=False)  # the run's error comes first
        raise
    _settle_trace(tmp, path, tracer.complete, report=True)


def _settle_trace(tmp: str, path: str, complete: bool, report: bool) -> None:
    """Move a complete trace to ``path``; remove the temporary file in every other case."""
    try:
        if complete:
            os.chmod(tmp, _file_mode(path))
            os.replace(tmp, path)
            return
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if report:
            raise _error(f"cannot write {path}: {err.strerror}", path, exit_code=2) from err
        return
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _event_loop_run(main: Callable[[], Any]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        import asyncio

        asyncio.run(main())
        return
    uvloop.run(main())


# -------------------------------------------------------------------------- commands

_GRAPH_OPTION = click.option("--graph", "graph_name", metavar="NAME",
                             help="Which top-level graph, when the file defines several.")
_SOURCE = click.argument("source", metavar="GRAPH_PY")


@click.group(cls=OperonxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="operonx",
                      message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, envvar="OPERONX_DEBUG",
              help="Show Python tracebacks for errors.")
def cli(debug: bool) -> None:
    """operonx: streaming dataflow graphs, and a compiler for them."""


@cli.command("compile")
@_SOURCE
@click.option("-o", "--output", required=True, metavar="OUT_PY",
              type=click.Path(dir_okay=False), help="The module to write.")
@_GRAPH_OPTION
@click.option("-O", "opt_level", type=click.IntRange(0, 2), default=2, show_default=True,
              metavar="0|1|2", help="Optimisation level: -O0, -O1 or -O2.")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 when OUT_PY is stale, 0 when it is fresh.")
@click.option("--no-typecheck", "no_typecheck", is_flag=True,
              help="Skip the type check of the graph's wiring (SPEC 7.1).")
@click.option("--target", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="local: a uvloop module for one process; ray: runs on a Ray cluster.")
@click.option("--native", is_flag=True,
              help="Also compile OUT_PY with mypyc into a C extension next to it, which "
                   "`import` then loads instead (same results, faster). Needs a C compiler "
                   "and the Python headers; without them exit 3, OUT_PY written and working.")
def compile_command(source: str, output: str, graph_name: str | None, opt_level: int,
                    check: bool, no_typecheck: bool, target: str, native: bool) -> None:
    """Compile GRAPH_PY into one standalone, typed module.

    The wiring is type-checked first: an argument fed a value of the wrong type is an
    error located in GRAPH_PY, and nothing is written.

    --native builds OUT_PY's C extension (OUT.cpython-*.so) with mypyc, in a temporary
    directory, moved into place only when complete; `import OUT` then runs it, and OUT_PY
    stays the readable source. Exit 3 when it cannot be built (no C compiler, no Python
    headers, mypyc refused the module): the message says what is missing, and OUT_PY is
    written and works as pure Python. Without --native, an older extension of OUT_PY is
    removed (it would be imported instead of the new module).
    """
    from compiler import compile_file, is_stale

    if native and (check or target != "local"):
        raise _error("--native builds the local module: it goes with neither --check nor "
                     "--target ray", exit_code=2)
    if not check:
        check_output(output, (source,))  # fail fast; the modules it reads are checked after
    with _type_check_warnings():
        result = compile_file(source, graph_name=graph_name, opt_level=opt_level,
                              typecheck=not no_typecheck, target=target)
    if check:
        if is_stale(output, result):
            state = "is stale" if os.path.exists(output) else "does not exist"
            raise _error(f"{output} {state}", output,
                         hint=f"regenerate it: operonx compile {source} -o {output}"
                              + ("" if target == "local" else f" --target {target}"))
        return
    write_atomic(output, result.source.encode(), result.sources or (source,))
    if native:
        _build_native(output)
    else:
        _remove_stale_native(output)


def _build_native(output: str) -> None:
    """``compile --native``: the C extension of the module just written (exit 3 if not)."""
    from compiler.native import NativeBuildError, build_native

    try:
        built = build_native(output)
    except NativeBuildError as err:
        err.hint = (f"{output} was written and works without it, as pure Python"
                    + (f"; {err.hint}" if err.hint else ""))
        raise
    for name, reasons in built.refused.items():
        click.echo(f"note: mypyc could not compile {name}(), which runs as CPython code "
                   f"inside the extension: {reasons[0].split(': error: ', 1)[-1]}", err=True)


def _remove_stale_native(output: str) -> None:
    """An extension built from an older ``output`` would be imported instead of it."""
    from compiler.native import remove_native

    try:
        removed = remove_native(output)
    except OSError as exc:
        raise _error(f"cannot remove the native build of the old {output} "
                     f"({exc.filename}: {exc.strerror}); `import` would load it instead of "
                     "the new module", output) from exc
    for path in removed:
        click.echo(f"note: removed {display_path(path)}, the native build of the old "
                   f"{output} (rebuild it with --native)", err=True)


@cli.command()
@_SOURCE
@click.option("--graph", "graph_name", metavar="NAME",
              help="Check only this top-level graph (default: every graph in the file).")
def check(source: str, graph_name: str | None) -> None:
    """Validate GRAPH_PY and type-check its wiring; write nothing (exit 0 ok, 1 errors).

    For editors and pre-commit hooks: every problem is printed as path:LINE:COL.
    """
    from compiler import check_file

    with _type_check_warnings():
        check_file(source, graph_name=graph_name)


@cli.command()
@_SOURCE
@_GRAPH_OPTION
def explain(source: str, graph_name: str | None) -> None:
    """Show the IR before and after each pass, and what each pass changed."""
    from compiler import explain as explain_graph

    text = explain_graph(source, graph_name=graph_name)
    click.echo(text if text.endswith("\n") else text + "\n", nl=False)


@cli.command()
@_SOURCE
@_GRAPH_OPTION
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg", "png"]),
              default="mermaid", show_default=True,
              help="Text (mermaid, dot) or an image rendered by Graphviz `dot` (svg, png).")
@click.option("-o", "--output", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write here instead of stdout.")
def graph(source: str, graph_name: str | None, fmt: str, output: str | None) -> None:
    """Draw GRAPH_PY's graph as Mermaid, Graphviz dot, SVG or PNG."""
    from operonx.graphviz import to_dot, to_mermaid

    if fmt == "png" and output in (None, "-") and sys.stdout.isatty():
        raise click.UsageError("refusing to write PNG to a terminal; pass -o FILE")
    _, graph_op = _load(source, graph_name)
    protected = graph_sources(source, graph_op.ir)
    if fmt == "mermaid":
        _emit(to_mermaid(graph_op.ir), output, protected)
    elif fmt == "dot":
        _emit(to_dot(graph_op.ir), output, protected)
    else:
        _emit(render_image(to_dot(graph_op.ir), fmt), output, protected)


def graph_sources(source: str, graph: Graph) -> list[str]:
    """``source``, then the file of every op the graph (and its bodies) runs."""
    import inspect

    files = [os.path.abspath(source), graph.loc.file]
    scopes = [graph]
    while scopes:
        scope = scopes.pop()
        for node in scope.nodes.values():
            if node.op is not None:
                with contextlib.suppress(TypeError):
                    files.append(inspect.getsourcefile(node.op.fn) or "")
            if node.body is not None:
                scopes.append(node.body)
    return [f for f in dict.fromkeys(files) if f]


def render_image(dot_text: str, fmt: str) -> bytes:
    """Pipe dot text through the Graphviz ``dot`` program."""
    dot = shutil.which("dot")
    if dot is None:
        raise _error(f"--format {fmt} needs the Graphviz `dot` program, which is not on PATH",
                     hint=_INSTALL_GRAPHVIZ)
    done = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                          check=False)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        raise _error(f"`dot -T{fmt}` failed: {reason}")
    return done.stdout


@cli.command()
@_SOURCE
@_GRAPH_OPTION
@click.option("--inputs", "inputs_arg", metavar="JSON|@FILE",
              help="The run's inputs: a JSON object, or @file.json (@- reads stdin).")
@click.option("--stream", is_flag=True,
              help="Print every frame as a JSON line as it happens (the last is END).")
@click.option("--trace", "trace_path", metavar="RUN_JSON", type=click.Path(dir_okay=False),
              help="Also write the run as a Chrome trace: open it in https://ui.perfetto.dev, "
                   "or summarise and draw it with `operonx trace`.")
def run(source: str, graph_name: str | None, inputs_arg: str | None, stream: bool,
        trace_path: str | None) -> None:
    """Run GRAPH_PY through the Engine; print the result as JSON."""
    from compiler.errors import CompileError
    from operonx.core import Engine
    from operonx.errors import GraphError, OperonxError

    inputs = read_inputs(inputs_arg)
    name, graph_op = _load(source, graph_name)
    with trace_output(trace_path, source) as tracers:
        try:
            if stream:
                _run_stream(graph_op, inputs, f"operonx run {name}", tracers)
            else:
                result = Engine(graph_op, tracers=tracers).run_sync(inputs=inputs)
                write_stdout(to_json(result) + "\n")
        except (GraphError, CompileError):
            raise  # already a diagnostic (a result that cannot be written, say)
        except OperonxError as err:
            raise _run_error(err, graph_op.ir) from err


@cli.command("trace")
@click.argument("trace_file", metavar="RUN_JSON")
@click.option("-o", "--output", metavar="TIMELINE", type=click.Path(dir_okay=False),
              help="Draw the run's timeline here: .svg or .png (needs the viz extra).")
@click.option("--run", "run_pid", type=click.IntRange(min=1), metavar="N",
              help="Which run (its pid), when the file holds several.")
def trace_command(trace_file: str, output: str | None, run_pid: int | None) -> None:
    """Summarise a trace from `run --trace` (per-op counts and durations), or draw it."""
    from operonx.tracing.chrome_read import TraceFileError, load_trace, summary_text

    fmt = None
    if output is not None:
        fmt = os.path.splitext(output)[1].lower().lstrip(".")
        if fmt not in ("svg", "png"):
            raise click.BadParameter(f"{output!r} does not end in .svg or .png",
                                     param_hint="'-o'")
        with contextlib.suppress(OSError):
            if os.path.samefile(output, trace_file):
                raise _error("-o would overwrite the trace itself", output, exit_code=2)
    try:
        trace = load_trace(trace_file)
    except TraceFileError as err:
        raise _error(err.message, err.path, err.line, err.col, err.hint, exit_code=2) from err
    runs = trace.runs
    pids = ", ".join(str(r.pid) for r in runs) or "none"
    if run_pid is not None:
        runs = [r for r in runs if r.pid == run_pid]
        if not runs:
            raise _error(f"no run {run_pid} in this trace (runs: {pids})", trace_file,
                         exit_code=2)
    if not runs:
        raise _error("the trace holds no run", trace_file, exit_code=2)
    if fmt is None:
        click.echo(summary_text(display_path(trace_file), runs), nl=False)
        return
    if len(runs) > 1:
        raise _error(f"the trace holds {len(runs)} runs (pids {pids}); pick one with --run N",
                     trace_file, exit_code=2)
    from operonx.viz.timeline import INSTALL, VizUnavailable, render_timeline

    try:
        image = render_timeline(runs[0], fmt)
    except VizUnavailable as err:
        raise _error("drawing a timeline needs matplotlib, which is not installed",
                     hint=f"install the viz extra: {INSTALL}", exit_code=2) from err
    assert output is not None  # fmt is set only with -o
    write_atomic(output, image)


def main() -> None:
    cli.main(prog_name="operonx")

