"""The ``operonx`` command: compile, explain, graph and run a ``graph.py``.

Every error a user can cause is one diagnostic on stderr,
``path:LINE:COL: error: message`` (plus ``  hint: ...`` where one helps), and
no traceback unless ``operonx --debug`` (or ``OPERONX_DEBUG=1``). Exit codes:

* 0 success (``compile --check``: the output is fresh);
* 1 an error in the user's graph, code or inputs' content (``--check``: stale);
* 2 a usage error: bad flags, unreadable files, inputs that are not a JSON object;
* 70 an internal error (a bug in operonx; ``--debug`` shows the traceback);
* 130 interrupted.

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
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import click

from operonx import __version__

if TYPE_CHECKING:
    from compiler.errors import CompileError
    from operonx.core import Frame, GraphOp
    from operonx.errors import OperonxError
    from operonx.ir.model import Graph, Node, SourceLoc

EXIT_INTERNAL = 70
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
    """Print ``path:LINE:COL: error: message`` (the column found when only a line is known)."""
    if err.file is not None:
        if err.line is not None and err.col is None:
            err.col = column_of(err.file, err.line)
        err.file = display_path(err.file)
    click.echo(err.render(), err=True)
    sys.exit(err.exit_code)


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
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
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


def write_atomic(path: str, data: bytes) -> None:
    """Write through a temporary file in the same directory, then ``os.replace``.

    On any failure ``path`` is left as it was and no temporary file remains.
    """
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


def _emit(data: str | bytes, output: str | None) -> None:
    payload = data.encode() if isinstance(data, str) else data
    if output is None or output == "-":
        stream = sys.stdout.buffer
        stream.write(payload)
        stream.flush()
    else:
        write_atomic(output, payload)


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
    return json.dumps(value, default=_json_default, ensure_ascii=False, indent=indent)


def frame_to_json(frame: Frame) -> str:
    span = frame.span
    return to_json({
        "op_name": frame.op_name, "index": list(frame.index), "outputs": dict(frame.outputs),
        "span": {"trace_id": span.trace_id, "span_id": span.span_id,
                 "parent_span_id": span.parent_span_id},
        "start_ns": frame.start_ns, "end_ns": frame.end_ns,
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


def _run_stream(graph_op: GraphOp, inputs: dict[str, Any], label: str) -> None:
    from operonx.core import Engine

    progress = Progress(sys.stderr, label)
    out = sys.stdout

    async def consume() -> None:
        async for frame in Engine(graph_op).stream(inputs=inputs):
            progress.update(frame)
            out.write(frame_to_json(frame) + "\n")
            out.flush()

    try:
        _event_loop_run(consume)
    finally:
        progress.close()


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
@click.option("--target", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="local: a uvloop module for one process; ray: runs on a Ray cluster.")
def compile_command(source: str, output: str, graph_name: str | None, opt_level: int,
                    check: bool, target: str) -> None:
    """Compile GRAPH_PY into one standalone, typed module."""
    from compiler import compile_file, is_stale

    result = compile_file(source, graph_name=graph_name, opt_level=opt_level, target=target)
    if check:
        if is_stale(output, result):
            state = "is stale" if os.path.exists(output) else "does not exist"
            raise _error(f"{output} {state}", output,
                         hint=f"regenerate it: operonx compile {source} -o {output}"
                              + ("" if target == "local" else f" --target {target}"))
        return
    write_atomic(output, result.source.encode())


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
    if fmt == "mermaid":
        _emit(to_mermaid(graph_op.ir), output)
    elif fmt == "dot":
        _emit(to_dot(graph_op.ir), output)
    else:
        _emit(render_image(to_dot(graph_op.ir), fmt), output)


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
def run(source: str, graph_name: str | None, inputs_arg: str | None, stream: bool) -> None:
    """Run GRAPH_PY through the Engine; print the result as JSON."""
    from operonx.core import Engine
    from operonx.errors import GraphError, OperonxError

    inputs = read_inputs(inputs_arg)
    name, graph_op = _load(source, graph_name)
    try:
        if stream:
            _run_stream(graph_op, inputs, f"operonx run {name}")
        else:
            click.echo(to_json(Engine(graph_op).run_sync(inputs=inputs)))
    except GraphError:
        raise
    except OperonxError as err:
        raise _run_error(err, graph_op.ir) from err


def main() -> None:
    cli.main(prog_name="operonx")

