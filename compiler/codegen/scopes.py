"""Lower each scope of the lowered IR into Python functions, as syntax trees.

Two variants of every scope are written from the same IR:

* ``fast`` (``run`` with ``on_error="raise"``, after the drop_bookkeeping pass):
  straight-line calls, no frames, spans, timestamps or skip markers; the first
  error raises;
* ``traced`` (``stream``, ``on_error="collect"``, and everything at -O0): every
  op execution goes through the run context (``rt.call`` and friends), which
  emits frames and records or raises failures; a failed stage's output becomes
  the ``_FAILED`` marker so what depends on it (in its frame) is skipped.

Both follow the plan's regions and levels exactly as the Engine does.

Code is built from :mod:`compiler.codegen.pyast` templates: names are
:class:`Ident` values from a :class:`Namespace`, user text (op names, keys,
constants) enters only as literal nodes. Where nesting would grow past what
CPython compiles (20 nested blocks, 100 indentation levels), a generator's
per-frame code is moved into a module-level function of its own.
"""

from __future__ import annotations

import ast
import collections
import copy
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

from compiler.codegen import pyast as py
from compiler.codegen.gates import Gates
from compiler.codegen.names import Namespace
from compiler.codegen.pyast import Ident
from compiler.ir.nodes import (
    ArgIR,
    ExceptionRef,
    ModuleIR,
    Presence,
    RegionIR,
    ResultIR,
    ScopeIR,
    StageIR,
)
from compiler.ir.printer import where
from operonx.ir.model import UntilExpr
from operonx.ir.until import to_ast

Mode = Literal["fast", "traced"]
Stmts = list[ast.stmt]

# Statement lists nested deeper than this (blocks, ``if``s and defs alike) in one
# function move into a function of their own. CPython allows 20 nested blocks
# and 100 indentation levels; a stage adds at most a few of either.
_NESTING_BUDGET = 12
_INDENT_BUDGET = 48
_ANY = py.expr("Any")


def _keywords(pairs: Sequence[tuple[str, ast.expr]]) -> list[ast.keyword]:
    """``name=value`` keywords; a name Python would not read back exactly goes in ``**{}``.

    The parser NFKC-normalises identifiers (``ﬁx=1`` passes ``fix``), so only
    ASCII identifiers are written as keywords.
    """
    out: list[ast.keyword] = []
    spread: list[tuple[str, ast.expr]] = []
    for name_, value in pairs:
        if name_.isascii() and name_.isidentifier() and not _is_keyword(name_):
            out.append(ast.keyword(arg=name_, value=value))
        else:
            spread.append((name_, value))
    if spread:
        out.append(ast.keyword(arg=None, value=ast.Dict(keys=[py.lit(k) for k, _ in spread],
                                                        values=[v for _, v in spread])))
    return out


def _typed(template: str, type_text: str | None, **subs: py.Sub) -> Stmts:
    """``template`` (one assignment), annotated with ``type_text`` when it is known (§7.1)."""
    stmts = py.stmts(template, **subs)
    if type_text is None:
        return stmts
    (assign,) = stmts
    assert isinstance(assign, ast.Assign) and len(assign.targets) == 1
    target = assign.targets[0]
    assert isinstance(target, ast.Name)
    return [ast.AnnAssign(target=target, annotation=_annotation(type_text), value=assign.value,
                          simple=1)]


def _annotation(type_text: str) -> ast.expr:
    """A type the type check spelt for generated code, as an annotation expression."""
    return ast.parse(type_text, mode="eval").body


def _rethrow_cancellation(exc: Ident) -> Stmts:
    """Around an await: a CancelledError that cancels the run is not the op's failure."""
    return py.stmts("if not _is_op_failure(EXC):\n    raise", EXC=exc)


def _is_keyword(text: str) -> bool:
    import keyword

    return keyword.iskeyword(text)


@dataclass(frozen=True)
class Locals:
    """The generated names every scope function has: run context, index, span, inputs."""

    ns: Namespace
    rt: Ident
    idx: Ident
    inp: Ident
    exc: Ident
    span: Ident | None  # traced mode only

    @staticmethod
    def new(ns: Namespace, mode: Mode) -> Locals:
        return Locals(ns, ns.fresh("rt"), ns.fresh("idx"), ns.fresh("inp"), ns.fresh("exc"),
                      ns.fresh("span") if mode == "traced" else None)


@dataclass(frozen=True)
class Ctx:
    """Where code is being written: the current frame's index and span, and the nesting."""

    idx: Ident
    # Each stream level's index: a local, or (a batched sync loop on the run path) an
    # expression computing it from the loop's batch, read only where an error is raised.
    parts: tuple[Ident | ast.expr, ...] = ()
    span: Ident | None = None
    depth: int = 1  # statement lists enclosing this one in the current function
    indent: int = 1  # ... and in the module (nested defs keep indenting)
    base: int = 0  # how many of ``parts`` belong to enclosing scopes (an inlined loop body)

    def index(self) -> ast.expr:
        if not self.parts:
            return py.name(self.idx)
        return ast.Tuple(elts=[ast.Starred(value=py.name(self.idx), ctx=ast.Load()),
                               *(copy.deepcopy(p) if isinstance(p, ast.expr) else py.name(p)
                                 for p in self.parts)], ctx=ast.Load())

    def index_at(self, depth: int) -> ast.expr:
        """The index of the instance ``depth`` stream levels deep in this scope."""
        return replace(self, parts=self.parts[:self.base + depth]).index()

    def inner_scope(self) -> Ctx:
        """The same place, as the start of a scope inlined here (its streams nest below)."""
        return replace(self, base=len(self.parts))

    def span_expr(self) -> ast.expr:
        assert self.span is not None
        return py.name(self.span)

    def deeper(self, counter: Ident | ast.expr, span: Ident | None, blocks: int) -> Ctx:
        return Ctx(self.idx, (*self.parts, counter), span, self.depth + blocks,
                   self.indent + blocks, self.base)

    def nest(self, blocks: int) -> Ctx:
        return replace(self, depth=self.depth + blocks, indent=self.indent + blocks)

    def in_def(self, blocks: int = 0) -> Ctx:
        """Inside a nested ``def`` here: a fresh block stack, one more indentation level."""
        return replace(self, depth=1 + blocks, indent=self.indent + 1 + blocks)

    @property
    def too_deep(self) -> bool:
        return self.depth > _NESTING_BUDGET or self.indent > _INDENT_BUDGET


@dataclass
class ModuleNames:
    """Module-level names every scope writer shares."""

    ns: Namespace
    scope_fns: dict[tuple[str, str], Ident] = field(default_factory=dict)
    loop_fns: dict[tuple[str, str], Ident] = field(default_factory=dict)
    semaphores: dict[str, tuple[Ident, int]] = field(default_factory=dict)  # qualname -> attr
    attrs: Namespace = field(default_factory=Namespace)  # _Limits attribute names
    policies: dict[str, Ident] = field(default_factory=dict)  # qualname -> _Policy object
    policy_objects: Stmts = field(default_factory=list)  # their module-level definitions
    imports: dict[str, Ident] = field(default_factory=dict)  # module -> alias (retry's on=)

    def scope_fn(self, scope: ScopeIR, mode: Mode) -> Ident:
        key = (scope.symbol, mode)
        if key not in self.scope_fns:
            self.scope_fns[key] = self.ns.fresh(f"_{mode}_{scope.symbol}")
        return self.scope_fns[key]

    def loop_fn(self, stage: StageIR, scope: ScopeIR, mode: Mode) -> Ident:
        key = (f"{scope.symbol}__{stage.name}", mode)
        if key not in self.loop_fns:
            self.loop_fns[key] = self.ns.fresh(f"_{mode}_loop_{scope.symbol}__{stage.name}")
        return self.loop_fns[key]

    def policy(self, stage: StageIR) -> Ident:
        """The module-level ``_Policy`` of a stage (its cache lives as long as the module)."""
        if stage.qualname not in self.policies:
            assert stage.policy is not None
            p = stage.policy
            retry: ast.expr = py.lit(None)
            if p.retry is not None:
                on = ast.Tuple(elts=[self.exception(e) for e in p.retry_on], ctx=ast.Load())
                retry = py.expr("_Retry(attempts=N, delay=DELAY, backoff=BACKOFF, "
                                "max_delay=MAX, on=ON)", N=py.lit(p.retry.attempts),
                                DELAY=py.lit(float(p.retry.delay)),
                                BACKOFF=py.lit(float(p.retry.backoff)),
                                MAX=py.lit(None if p.retry.max_delay is None
                                           else float(p.retry.max_delay)), ON=on)
            var = self.ns.fresh(f"_policy_{stage.qualname.replace('.', '__')}")
            self.policy_objects += [
                py.comment(f"{where(stage.loc)}: {stage.qualname}"),
                *py.stmts("P = _Policy(timeout=TIMEOUT, retry=RETRY, cache=CACHE)", P=var,
                          TIMEOUT=py.lit(None if p.timeout is None else float(p.timeout)),
                          RETRY=retry, CACHE=py.lit(p.cache))]
            self.policies[stage.qualname] = var
        return self.policies[stage.qualname]

    def invoke(self, stage: StageIR) -> Ident:
        """How the stage's policy runs one attempt (a module-level function)."""
        key = f"invoke {stage.qualname}"
        if key not in self.policies:
            assert stage.function is not None
            how = {"async": "_awaiting", "cpu": "_in_process"}.get(stage.flavor, "_at_once")
            var = self.ns.fresh(f"_invoke_{stage.qualname.replace('.', '__')}")
            self.policy_objects += py.stmts("V = HOW(FN)", V=var, HOW=Ident(how),
                                            FN=Ident(stage.function))
            self.policies[key] = var
        return self.policies[key]

    def exception(self, ref: ExceptionRef) -> ast.expr:
        """An exception class as generated code names it (importing its module if needed)."""
        first, *rest = ref.name.split(".")
        if ref.module:
            if ref.module not in self.imports:
                self.imports[ref.module] = self.ns.fresh(ref.module.replace(".", "_"))
            value: ast.expr = py.name(self.imports[ref.module])
            rest = [first, *rest]
        else:
            value = py.name(Ident(first))
        for part in rest:
            value = ast.Attribute(value=value, attr=str(Ident(part)), ctx=ast.Load())
        return value

    def semaphore(self, stage: StageIR) -> Ident:
        if stage.qualname not in self.semaphores:
            # ``sem_`` keeps them clear of the run context's own attributes
            attr = self.attrs.fresh(f"sem_{stage.qualname.replace('.', '__')}")
            self.semaphores[stage.qualname] = (attr, stage.max_concurrent)
        return self.semaphores[stage.qualname][0]


def is_sync_fn(scope: ScopeIR, mode: Mode) -> bool:
    """A plain ``def``: the run path of a scope that never awaits and holds no drive loop
    (a generator or loop could run long, so it pauses for the event loop: a coroutine)."""
    return mode == "fast" and scope.inline and scope.bounded


class ScopeWriter:
    """Writes ``_fast_<scope>`` or ``_traced_<scope>``, plus its loop stage functions."""

    def __init__(self, module: ModuleIR, scope: ScopeIR, mode: Mode, names: ModuleNames,
                 fn: Locals | None = None, inputs: dict[str, Ident] | None = None) -> None:
        self.module = module
        self.scope = scope
        self.mode = mode
        self.names = names
        self.fn = fn if fn is not None else Locals.new(names.ns.child(), mode)
        ns = self.fn.ns
        self.extra: Stmts = []  # further module-level functions (loop stages, nested scopes)
        self.out: dict[str, Ident] = {}
        self.done: dict[str, Ident] = {}
        for st in scope.stages:
            self.out[st.name] = ns.fresh(f"{st.name}_out")
            if st.kind == "gen":
                self.done[st.name] = ns.fresh(f"{st.name}_done")
        self.inp = inputs if inputs is not None else {k: ns.fresh(k) for k in scope.reads}
        self.bufs = {(c.node, c.key, c.ordered): ns.fresh(
            f"{c.node}_{c.key}_{'ordered' if c.ordered else 'collected'}")
            for c in scope.collects}
        self.res = {r.key: ns.fresh(f"{r.key}_all") for r in scope.results if r.depth > 0}
        self.used = self._used_stages()
        self.waited = {d for st in scope.stages for d in st.deps}
        self.forced: set[str] = set()  # stages run as level tasks: their marker is returned
        self.unpacked: dict[tuple[str, str], Ident] = {}  # (stage, key) -> local holding it
        # Outputs read just once: a proven one is read where it is used (no local to store
        # and load: a few ns a frame, a tenth of a small op's cost).
        self.read_once = _read_once(scope)
        self.collects_of: dict[str, list[tuple[str, bool, tuple[str, ...]]]] = {}
        for c in scope.collects:
            self.collects_of.setdefault(c.node, []).append((c.key, c.ordered, c.owner))
        self.streamed_of: dict[str, list[tuple[str, str]]] = {}  # stage -> (result, out key)
        for r in scope.results:
            if r.depth > 0:
                self.streamed_of.setdefault(r.node, []).append((r.key, r.out_key))
        self.gates = Gates(self)
        self.checked = _checked_stages(scope)  # stages whose marker a branch check reads
        self.unbounded: set[str] = set()  # awaited ops whose pool of workers bounds them

    # ------------------------------------------------------------------ helpers

    def _used_stages(self) -> set[str]:
        used = {r.node for r in self.scope.results} | {c.node for c in self.scope.collects}
        for st in self.scope.stages:
            used.update(st.deps)
            used.update(a.node for a in st.args if a.kind == "value")
        return used

    def _in_order_direct(self, inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
        """True when frames between ``outer`` and ``inner`` complete in yield order."""
        for n in range(len(outer) + 1, len(inner) + 1):
            if self.scope.region(inner[:n]).strategy != "inline":
                return False
        return True

    def _arg(self, a: ArgIR) -> ast.expr:
        if a.kind == "coalesce":  # the first option that is there (the gate made sure one is)
            value = self._arg(a.options[-1])
            for option in reversed(a.options[:-1]):
                if option.presence is None:
                    value = self._arg(option)  # always there: later options are never read
                else:
                    value = ast.IfExp(test=self.gates.present(option.presence),
                                      body=self._arg(option), orelse=value)
            return value
        if a.kind == "const":
            return py.lit(a.value)
        if a.kind == "input":
            return py.name(self.inp[a.key])
        if a.kind == "value":
            return self._val(a.node, a.key)
        buf = self.bufs[(a.node, a.key, a.ordered)]
        out_ctx = self._out_ctx(a.node)
        if a.ordered and not self._in_order_direct(out_ctx, out_ctx[:-1]):
            return py.expr("_in_order(B)", B=buf)
        return py.expr("list(B)", B=buf)

    def value_of(self, node: str, key: str) -> ast.expr:
        return self._val(node, key)

    def marker_of(self, name: str) -> Ident:
        """The variable that holds a stage's marker: a generator's ``done``, else its output."""
        return self._marker(name)

    def _val(self, node: str, key: str) -> ast.expr:
        """How code reads output ``key`` of ``node``: its unpacked local, or a subscript."""
        local = self.unpacked.get((node, key))
        if local is not None:
            return py.name(local)
        return py.expr("V[K]", V=self.out[node], K=py.lit(key))

    def _call_args(self, st: StageIR) -> tuple[list[ast.expr], list[ast.keyword]]:
        """Arguments of a direct call: leading parameters by position, the rest by keyword."""
        by_name = {a.name: a for a in st.args}
        args = [self._arg(by_name[n]) for n in st.positional]
        kws = _keywords([(a.name, self._arg(a)) for a in st.args if a.name not in st.positional])
        return args, kws

    def _kwargs(self, st: StageIR) -> list[ast.keyword]:
        return _keywords([(a.name, self._arg(a)) for a in st.args])

    def _inputs_dict(self, st: StageIR) -> ast.expr:
        return ast.Dict(keys=[py.lit(a.name) for a in st.args],
                        values=[self._arg(a) for a in st.args])

    def _check(self, out: Stmts, st: StageIR, var: Ident, idx: ast.expr,
               unpack: bool = False) -> None:
        """Fast path: raise as the Engine does unless ``var`` is a dict with the needed keys.

        With ``unpack``, the needed keys are read into locals right here (a ``KeyError``
        from an exact ``dict`` means the key is missing); readers then use the locals.
        """
        keys = tuple(st.needed)
        reads: Stmts = []
        if unpack:
            for key in keys:
                if st.outputs_proven and (st.name, key) in self.read_once:
                    continue
                local = self.fn.ns.fresh(f"{st.name}_{key}")
                reads += _typed("L = V[K]", st.output_type(key), L=local, V=var,
                                K=py.lit(key))
                self.unpacked[(st.name, key)] = local
        if st.outputs_proven:
            # The op's every return/yield is a dict literal with these keys: nothing to check.
            out += reads
            return
        check: dict[str, py.Sub] = dict(V=var, NAME=py.lit(st.qualname), IDX=idx,
                                        KEYS=py.lit(keys))
        if reads:
            out += py.stmts("""
                if V.__class__ is not dict:
                    V = _outputs(NAME, IDX, V, KEYS)
                try:
                    READS
                except KeyError:
                    _missing(NAME, IDX, V, KEYS)
            """, READS=reads, **check)
            return
        # With nothing read from it, None (no outputs) is as good as a dict: test it first,
        # so a sink that returns None costs no call.
        first = py.expr("V is not None and V.__class__ is not dict", V=var) if not keys \
            else py.expr("V.__class__ is not dict", V=var)
        tests = [first, *(py.expr("K not in V", K=py.lit(k), V=var) for k in keys)]
        cond = tests[0] if len(tests) == 1 else ast.BoolOp(op=ast.Or(), values=tests)
        out += py.stmts("""
            if COND:
                V = _outputs(NAME, IDX, V, KEYS)
        """, COND=cond, **check)

    def _publish(self, out: Stmts, st: StageIR, ctx: Ctx,
                 optional: frozenset[str] = frozenset()) -> None:
        """Append this stage's outputs to collect buffers and streamed results (a key in
        ``optional`` only when the outputs have it)."""
        out_ctx = (*st.context, st.name) if st.kind == "gen" else st.context

        def append(target: Ident, key: str, item: ast.expr) -> None:
            code = py.stmts("B.append(X)", B=target, X=item)
            if key in optional:
                code = py.stmts("if K in V:\n    CODE", K=py.lit(key), V=self.out[st.name],
                                CODE=code)
            out.extend(code)

        for key, ordered, owner in self.collects_of.get(st.name, ()):
            item: ast.expr
            if ordered and not self._in_order_direct(out_ctx, owner):
                item = ast.Tuple(elts=[ctx.index(), self._val(st.name, key)], ctx=ast.Load())
            else:
                item = self._val(st.name, key)
            append(self.bufs[(st.name, key, ordered)], key, item)
        for result_key, out_key in self.streamed_of.get(st.name, ()):
            value = self._val(st.name, out_key)
            if not self._in_order_direct(out_ctx, ()):
                value = ast.Tuple(elts=[ctx.index(), value], ctx=ast.Load())
            append(self.res[result_key], out_key, value)

    def _needs_var(self, st: StageIR) -> bool:
        if st.kind == "gen":  # its marker: what orders after the whole stream, or a branch check
            return st.name in self.waited or st.name in self.forced or st.name in self.checked
        return (st.name in self.used or st.name in self.forced or self._publishes(st)
                or st.name in self.checked)

    def _publishes(self, st: StageIR) -> bool:
        return st.name in self.collects_of or st.name in self.streamed_of

    def _publish_after(self, out: Stmts, st: StageIR, ctx: Ctx) -> None:
        """Publish a sub-graph's or loop's outputs (traced: unless it failed). A key a branch
        left out inside the sub-graph feeds nothing."""
        if not self._publishes(st):
            return
        body: Stmts = []
        self._publish(body, st, ctx, optional=_optional_keys(st))
        if self.mode == "traced":
            out += py.stmts("if V is not _FAILED:\n    BODY", V=self.out[st.name], BODY=body)
        else:
            out += body

    def _marker(self, name: str) -> Ident:
        return self.done.get(name, self.out[name])

    def _guard(self, st: StageIR) -> ast.expr | None:
        if self.mode == "fast" or not st.deps:
            return None
        tests = [py.expr("M is not _FAILED", M=self._marker(d)) for d in st.deps]
        return tests[0] if len(tests) == 1 else ast.BoolOp(op=ast.And(), values=tests)

    def _awaits(self, st: StageIR) -> bool:
        """Whether this stage's code contains an ``await`` in this mode."""
        if st.flavor in ("async", "cpu", "asyncgen") or (st.policy and st.policy.awaited):
            return True
        if st.kind == "gen":
            return self.scope.region((*st.context, st.name)).strategy != "inline"
        if st.kind in ("graph", "loop"):
            assert st.body is not None
            return not is_sync_fn(st.body, self.mode)
        return False

    def _rt(self) -> ast.expr:
        return py.name(self.fn.rt)

    # ------------------------------------------------------------------ scope

    def write(self) -> Stmts:
        """The scope function (a comment line and a ``def``), then its helper functions."""
        s = self.scope
        fn = self.fn
        name = self.names.scope_fn(s, self.mode)
        params: list[tuple[Ident, ast.expr | None]] = [
            (fn.rt, py.expr(self._rt_type)), (fn.idx, py.expr("tuple[int, ...]"))]
        if fn.span is not None:
            params.append((fn.span, py.expr("str")))
        params.append((fn.inp, py.expr("Mapping[str, Any]")))
        returns = "Result" if self.mode == "fast" and s is self.module.top else "dict[str, Any]"
        body: Stmts = []
        for key, var in self.inp.items():
            body += _typed("V = INP[K]", dict(s.input_types).get(key), V=var, INP=fn.inp,
                           K=py.lit(key))
        for r in s.results:
            if r.depth > 0:
                body += self._result_list(r)
        self.region(body, s.region(()), Ctx(fn.idx, span=fn.span))
        body += self._returns()
        return [py.comment(f"{where(s.loc)}: {s.kind} {s.name!r}"),
                py.function(name, params, py.expr(returns), body,
                            is_async=not is_sync_fn(s, self.mode)),
                *self.extra]

    @property
    def _rt_type(self) -> str:
        return "_Limits" if self.mode == "fast" else "_Run"

    def inline_into(self, out: Stmts, ctx: Ctx
                    ) -> dict[str, tuple[ast.expr, ast.expr | None]]:
        """Write this (inline) scope's code into the caller's; return each result's
        expression, and the test of whether it is there (None: always)."""
        for r in self.scope.results:
            if r.depth > 0:
                out += self._result_list(r)
        self.region(out, self.scope.region(()), ctx.inner_scope())
        return {r.key: (self._result_value(r.key), self._result_there(r))
                for r in self.scope.results}

    def _result_there(self, r: ResultIR) -> ast.expr | None:
        return None if r.presence is None else self.gates.present(r.presence)

    @cached_property
    def _results_by_key(self) -> dict[str, ResultIR]:
        return {r.key: r for r in self.scope.results}  # a scan per key is quadratic

    def _result_value(self, key: str) -> ast.expr:
        r = self._results_by_key[key]
        if r.depth == 0:
            return self._val(r.node, r.out_key)
        if self._in_order_direct(self._out_ctx(r.node), ()):
            return py.name(self.res[r.key])
        return py.expr("_in_order(B)", B=self.res[r.key])

    def _returns(self) -> Stmts:
        s = self.scope
        top = s is self.module.top
        result = self.fn.ns.fresh("result")
        if self.mode == "fast":
            always = [r for r in s.results if r.presence is None]
            out = py.stmts("R: T = V", R=result, T=py.expr("Result" if top else "dict[str, Any]"),
                           V=ast.Dict(keys=[py.lit(r.key) for r in always],
                                      values=[self._result_value(r.key) for r in always]))
            for r in s.results:
                there = self._result_there(r)
                if there is not None:  # a key a branch may leave out
                    out += py.stmts("if THERE:\n    R[K] = X", THERE=there, R=result,
                                    K=py.lit(r.key), X=self._result_value(r.key))
            if len(out) == 1:  # nothing optional: return the dict as it is built
                return [ast.Return(value=out[0].value)]  # type: ignore[attr-defined]
            return out + py.stmts("return R", R=result)
        out = py.stmts("R: dict[str, Any] = {}", R=result)
        for r in s.results:
            if r.depth == 0:
                # Skipped or failed (markers hold no key), or left out of a sub-graph's outputs.
                set_it = py.stmts("R[K] = V[OK]", R=result, K=py.lit(r.key), V=self.out[r.node],
                                  OK=py.lit(r.out_key))
                if not top:  # the caller tells a failed producer from a skipped one
                    set_it = py.stmts("if OK in V:\n    SET\nelif V is _FAILED:\n"
                                      "    R[K] = _FAILED", OK=py.lit(r.out_key),
                                      V=self.out[r.node], SET=set_it, R=result, K=py.lit(r.key))
                else:
                    set_it = py.stmts("if OK in V:\n    SET", OK=py.lit(r.out_key),
                                      V=self.out[r.node], SET=set_it)
                out += set_it
            else:
                set_it = py.stmts("R[K] = X", R=result, K=py.lit(r.key),
                                  X=self._result_value(r.key))
                there = self._result_there(r)
                out += set_it if there is None else py.stmts("if THERE:\n    SET", THERE=there,
                                                             SET=set_it)
        out += py.stmts("return R", R=result)
        return out

    def _result_list(self, r: ResultIR) -> Stmts:
        """The list a streamed result collects into: values, or (index, value) pairs when
        frames finish out of yield order."""
        sorted_later = not self._in_order_direct(self._out_ctx(r.node), ())
        item = self._item_type(r.node, r.out_key, sorted_later)
        return py.stmts("B: T = []", B=self.res[r.key], T=_annotation(f"list[{item}]"))

    def _buffer(self, node: str, key: str, ordered: bool, owner: tuple[str, ...]) -> Stmts:
        """A ``.collect()`` buffer (typed like ``_result_list``)."""
        sorted_later = ordered and not self._in_order_direct(self._out_ctx(node), owner)
        item = self._item_type(node, key, sorted_later)
        return py.stmts("B: T = []", B=self.bufs[(node, key, ordered)],
                        T=_annotation(f"list[{item}]"))

    def _item_type(self, node: str, key: str, with_index: bool) -> str:
        value = self.scope.stage(node).output_type(key) or "Any"
        return f"tuple[tuple[int, ...], {value}]" if with_index else value

    def _out_ctx(self, name: str) -> tuple[str, ...]:
        st = self.scope.stage(name)
        return (*st.context, st.name) if st.kind == "gen" else st.context

    # ------------------------------------------------------------------ regions

    def region(self, out: Stmts, region: RegionIR, ctx: Ctx) -> None:
        for c in self.scope.collects:
            if c.owner == region.context:
                out += self._buffer(c.node, c.key, c.ordered, c.owner)
        in_tasks = {n for level in region.levels
                    if sum(self._awaits(self.scope.stage(m)) for m in level) > 1
                    for n in level if self._awaits(self.scope.stage(n))}
        out += self.gates.region_init(region.context, in_tasks)
        chain_of = {chain[0]: chain for chain in region.chains}
        in_chain = {n for chain in region.chains for n in chain[1:]}
        for level in region.levels:
            stages = [self.scope.stage(n) for n in level]
            for st in stages:
                if self._awaits(st) or st.name in in_chain:
                    continue
                if st.name in chain_of:
                    chain = [self.scope.stage(n) for n in chain_of[st.name]]
                    text = f"fused: {' >> '.join(c.name for c in chain)}"
                    out += [py.comment(part) for part in textwrap.wrap(
                        text, 96, subsequent_indent="    ", break_on_hyphens=False)]
                    for member in chain:
                        self.stage(out, member, ctx)
                    out.append(py.comment("end fused"))
                else:
                    self.stage(out, st, ctx)
            waits = [st for st in stages if self._awaits(st)]
            if len(waits) == 1:
                self.stage(out, waits[0], ctx)
            elif waits:
                self._level_tasks(out, waits, ctx)

    def _level_tasks(self, out: Stmts, waits: list[StageIR], ctx: Ctx) -> None:
        """Several awaiting stages of one level: one task each, joined by a TaskGroup."""
        ns = self.fn.ns
        handles: list[tuple[StageIR, Ident]] = []
        spawns: Stmts = []
        group = ns.fresh("level")
        for st in waits:
            self.forced.add(st.name)
            task_fn = ns.fresh(f"{st.name}_task")
            body: Stmts = []
            self.stage(body, st, ctx.in_def())
            if self.mode == "fast" and st.kind == "gen":
                body.append(ast.Return(value=ast.Dict(keys=[], values=[])))
            else:
                body += py.stmts("return M", M=self._marker(st.name))
            returns = "Any" if st.gate is not None and st.kind == "call" else "dict[str, Any]"
            out.append(py.function(task_fn, [], py.expr(returns), body, is_async=True))
            handle = ns.fresh(f"{st.name}_handle")
            handles.append((st, handle))
            spawns += py.stmts("H = G.create_task(F())", H=handle, G=group, F=task_fn)
        out += py.stmts("""
            async with asyncio.TaskGroup() as G:
                SPAWNS
        """, G=group, SPAWNS=spawns)
        for st, handle in handles:
            if self.mode == "fast" and st.kind == "gen":
                continue
            if st.name in self.used or self._publishes(st):
                out += py.stmts("M = H.result()", M=self._marker(st.name), H=handle)

    # ------------------------------------------------------------------ stages

    def stage(self, out: Stmts, st: StageIR, ctx: Ctx) -> None:
        """One stage, behind what may keep it from running: a failure of what it depends
        on (traced: its marker stays ``_FAILED``) and a branch's gate (``_SKIPPED``)."""
        guard = self._guard(st)
        marker = self._marker(st.name)
        if self.mode == "traced":
            if (st.kind == "gen" and self._needs_var(st)) or (
                    st.kind != "gen" and (guard is not None or st.gate is not None)):
                out += py.stmts("M = _FAILED", M=marker)
        elif st.gate is not None and st.kind == "call":
            # The marker, or whatever the op returns (None included, until the outputs check
            # turns it into an error): ``object``, which mypy narrows to the op's return type
            # where the op runs; the readers' typed locals carry the precise types.
            out += py.stmts("M: object = _SKIPPED", M=marker)
        elif st.gate is not None and (st.kind != "gen" or self._needs_var(st)):
            out += py.stmts("M = _SKIPPED", M=marker)
        inner = ctx.nest((1 if guard is not None else 0) + (2 if st.gate is not None else 0))
        body: Stmts = []
        self._stage_body(body, st, inner)
        if st.gate is not None:
            body = self.gates.guarded(st, st.gate, ctx, body, surely=guard is None)
        if guard is None:
            out += body
        else:
            out += py.stmts("if GUARD:\n    BODY", GUARD=guard, BODY=body)

    def _stage_body(self, out: Stmts, st: StageIR, ctx: Ctx) -> None:
        out.append(py.comment(f"{where(st.loc)}: {st.name}"))
        if st.kind == "call":
            if self.mode == "fast":
                self._call_fast(out, st, ctx)
            else:
                self._call_traced(out, st, ctx)
        elif st.kind == "gen":
            self._generator(out, st, ctx)
        elif st.kind == "graph":
            self._subgraph(out, st, ctx)
        else:
            self._loop(out, st, ctx)

    def _scope_call(self, fn: Ident, body: ScopeIR, ctx: Ctx, inputs: ast.expr) -> ast.expr:
        """``[await] fn(rt, index, [span,] inputs)``: a call of another scope function."""
        args = [self._rt(), ctx.index()]
        if self.mode == "traced":
            args.append(ctx.span_expr())
        args.append(inputs)
        call: ast.expr = ast.Call(func=py.name(fn), args=args, keywords=[])
        if not is_sync_fn(body, self.mode):
            call = ast.Await(value=call)
        return call

    def _subgraph(self, out: Stmts, st: StageIR, ctx: Ctx) -> None:
        assert st.body is not None
        self._nested(st.body)
        call = self._scope_call(self.names.scope_fn(st.body, self.mode), st.body, ctx,
                                self._inputs_dict(st))
        var = self.out[st.name]
        if not self._needs_var(st):
            out.append(ast.Expr(value=call))
        elif self.mode == "traced":
            out += py.stmts("V = _complete(CALL, KEYS, OPTIONAL)", V=var, CALL=call,
                            KEYS=py.lit(tuple(st.needed)),
                            OPTIONAL=py.lit(tuple(sorted(_optional_keys(st)))))
        else:
            out += py.stmts("V = CALL", V=var, CALL=call)
        self._publish_after(out, st, ctx)

    def _nested(self, body: ScopeIR) -> None:
        key = (body.symbol, self.mode)
        if key in self.names.scope_fns:
            return
        self.names.scope_fn(body, self.mode)
        self.extra += ScopeWriter(self.module, body, self.mode, self.names).write()

    def _call_fast(self, out: Stmts, st: StageIR, ctx: Ctx) -> None:
        var = self.out[st.name]
        assert st.function is not None
        fn = Ident(st.function)
        name, idx = py.lit(st.qualname), ctx.index()
        if st.policy is not None:
            self._policy_call_fast(out, st, ctx)
            return
        if st.flavor == "cpu":  # in a worker process (SPEC §10)
            call = py.expr("await INVOKE(KW)", INVOKE=self.names.invoke(st),
                           KW=self._inputs_dict(st))
        else:
            args, kws = self._call_args(st)
            call = py.expr("FN(*ARGS, **KW)", FN=fn, ARGS=args, KW=kws)
            if st.flavor == "async":
                call = ast.Await(value=call)
        target = [] if st.returns_none else py.stmts("V = CALL", V=var, CALL=call)
        attempt = py.stmts("""
            try:
                DO
            except _OP_FAILURES as EXC:
                RETHROW
                raise _op_error(NAME, IDX, EXC) from EXC
        """, DO=target or [ast.Expr(value=call)], EXC=self.fn.exc, NAME=name, IDX=idx,
            RETHROW=_rethrow_cancellation(self.fn.exc) if st.flavor in ("async", "cpu") else [])
        if st.flavor in ("async", "cpu") and st.name not in self.unbounded:
            out += py.stmts("async with RT.SEM:\n    ATTEMPT", RT=self.fn.rt,
                            SEM=self.names.semaphore(st), ATTEMPT=attempt)
        else:
            out += attempt
        if st.returns_none and st.needed:  # annotated -> None, yet read: always an error
            out += py.stmts("V = _outputs(NAME, IDX, None, KEYS)", V=var, NAME=name, IDX=idx,
                            KEYS=py.lit(tuple(st.needed)))
        elif st.returns_none:  # a sink: nothing to check, nothing to keep
            if self._needs_var(st):
                out += py.stmts("V = {}", V=var)
        else:
            self._check(out, st, var, idx, unpack=st.name not in self.forced)
        self._publish(out, st, ctx)

    def _policy_call_fast(self, out: Stmts, st: StageIR, ctx: Ctx) -> None:
        """An op with a timeout, retries or a cache: through its module-level policy."""
        assert st.function is not None and st.policy is not None
        var, name, idx = self.out[st.name], py.lit(st.qualname), ctx.index()
        kwargs = self._inputs_dict(st)
        policy = self.names.policy(st)
        if st.policy.awaited:
            call = py.expr("(await P.call_async(INVOKE, KW))[0]", P=policy,
                           INVOKE=self.names.invoke(st), KW=kwargs)
        else:
            call = py.expr("P.call_sync(FN, KW)[0]", P=policy, FN=Ident(st.function),
                           KW=kwargs)
        attempt = py.stmts("""
            try:
                V = CALL
            except _Exhausted as EXC:
                raise _op_error(NAME, IDX, EXC.error, EXC.attempts) from EXC.error
        """, V=var, CALL=call, EXC=self.fn.exc, NAME=name, IDX=idx)
        if st.policy.awaited and st.name not in self.unbounded:
            attempt = py.stmts("async with RT.SEM:\n    ATTEMPT", RT=self.fn.rt,
                               SEM=self.names.semaphore(st), ATTEMPT=attempt)
        out += attempt
        self._check(out, st, var, idx, unpack=st.name not in self.forced)
        self._publish(out, st, ctx)

    def _call_traced(self, out: Stmts, st: StageIR, ctx: Ctx) -> None:
        var = self.out[st.name]
        assert st.function is not None
        head = [py.lit(st.qualname), ctx.index(), ctx.span_expr(), py.lit(tuple(st.needed))]
        if st.policy is not None and st.policy.awaited:
            call = py.expr("await RT.apcall(*HEAD, RT.SEM, P, INVOKE, **KW)", RT=self.fn.rt,
                           HEAD=head, SEM=self.names.semaphore(st), P=self.names.policy(st),
                           INVOKE=self.names.invoke(st), KW=self._kwargs(st))
        elif st.policy is not None:
            call = py.expr("RT.pcall(*HEAD, P, FN, **KW)", RT=self.fn.rt, HEAD=head,
                           P=self.names.policy(st), FN=Ident(st.function), KW=self._kwargs(st))
        elif st.flavor == "async":
            call = py.expr("await RT.acall(*HEAD, RT.SEM, FN, **KW)", RT=self.fn.rt, HEAD=head,
                           SEM=self.names.semaphore(st), FN=Ident(st.function),
                           KW=self._kwargs(st))
        elif st.flavor == "cpu":
            call = py.expr("await RT.cpucall(*HEAD, RT.SEM, INVOKE, **KW)", RT=self.fn.rt,
                           HEAD=head, SEM=self.names.semaphore(st),
                           INVOKE=self.names.invoke(st), KW=self._kwargs(st))
        else:
            call = py.expr("RT.call(*HEAD, FN, **KW)", RT=self.fn.rt, HEAD=head,
                           FN=Ident(st.function), KW=self._kwargs(st))
        if not self._needs_var(st):
            out.append(ast.Expr(value=call))
            return
        out += py.stmts("V = CALL", V=var, CALL=call)
        if self._publishes(st):
            body: Stmts = []
            self._publish(body, st, ctx)
            out += py.stmts("if V is not _FAILED:\n    BODY", V=var, BODY=body)

    # ------------------------------------------------------------------ generators

    def _generator(self, out: Stmts, st: StageIR, ctx: Ctx) -> None:
        """A generator's loop: per yield, check it, publish it, and run its region's frame.

        The loop body is wrapped so a failure can be told apart: while ``in_frame``
        is set the exception came from the frame's own code (already an ``OpError``,
        a cancellation, ...) and passes through; otherwise the generator raised it.
        Either way the generator is closed, and an error from its own clean-up
        becomes a note on the failure instead of hiding it.
        """
        region = self.scope.region((*st.context, st.name))
        if self._pool_ok(st, region):
            self._generator_pool(out, st, ctx, region)
            return
        ns = self.fn.ns
        rt, exc = self.fn.rt, self.fn.exc
        traced = self.mode == "traced"
        is_async = st.flavor == "asyncgen"
        it = ns.fresh(f"{st.name}_iter")
        in_frame = ns.fresh(f"{st.name}_in_frame")
        var = self.out[st.name]
        tasks = region.strategy != "inline" and bool(region.levels)
        span = ns.fresh(f"{st.name}_span") if traced else None
        name, keys = py.lit(st.qualname), py.lit(tuple(st.needed))
        # Statement lists around a frame's code: [semaphore try,] [traced: else,]
        # try, [async with,] for, try, [traced: if not skipped].
        around = 3 + int(is_async) + (2 if traced else 1) + (1 if tasks else 0)
        # The run path's sync generators run their frames inline (a pool takes them when
        # they await: _generator_pool) in paced batches that keep no counter (_Batch).
        batched = _Batch.of(ns, st.name) if not traced and not is_async else None
        counter = ns.fresh(f"i_{st.name}")
        child = ctx.deeper(batched.index() if batched else counter, span, around)
        frame = Dispatch(self, region, child, tasks, counter, var, span)

        body: Stmts = []
        if traced:
            item, t0 = ns.fresh(f"{st.name}_item"), ns.fresh(f"{st.name}_t0")
            body += py.stmts("V = RT.check(NAME, IDX, ITEM, KEYS)", V=var, RT=rt, NAME=name,
                             IDX=child.index(), ITEM=item, KEYS=keys)
            if self._needs_var(st):  # a malformed yield fails the generator node
                body += py.stmts("if V is _FAILED:\n    M = _FAILED", V=var,
                                 M=self.done[st.name])
            emit = py.expr("RT.frame(NAME, IDX, V, PARENT, T0)", RT=rt, NAME=name,
                           IDX=child.index(), V=var, PARENT=ctx.span_expr(), T0=t0)
            ok: Stmts = [ast.Expr(value=emit)]
            if region.levels:  # the frame's span is the parent of what runs in it
                assert span is not None
                ok = py.stmts("S = EMIT", S=span, EMIT=emit)
            self._publish(ok, st, child)
            frame.write(ok)
            body += py.stmts("if V is not _FAILED:\n    OK", V=var, OK=ok)
            body += py.stmts("C += 1\nawait RT.drain()\nT0 = time.time_ns()", C=counter,
                             RT=rt, T0=t0)
            before = py.stmts("T0 = time.time_ns()", T0=t0)
        else:
            item = var
            self._check(body, st, var, child.index(), unpack=not tasks)
            self._publish(body, st, child)
            frame.write(body)
            if is_async:  # a sync generator's loop counts in its batches (_Batch)
                body += py.stmts("C += 1", C=counter)
            before = []
        step_timeout = st.policy.timeout if st.policy is not None else None
        if is_async and step_timeout is not None:  # each step has its own deadline (SPEC §9)
            loop = py.stmts("""
                while True:
                    try:
                        ITEM = await _timed(IT.__anext__(), TIMEOUT)
                    except StopAsyncIteration:
                        break
                    try:
                        BODY
                    except BaseException:
                        IN_FRAME = True
                        raise
            """, ITEM=item, IT=it, TIMEOUT=py.lit(float(step_timeout)), BODY=body,
                IN_FRAME=in_frame)
        elif traced or is_async:  # pauses come with each frame (RT.drain(), below)
            loop = py.stmts(("async for" if is_async else "for") + """ ITEM in IT:
    try:
        BODY
    except BaseException:
        IN_FRAME = True
        raise
""", ITEM=item, IT=it, BODY=body, IN_FRAME=in_frame)
        else:
            assert batched is not None and not tasks
            loop = batched.loop(item, it, body, in_frame)
        if is_async and not traced:  # the run path's async generators pause per batch too
            loop = self._count_down(loop, ns.fresh(f"{st.name}_ticks"))

        if traced:
            on_failure = py.stmts("RT.fail(NAME, IDX, EXC)", RT=rt, NAME=name,
                                  IDX=child.index(), EXC=exc)
            if self._needs_var(st):  # a failed generator skips what waits for its stream
                on_failure += py.stmts("M = _FAILED", M=self.done[st.name])
        else:
            on_failure = py.stmts("raise _op_error(NAME, IDX, EXC) from EXC", NAME=name,
                                  IDX=child.index(), EXC=exc)
        failed = "await _agen_failed" if is_async else "_gen_failed"
        guarded = py.stmts(f"""
            try:
                LOOP
            except BaseException as EXC:
                if not {failed}(IT, EXC, IN_FRAME):
                    raise
                ON_FAILURE
        """, LOOP=before + loop, EXC=exc, IT=it, IN_FRAME=in_frame, ON_FAILURE=on_failure)
        if frame.group is not None:
            guarded = py.stmts("async with asyncio.TaskGroup() as G:\n    GUARDED",
                               G=frame.group, GUARDED=guarded)
        run = batched.start() if batched is not None else py.stmts("C = 0", C=counter)
        run += py.stmts("F = False", F=in_frame) + guarded
        start = self._start_generator(st, it)
        if not traced and st.name in self.checked:  # a branch check reads: its stream started
            run = py.stmts("M = {}", M=self.done[st.name]) + run
        if traced:
            if self._needs_var(st):
                run = py.stmts("M = {}", M=self.done[st.name]) + run
            code = py.stmts("""
                try:
                    START
                except _OP_FAILURES as EXC:
                    RT.fail(NAME, IDX, EXC)
                else:
                    RUN
            """, START=start, EXC=exc, RT=rt, NAME=name, IDX=ctx.index(), RUN=run)
        else:
            code = start + run
        if is_async:  # an async generator holds its op's semaphore while it runs
            code = py.stmts("""
                await RT.SEM.acquire()
                try:
                    CODE
                finally:
                    RT.SEM.release()
            """, RT=rt, SEM=self.names.semaphore(st), CODE=code)
        out += frame.prelude() + code

    @staticmethod
    def _count_down(loop: Stmts, ticks: Ident) -> Stmts:
        """``loop`` (a ``for`` or ``async for`` over frames that may await) with a countdown
        to the next ``_PACE`` check after each frame."""
        assert len(loop) == 1 and isinstance(loop[0], (ast.For, ast.AsyncFor, ast.While))
        loop[0].body += py.stmts("""
            T -= 1
            if not T:
                T = await _PACE.checkpoint()
        """, T=ticks)
        return py.stmts("T = _PACE.ticks", T=ticks) + loop

    def _pool_ok(self, st: StageIR, region: RegionIR) -> bool:
        """Whether the run path drives this generator's frames with a pool of workers.

        For a sync generator whose frames may await (they would each be a task): the
        workers take the next yield in turn and run its frame, so at most ``window``
        frames are in flight (the producer is held) with no task or window semaphore
        per frame — what the Engine's frames do, without the scheduling per frame.
        """
        return self.mode == "fast" and st.flavor == "gen" and region.strategy == "tasks" \
            and bool(region.levels)

    def _sole_consumer(self, st: StageIR, region: RegionIR) -> StageIR | None:
        """The one awaited op a generator's frames run, when the workers alone bound it: the
        generator's only instance in the run (not inside a stream of the top-level graph),
        and a window equal to the op's own bound (the Engine's sole-consumer rule)."""
        if len(region.levels) != 1 or len(region.levels[0]) != 1 or st.context \
                or self.scope is not self.module.top:
            return None
        op = self.scope.stage(region.levels[0][0])
        awaited = op.flavor in ("async", "cpu") or (op.policy is not None and op.policy.awaited)
        if op.kind != "call" or not awaited or region.window != op.max_concurrent:
            return None
        return op

    def _generator_pool(self, out: Stmts, st: StageIR, ctx: Ctx, region: RegionIR) -> None:
        """``window`` workers share the generator's iterator (see ``_pool_ok``).

        Each worker pulls the next yield (a plain ``next()``: never two at once on one
        thread) and runs its frame; the yield's index comes from a shared counter.
        """
        sole = self._sole_consumer(st, region)
        if sole is not None:  # the workers bound it as its semaphore would
            self.unbounded.add(sole.name)
        ns = self.fn.ns
        exc = self.fn.exc
        pulled = ns.fresh(f"{st.name}_pulled")  # yields taken so far: the next one's index
        it = ns.fresh(f"{st.name}_iter")
        worker = ns.fresh(f"{st.name}_worker")
        group = ns.fresh(f"{st.name}_workers")
        counter = ns.fresh(f"i_{st.name}")
        in_frame = ns.fresh(f"{st.name}_in_frame")
        var = self.out[st.name]
        name = py.lit(st.qualname)
        child = replace(ctx.deeper(counter, None, 3), depth=3, indent=ctx.indent + 4)
        started = ns.fresh(f"{st.name}_started")  # workers started: one more per yield taken
        body = py.stmts("""
            C = P
            P = C + 1
            if STARTED < N:
                STARTED += 1
                G.create_task(W())
        """, C=counter, P=pulled, STARTED=started, N=py.lit(region.window), G=group, W=worker)
        frame: Stmts = []
        self._check(frame, st, var, child.index(), unpack=True)
        self._publish(frame, st, child)
        self.region(frame, region, child)
        if any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
               for stmt in frame for node in ast.walk(stmt)):
            # Functions the frame defines (its level's tasks) must not close over the
            # worker's loop variables: the frame becomes a function of its own, called in
            # turn (a coroutine per frame, still no task or window semaphore).
            frame_fn = ns.fresh(f"{st.name}_frame")
            out.append(py.function(frame_fn, [(counter, py.expr("int")),
                                              (var, py.expr("dict[str, Any]"))],
                                   py.expr("None"), frame, is_async=True))
            frame = py.stmts("await F(C, V)", F=frame_fn, C=counter, V=var)
        body += frame
        # Each worker counts its own frames down to its next pause check (frames that
        # never suspend would otherwise keep the event loop to themselves).
        loop = self._count_down(py.stmts("""
            for OUT in IT:
                try:
                    BODY
                except BaseException:
                    F = True
                    raise
        """, F=in_frame, OUT=var, IT=it, BODY=body), ns.fresh(f"{st.name}_ticks"))
        worker_body = py.stmts("""
            F = False
            try:
                LOOP
            except BaseException as EXC:
                if not _gen_failed(IT, EXC, F):
                    raise
                raise _op_error(NAME, IDX, EXC) from EXC
        """, F=in_frame, LOOP=loop, IT=it, EXC=exc, NAME=name,
            IDX=ctx.deeper(pulled, None, 0).index())
        worker_def = py.function(worker, [], py.expr("None"), [
            ast.Nonlocal(names=[str(pulled), str(started)]), *worker_body], is_async=True)
        out += self._start_generator(st, it)
        if st.name in self.checked:  # a branch check reads: its stream started
            out += py.stmts("M = {}", M=self.done[st.name])
        out += py.stmts("P = 0\nSTARTED = 1", P=pulled, STARTED=started)
        out.append(worker_def)
        # One worker to start with; each yield taken starts another, up to ``window``: a
        # short stream costs no idle workers.
        out += py.stmts("""
            async with asyncio.TaskGroup() as G:
                G.create_task(W())
        """, G=group, W=worker)

    def _start_generator(self, st: StageIR, it: Ident) -> Stmts:
        assert st.function is not None
        if self.mode == "traced":
            call = py.expr("FN(**KW)", FN=Ident(st.function), KW=self._kwargs(st))
        else:
            args, kws = self._call_args(st)
            call = py.expr("FN(*ARGS, **KW)", FN=Ident(st.function), ARGS=args, KW=kws)
        return py.stmts("IT = CALL", IT=it, CALL=call)

    # ------------------------------------------------------------------ loops

    def _loop(self, out: Stmts, st: StageIR, ctx: Ctx) -> None:
        assert st.body is not None and st.body.loop is not None
        bound = {a.name: self._arg(a) for a in st.args}
        state = dict(st.body.loop.state)
        init = ast.Dict(
            keys=[*(py.lit(k) for k in state), *(py.lit(k) for k in bound if k not in state)],
            values=[*(bound[k] if k in bound else py.lit(v) for k, v in state.items()),
                    *(v for k, v in bound.items() if k not in state)])
        inline = st.inline_loop and not ctx.nest(4).too_deep
        var = self.out[st.name] if self._needs_var(st) else None
        if inline and self.mode == "fast" and is_sync_fn(st.body, "fast"):
            self._loop_inlined(out, st, ctx, bound, state)
        elif inline:
            self._nested(st.body)
            LoopWriter(self, self.fn, st).write(out, ctx, var, init)
        else:
            self._nested(st.body)
            call = self._loop_function(st, init, ctx)
            out += py.stmts("V = CALL", V=var, CALL=call) if var else [ast.Expr(value=call)]
        self._publish_after(out, st, ctx)

    def _loop_function(self, st: StageIR, init: ast.expr, ctx: Ctx) -> ast.expr:
        """Write the loop as a module-level function; return the expression calling it."""
        assert st.body is not None
        fn_name = self.names.loop_fn(st, self.scope, self.mode)
        inner = Locals.new(self.names.ns.child(), self.mode)
        state = inner.ns.fresh("state")
        result = inner.ns.fresh("out")
        body: Stmts = []
        LoopWriter(self, inner, st).write(body, Ctx(inner.idx, span=inner.span), result,
                                          py.name(state))
        body += py.stmts("return R", R=result)
        params: list[tuple[Ident, ast.expr | None]] = [
            (inner.rt, py.expr(self._rt_type)), (inner.idx, py.expr("tuple[int, ...]"))]
        if inner.span is not None:
            params.append((inner.span, py.expr("str")))
        params.append((state, py.expr("dict[str, Any]")))
        self.extra += [py.comment(f"{where(st.loc)}: loop {st.qualname!r}"),
                       # async: a loop pauses for the event loop now and then (fairness)
                       py.function(fn_name, params, py.expr("dict[str, Any]"), body,
                                   is_async=True)]
        args = [self._rt(), ctx.index()]
        if self.mode == "traced":
            args.append(ctx.span_expr())
        call: ast.expr = ast.Call(func=py.name(fn_name), args=[*args, init], keywords=[])
        return ast.Await(value=call)

    def _loop_inlined(self, out: Stmts, st: StageIR, ctx: Ctx, bound: dict[str, ast.expr],
                      literals: dict[str, object]) -> None:
        """The body's code inside a ``for``, its state in local variables (fast path)."""
        assert st.body is not None and st.body.loop is not None
        loop = st.body.loop
        ns = self.fn.ns
        keys = [*literals, *(k for k in bound if k not in literals)]
        local = {k: ns.fresh(f"{st.name}_{k}") for k in keys}
        for k in keys:
            out += _typed("L = V", dict(loop.state_types).get(k), L=local[k],
                          V=bound[k] if k in bound else py.lit(literals[k]))

        def state_dict() -> ast.expr:
            return ast.Dict(keys=[py.lit(k) for k in keys],
                            values=[py.name(local[k]) for k in keys])

        until = until_test(st, lambda key: py.name(local[key]), state_dict)
        body: Stmts = [py.comment(f"{where(st.body.loc)}: loop body {st.qualname!r}, inlined")]
        inner = ScopeWriter(self.module, st.body, self.mode, self.names, fn=self.fn,
                            inputs={k: local[k] for k in st.body.reads})
        exprs = inner.inline_into(body, ctx.nest(2))  # while, for
        self.extra += inner.extra
        for r in st.body.results:
            value, there = exprs[r.key]
            set_it = py.stmts("L = X", L=local[r.key], X=value)
            # a write-back whose producer a branch skipped leaves the state as it was
            body += set_it if there is None else py.stmts("if THERE:\n    SET", THERE=there,
                                                          SET=set_it)
        body += py.stmts("""
            try:
                if UNTIL:
                    break
            except _OP_FAILURES as EXC:
                raise _op_error(NAME, IDX, EXC) from EXC
        """, UNTIL=until, EXC=self.fn.exc, NAME=py.lit(st.qualname), IDX=ctx.index())
        out += _paced(ns, st.name, loop.max_iterations, body, py.lit(st.qualname))
        for k in keys:  # readers read the (typed) state locals
            self.unpacked[(st.name, k)] = local[k]
        if st.name in self.forced or st.name in self.checked:  # the outputs as a dict too
            out += py.stmts("V: dict[str, Any] = STATE", V=self.out[st.name], STATE=state_dict())


def until_test(st: StageIR, load: Callable[[str], ast.expr],
               state: Callable[[], ast.expr]) -> ast.expr:
    """The loop's stop test over its state (read with ``load``, or passed as the dict)."""
    assert st.body is not None and st.body.loop is not None
    until = st.body.loop.until
    if isinstance(until, UntilExpr):
        return to_ast(until, load)
    return py.expr("FN(STATE)", FN=Ident(until), STATE=state())


def _paced(ns: Namespace, hint: str, limit: int, body: Stmts, name: ast.expr) -> Stmts:
    """A run-path loop of ``body`` (which ``break``s when ``until`` holds) in batches of
    ``itertools.repeat``: a pass costs no counter (the batch is counted in C). Between two
    batches it checks ``max_iterations`` and may pause for the event loop (``_PACE``)."""
    return py.stmts("""
        DONE = 0
        while True:
            BATCH = min(_PACE.ticks, LIMIT - DONE)
            for PASS in itertools.repeat(None, BATCH):
                BODY
            else:
                DONE += BATCH
                if DONE >= LIMIT:
                    raise _loop_limit(NAME, LIMIT)
                await _PACE.checkpoint()
                continue
            break
    """, DONE=ns.fresh(f"{hint}_done"), BATCH=ns.fresh(f"{hint}_batch"), LIMIT=py.lit(limit),
        BODY=body, NAME=name,
        # a fresh name, never ``_``: the user's code may call an op or helper named ``_``
        PASS=ns.fresh(f"_{hint}_pass"))


class LoopWriter:
    """A loop that calls its body's scope function once per iteration.

    The Engine's order exactly: run the body, apply the write-backs, evaluate
    ``until``, then raise ``LoopLimitExceeded`` once ``max_iterations`` is reached.
    """

    def __init__(self, writer: ScopeWriter, fn: Locals, st: StageIR) -> None:
        self.w = writer
        self.fn = fn
        self.st = st

    def write(self, out: Stmts, ctx: Ctx, var: Ident | None, init: ast.expr) -> None:
        st, w, ns = self.st, self.w, self.fn.ns
        assert st.body is not None and st.body.loop is not None
        if isinstance(init, ast.Name):
            state = Ident(init.id)
        else:
            state = ns.fresh(f"{st.name}_state")
            out += py.stmts("S: dict[str, Any] = INIT", S=state, INIT=init)
        until = until_test(st, lambda key: py.expr("S[K]", S=state, K=py.lit(key)),
                           lambda: py.name(state))
        args = [py.name(self.fn.rt), ctx.index()]
        if w.mode == "traced":
            args.append(ctx.span_expr())
        step: ast.expr = ast.Call(func=py.name(w.names.scope_fn(st.body, w.mode)),
                                  args=[*args, py.expr("dict(S)", S=state)], keywords=[])
        if not is_sync_fn(st.body, w.mode):
            step = ast.Await(value=step)
        name = py.lit(st.qualname)
        subs: dict[str, py.Sub] = dict(
            N=ns.fresh(f"{st.name}_iteration"), S=state, STOP=ns.fresh(f"{st.name}_stop"),
            UNTIL=until, EXC=self.fn.exc, NAME=name, IDX=ctx.index(),
            LIMIT=py.lit(st.body.loop.max_iterations))
        if w.mode == "fast":
            out += _paced(ns, st.name, st.body.loop.max_iterations, py.stmts("""
                S.update(STEP)
                try:
                    if UNTIL:
                        break
                except _OP_FAILURES as EXC:
                    raise _op_error(NAME, IDX, EXC) from EXC
            """, STEP=step, S=state, UNTIL=until, EXC=self.fn.exc, NAME=name,
                IDX=ctx.index()), name)
            if var is not None:
                out += py.stmts("V = S", V=var, S=state)
            return
        done: Stmts = py.stmts("V = S", V=var, S=state) if var is not None else []
        out += py.stmts("V = _FAILED", V=var) if var is not None else []
        out += py.stmts("""
            N = 0
            while True:
                N += 1
                E = len(RT.errors)
                STEP = STEP_CALL
                await RT.drain()
                if RT.failed_since(E, QUAL, IDX):
                    break
                S.update(STEP)
                try:
                    STOP = UNTIL
                except _OP_FAILURES as EXC:
                    RT.fail(NAME, IDX, EXC)
                    break
                if STOP:
                    DONE
                    break
                if N >= LIMIT:
                    RT.fail_with(_loop_limit(NAME, LIMIT), IDX)
                    break
        """, E=ns.fresh(f"{st.name}_errors"), RT=self.fn.rt, STEP=ns.fresh(f"{st.name}_step"),
            STEP_CALL=step, DONE=done, QUAL=py.lit(st.body.qual), **subs)


@dataclass(frozen=True)
class _Batch:
    """A sync generator's loop on the run path, paced without a frame counter.

    ``zip(LEFT, IT)`` takes a tick from ``LEFT = itertools.repeat(None, BATCH)`` before
    each pull from the generator, so a full batch stops before pulling another yield and
    the loop counts in C without making an int per frame. The frame's index is computed
    only where an error needs it: ``FIRST + BATCH - (ticks left) - 1`` (``_batch_index``);
    when the generator itself fails, its failed pull took the tick of the frame it would
    have been, so the same expression is its index.

    Ticks left after the loop mean the generator ended inside the batch. None left is
    ambiguous (a full batch, or the generator ended on the batch's last tick): the loop
    goes on with a batch of at least two ticks, whose first pull then tells.
    """

    first: Ident
    batch: Ident
    left: Ident
    tick: Ident

    @staticmethod
    def of(ns: Namespace, stem: str) -> _Batch:
        return _Batch(ns.fresh(f"{stem}_first"), ns.fresh(f"{stem}_batch"),
                      ns.fresh(f"{stem}_left"), ns.fresh(f"_{stem}_tick"))

    def index(self) -> ast.expr:
        return py.expr("_batch_index(FIRST, BATCH, LEFT)", FIRST=self.first,
                       BATCH=self.batch, LEFT=self.left)

    def start(self) -> Stmts:
        return py.stmts("""
            FIRST = 0
            BATCH = _PACE.ticks
            LEFT = itertools.repeat(None, BATCH)
        """, FIRST=self.first, BATCH=self.batch, LEFT=self.left)

    def loop(self, item: Ident, it: Ident, body: Stmts, in_frame: Ident) -> Stmts:
        return py.stmts("""
            while True:
                for TICK, ITEM in zip(LEFT, IT, strict=False):
                    try:
                        BODY
                    except BaseException:
                        IN_FRAME = True
                        raise
                if operator.length_hint(LEFT):
                    break
                FIRST += BATCH
                BATCH = max(2, await _PACE.checkpoint())
                LEFT = itertools.repeat(None, BATCH)
            _PACE.ticks = operator.length_hint(LEFT) + 1
        """, FIRST=self.first, BATCH=self.batch, LEFT=self.left, TICK=self.tick, ITEM=item,
            IT=it, BODY=body, IN_FRAME=in_frame)


class Dispatch:
    """How a generator runs one frame's region: inline in its loop, or as a task.

    A frame nested too deep for one function (CPython's limits on nested blocks
    and indentation) moves into a module-level function of its own, with every
    local value it reads passed as an argument.
    """

    def __init__(self, writer: ScopeWriter, region: RegionIR, child: Ctx, tasks: bool,
                 counter: Ident, var: Ident, span: Ident | None) -> None:
        self.w = writer
        self.region = region
        self.child = child
        self.tasks = tasks
        self.counter = counter
        self.var = var
        self.span = span
        ns = writer.fn.ns
        gen = region.generator or "frame"
        self.group = ns.fresh(f"{gen}_frames") if tasks else None
        self.window = ns.fresh(f"{gen}_window") if tasks else None
        self._prelude: Stmts = []

    def write(self, out: Stmts) -> None:
        """The statements that run one frame, inside the generator's loop."""
        if not self.region.levels:
            return
        if self.tasks:
            self._as_task(out)
        elif self.child.too_deep:
            call = self._outlined(self.w.region, is_async=None)
            out.append(ast.Expr(value=call))
        else:
            self.w.region(out, self.region, self.child)

    def prelude(self) -> Stmts:
        """What must exist before the generator's loop: the frame function, its window."""
        return self._prelude

    def _as_task(self, out: Stmts) -> None:
        window_sem, group = self.window, self.group
        assert window_sem is not None and group is not None
        frame_args: list[tuple[Ident, ast.expr | None]] = [
            (self.counter, py.expr("int")), (self.var, py.expr("dict[str, Any]"))]
        if self.span is not None:
            frame_args.append((self.span, py.expr("str")))

        def frame_body(body: Stmts, region: RegionIR, ctx: Ctx) -> None:
            inner: Stmts = []
            self.w.region(inner, region, ctx.nest(1))
            body += py.stmts("try:\n    BODY\nfinally:\n    W.release()", BODY=inner,
                             W=window_sem)

        window = py.stmts("W = asyncio.Semaphore(N)", W=window_sem,
                          N=py.lit(self.region.window))
        if self.child.indent + 1 > _INDENT_BUDGET:
            task = self._outlined(frame_body, is_async=True)
            self._prelude = window
        else:
            frame_fn = self.w.fn.ns.fresh(f"{self.region.generator}_frame")
            body: Stmts = []
            frame_body(body, self.region, self.child.in_def())
            self._prelude = [py.function(frame_fn, frame_args, py.expr("None"), body,
                                         is_async=True), *window]
            task = ast.Call(func=py.name(frame_fn), args=[py.name(a) for a, _ in frame_args],
                            keywords=[])
        out += py.stmts("await W.acquire()\nG.create_task(TASK)", W=window_sem, G=group,
                        TASK=task)

    def _outlined(self, write: Callable[[Stmts, RegionIR, Ctx], None],
                  is_async: bool | None) -> ast.expr:
        """The frame's code as a module-level function taking every local value it reads;
        the expression that calls it (awaited when it awaits, unless ``is_async``)."""
        w = self.w
        fn_name = w.names.ns.fresh(f"_{w.mode}_{w.scope.symbol}__{self.region.generator}_frame")
        body: Stmts = []
        write(body, self.region, replace(self.child, depth=1, indent=1))
        free = _free_locals(body, w.fn.ns)
        awaits = is_async if is_async is not None else _awaits(body)
        w.extra += [py.comment(f"a frame of {w.scope.qual}{self.region.generator}, nested too "
                               "deep to stay inline"),
                    py.function(fn_name, [(n, _ANY) for n in free], py.expr("None"), body,
                                is_async=awaits)]
        call: ast.expr = ast.Call(func=py.name(fn_name), args=[py.name(n) for n in free],
                                  keywords=[])
        return ast.Await(value=call) if awaits and is_async is None else call


def _awaits(body: Stmts) -> bool:
    """Whether ``body`` awaits (outside the functions it defines)."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Await, ast.AsyncWith, ast.AsyncFor)):
            return True
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))
    return False


def _free_locals(body: Stmts, ns: Namespace) -> list[Ident]:
    """Locals of the enclosing function that ``body`` reads, sorted: the moved code's
    parameters. Generated locals all come from ``ns`` and module-level names never
    do, so a name is such a local exactly when ``ns`` handed it out. The moved code
    must not rebind any of them (it only appends to shared lists): checked here."""
    loads: set[str] = set()
    stores: set[str] = set()
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name):
                (stores if isinstance(node.ctx, ast.Store) else loads).add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                stores.add(node.name)
                stores.update(a.arg for a in node.args.args)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                stores.add(node.name)
    free = sorted(n for n in loads if n in ns.taken and n not in stores)
    return [Ident(n) for n in free]


def _optional_keys(st: StageIR) -> frozenset[str]:
    """Outputs of a sub-graph stage that a branch inside may leave out."""
    if st.kind != "graph" or st.body is None:
        return frozenset()
    return frozenset(r.key for r in st.body.results if r.presence is not None)


def _read_once(scope: ScopeIR) -> frozenset[tuple[str, str]]:
    """The (stage, key) outputs that exactly one argument, result or collect reads (none
    in a scope with branches: their conditions and gates read outputs too)."""
    if scope.branches:
        return frozenset()
    reads: collections.Counter[tuple[str, str]] = collections.Counter()
    for st in scope.stages:
        for arg in st.args:
            for one in (arg, *arg.options):
                if one.kind == "value":
                    reads[(one.node, one.key)] += 1
    reads.update((r.node, r.out_key) for r in scope.results)
    reads.update((c.node, c.key) for c in scope.collects)
    return frozenset(ref for ref, count in reads.items() if count == 1)


def _checked_stages(scope: ScopeIR) -> set[str]:
    """The stages whose marker some branch check of the scope reads."""
    found: set[str] = set()

    def add(p: Presence | None) -> None:
        if p is not None:
            found.add(p.stage)

    for st in scope.stages:
        for a in st.args:
            for option in (a.options or (a,)):
                add(option.presence)
        if st.gate is not None:
            found.add(st.name)
            for options in st.gate.reads:
                for p in options:
                    add(p)
            found.update(e.source for e in st.gate.edges if e.source is not None)
    for r in scope.results:
        add(r.presence)
    for b in scope.branches:
        for p in b.absent:
            add(p)
    return found
