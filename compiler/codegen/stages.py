"""Lower each scope of the lowered IR into Python function source, as lines.

Two variants of every scope are written from the same IR:

* ``fast`` (``run`` with ``on_error="raise"``, after the drop_bookkeeping pass):
  straight-line calls, no frames, spans, timestamps or skip markers; the first
  error raises;
* ``traced`` (``stream``, ``on_error="collect"``, and everything at -O0): every
  op execution goes through the run context (``rt.call`` and friends), which
  emits frames and records or raises failures; a failed stage's output becomes
  the ``_SKIPPED`` marker so what depends on it (in its frame) is skipped.

Both follow the plan's regions and levels exactly as the Engine does.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from compiler.codegen.names import Namespace
from compiler.codegen.wrap import LIMIT, wrap
from compiler.ir.nodes import ModuleIR, RegionIR, ScopeIR, StageIR, until_text
from compiler.ir.printer import where

Mode = Literal["fast", "traced"]


class Writer:
    def __init__(self, indent: int = 0) -> None:
        self.lines: list[str] = []
        self.depth = indent

    def __call__(self, text: str) -> None:
        self.lines.extend(wrap("    " * self.depth + text) if text else [""])

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self(header)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


@dataclass
class Ctx:
    """Where code is being written: the index and span expressions of the current frame."""

    idx_parts: tuple[str, ...] = ()
    span: str = "span"

    @property
    def idx(self) -> str:
        if not self.idx_parts:
            return "idx"
        return f"(*idx, {', '.join(self.idx_parts)})"

    def deeper(self, counter: str, span: str) -> Ctx:
        return Ctx((*self.idx_parts, counter), span)


@dataclass
class ModuleNames:
    """Module-level names every scope writer shares."""

    ns: Namespace
    scope_fns: dict[tuple[str, str], str] = field(default_factory=dict)
    loop_fns: dict[tuple[str, str], str] = field(default_factory=dict)
    semaphores: dict[str, tuple[str, int]] = field(default_factory=dict)  # qualname -> attr

    def scope_fn(self, scope: ScopeIR, mode: Mode) -> str:
        key = (scope.symbol, mode)
        if key not in self.scope_fns:
            self.scope_fns[key] = self.ns.fresh(f"_{mode}_{scope.symbol}")
        return self.scope_fns[key]

    def loop_fn(self, stage: StageIR, scope: ScopeIR, mode: Mode) -> str:
        key = (f"{scope.symbol}__{stage.name}", mode)
        if key not in self.loop_fns:
            self.loop_fns[key] = self.ns.fresh(f"_{mode}_loop_{scope.symbol}__{stage.name}")
        return self.loop_fns[key]

    def semaphore(self, stage: StageIR) -> str:
        if stage.qualname not in self.semaphores:
            attr = f"sem_{stage.qualname.replace('.', '__')}"
            self.semaphores[stage.qualname] = (attr, stage.max_concurrent)
        return f"rt.{self.semaphores[stage.qualname][0]}"


def _is_sync_fn(scope: ScopeIR, mode: Mode) -> bool:
    return mode == "fast" and scope.inline


class ScopeWriter:
    """Writes ``_fast_<scope>`` or ``_traced_<scope>``, plus its loop stage functions."""

    def __init__(self, module: ModuleIR, scope: ScopeIR, mode: Mode, names: ModuleNames,
                 ns: Namespace | None = None, inputs: dict[str, str] | None = None) -> None:
        self.module = module
        self.scope = scope
        self.mode = mode
        self.names = names
        self.ns = ns if ns is not None else names.ns.child()
        self.ns.taken.update({"rt", "idx", "span", "inp", "exc", "result"})
        self.extra: list[list[str]] = []  # further functions (loop stages, nested scopes)
        self.out: dict[str, str] = {}
        self.done: dict[str, str] = {}
        for st in scope.stages:
            self.out[st.name] = self.ns.fresh(f"{st.name}_out")
            if st.kind == "gen":
                self.done[st.name] = self.ns.fresh(f"{st.name}_done")
        self.inp = inputs if inputs is not None else {k: self.ns.fresh(k) for k in scope.reads}
        self.bufs = {(c.node, c.key, c.ordered): self.ns.fresh(
            f"{c.node}_{c.key}_{'ordered' if c.ordered else 'collected'}")
            for c in scope.collects}
        self.res = {r.key: self.ns.fresh(f"{r.key}_all") for r in scope.results if r.depth > 0}
        self.used = self._used_stages()
        self.waited = {d for st in scope.stages for d in st.deps}
        self.forced: set[str] = set()  # stages run as level tasks: their marker is returned
        self.unpacked: dict[tuple[str, str], str] = {}  # (stage, key) -> local holding it

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

    def _arg(self, arg_kind: str, node: str, key: str, ordered: bool, literal: str) -> str:
        if arg_kind == "const":
            return literal
        if arg_kind == "input":
            return self.inp[key]
        if arg_kind == "value":
            return self._val(node, key)
        buf = self.bufs[(node, key, ordered)]
        out_ctx = self._out_ctx(node)
        if ordered and not self._in_order_direct(out_ctx, out_ctx[:-1]):
            return f"_in_order({buf})"
        return f"list({buf})"

    def _val(self, node: str, key: str) -> str:
        """How code reads output ``key`` of ``node``: its unpacked local, or a subscript."""
        return self.unpacked.get((node, key)) or f"{self.out[node]}[{key!r}]"

    def _call_args(self, st: StageIR) -> str:
        """Arguments of a direct call: leading parameters by position, the rest by keyword."""
        by_name = {a.name: a for a in st.args}
        parts = [self._arg(by_name[n].kind, by_name[n].node, by_name[n].key, by_name[n].ordered,
                           by_name[n].literal) for n in st.positional]
        parts += [f"{a.name}={self._arg(a.kind, a.node, a.key, a.ordered, a.literal)}"
                  for a in st.args if a.name not in st.positional]
        return ", ".join(parts)

    def _kwargs(self, st: StageIR) -> str:
        return ", ".join(f"{a.name}={self._arg(a.kind, a.node, a.key, a.ordered, a.literal)}"
                         for a in st.args)

    def _inputs_dict(self, st: StageIR) -> str:
        items = ", ".join(f"{a.name!r}: {self._arg(a.kind, a.node, a.key, a.ordered, a.literal)}"
                          for a in st.args)
        return "{" + items + "}"

    def _check(self, w: Writer, st: StageIR, var: str, idx: str, unpack: bool = False) -> None:
        """Fast path: raise as the Engine does unless ``var`` is a dict with the needed keys.

        With ``unpack``, the needed keys are read into locals right here (a ``KeyError``
        from an exact ``dict`` means the key is missing); readers then use the locals.
        """
        keys = tuple(st.needed)
        if st.outputs_proven:
            # The op's every return/yield is a dict literal with these keys: nothing to check.
            for key in keys if unpack else ():
                local = self.ns.fresh(f"{st.name}_{key}")
                w(f"{local} = {var}[{key!r}]")
                self.unpacked[(st.name, key)] = local
            return
        if unpack and keys:
            with w.block(f"if {var}.__class__ is not dict:"):
                w(f"{var} = _outputs({st.qualname!r}, {idx}, {var}, {keys!r})")
            with w.block("try:"):
                for key in keys:
                    local = self.ns.fresh(f"{st.name}_{key}")
                    w(f"{local} = {var}[{key!r}]")
                    self.unpacked[(st.name, key)] = local
            with w.block("except KeyError:"):
                w(f"_missing({st.qualname!r}, {idx}, {var}, {keys!r})")
            return
        conds = [f"{var}.__class__ is not dict", *(f"{k!r} not in {var}" for k in keys)]
        header = f"if {' or '.join(conds)}:"
        if len(header) + 4 * w.depth > LIMIT:
            w("if (")
            w(f"    {conds[0]}")
            for cond in conds[1:]:
                w(f"    or {cond}")
            header = "):"
        with w.block(header):
            w(f"{var} = _outputs({st.qualname!r}, {idx}, {var}, {keys!r})")

    def _publish(self, w: Writer, st: StageIR, var: str, ctx: Ctx) -> None:
        """Append this stage's outputs to collect buffers and streamed results."""
        out_ctx = (*st.context, st.name) if st.kind == "gen" else st.context
        for c in self.scope.collects:
            if c.node != st.name:
                continue
            buf = self.bufs[(c.node, c.key, c.ordered)]
            if c.ordered and not self._in_order_direct(out_ctx, c.owner):
                w(f"{buf}.append(({ctx.idx}, {self._val(st.name, c.key)}))")
            else:
                w(f"{buf}.append({self._val(st.name, c.key)})")
        for r in self.scope.results:
            if r.node != st.name or r.depth == 0:
                continue
            if self._in_order_direct(out_ctx, ()):
                w(f"{self.res[r.key]}.append({self._val(st.name, r.out_key)})")
            else:
                w(f"{self.res[r.key]}.append(({ctx.idx}, {self._val(st.name, r.out_key)}))")

    def _needs_var(self, st: StageIR) -> bool:
        if st.kind == "gen":  # its marker: only what orders after the whole stream reads it
            return st.name in self.waited or st.name in self.forced
        return st.name in self.used or st.name in self.forced or self._publishes(st)

    def _publishes(self, st: StageIR) -> bool:
        return any(c.node == st.name for c in self.scope.collects) or any(
            r.node == st.name and r.depth > 0 for r in self.scope.results)

    def _publish_after(self, w: Writer, st: StageIR, var: str, ctx: Ctx) -> None:
        """Publish a sub-graph's or loop's outputs (traced: unless it was skipped)."""
        if not self._publishes(st):
            return
        if self.mode == "traced":
            with w.block(f"if {var} is not _SKIPPED:"):
                self._publish(w, st, var, ctx)
        else:
            self._publish(w, st, var, ctx)

    def _marker(self, name: str) -> str:
        return self.done.get(name, self.out[name])

    def _guard(self, st: StageIR) -> str | None:
        if self.mode == "fast" or not st.deps:
            return None
        return " and ".join(f"{self._marker(d)} is not _SKIPPED" for d in st.deps)

    def _awaits(self, st: StageIR) -> bool:
        """Whether this stage's code contains an ``await`` in this mode."""
        if st.flavor in ("async", "cpu", "asyncgen"):
            return True
        if st.kind == "gen":
            return self.scope.region((*st.context, st.name)).strategy != "inline"
        if st.kind in ("graph", "loop"):
            assert st.body is not None
            return not _is_sync_fn(st.body, self.mode)
        return False

    # ------------------------------------------------------------------ scope

    def write(self) -> list[str]:
        s = self.scope
        w = Writer()
        name = self.names.scope_fn(s, self.mode)
        is_async = not _is_sync_fn(s, self.mode)
        params = f"rt: {self._rt_type}, idx: tuple[int, ...], "
        if self.mode == "traced":
            params += "span: str, "
        params += "inp: Mapping[str, Any]"
        returns = "Result" if self.mode == "fast" and s is self.module.top else "dict[str, Any]"
        w(f"# {where(s.loc)}: {s.kind} {s.name!r}")
        with w.block(f"{'async ' if is_async else ''}def {name}({params}) -> {returns}:"):
            for key, var in self.inp.items():
                w(f"{var} = inp[{key!r}]")
            for r in s.results:
                if r.depth > 0:
                    w(f"{self.res[r.key]}: list[Any] = []")
            self.region(w, s.region(()), Ctx())
            self._returns(w)
        lines = w.lines
        for extra in self.extra:
            lines += ["", "", *extra]
        return lines

    @property
    def _rt_type(self) -> str:
        return "_Limits" if self.mode == "fast" else "_Run"

    def inline_into(self, w: Writer, ctx: Ctx) -> dict[str, str]:
        """Write this (inline) scope's code into the caller's; return its result expressions."""
        for r in self.scope.results:
            if r.depth > 0:
                w(f"{self.res[r.key]}: list[Any] = []")
        self.region(w, self.scope.region(()), ctx)
        exprs: dict[str, str] = {}
        for r in self.scope.results:
            if r.depth == 0:
                exprs[r.key] = self._val(r.node, r.out_key)
            elif self._in_order_direct(self._out_ctx(r.node), ()):
                exprs[r.key] = self.res[r.key]
            else:
                exprs[r.key] = f"_in_order({self.res[r.key]})"
        return exprs

    def _returns(self, w: Writer) -> None:
        s = self.scope
        if self.mode == "fast":
            items = []
            for r in s.results:
                if r.depth == 0:
                    items.append(f"{r.key!r}: {self._val(r.node, r.out_key)}")
                elif self._in_order_direct(self._out_ctx(r.node), ()):
                    items.append(f"{r.key!r}: {self.res[r.key]}")
                else:
                    items.append(f"{r.key!r}: _in_order({self.res[r.key]})")
            w("return {" + ", ".join(items) + "}")
            return
        w("result: dict[str, Any] = {}")
        for r in s.results:
            if r.depth == 0:
                with w.block(f"if {self.out[r.node]} is not _SKIPPED:"):
                    w(f"result[{r.key!r}] = {self.out[r.node]}[{r.out_key!r}]")
            elif self._in_order_direct(self._out_ctx(r.node), ()):
                w(f"result[{r.key!r}] = {self.res[r.key]}")
            else:
                w(f"result[{r.key!r}] = _in_order({self.res[r.key]})")
        w("return result")

    def _out_ctx(self, name: str) -> tuple[str, ...]:
        st = self.scope.stage(name)
        return (*st.context, st.name) if st.kind == "gen" else st.context

    # ------------------------------------------------------------------ regions

    def region(self, w: Writer, region: RegionIR, ctx: Ctx) -> None:
        for c in self.scope.collects:
            if c.owner == region.context:
                w(f"{self.bufs[(c.node, c.key, c.ordered)]}: list[Any] = []")
        chain_of = {chain[0]: chain for chain in region.chains}
        in_chain = {n for chain in region.chains for n in chain[1:]}
        for level in region.levels:
            sync = [self.scope.stage(n) for n in level if not self._awaits(self.scope.stage(n))]
            waits = [self.scope.stage(n) for n in level if self._awaits(self.scope.stage(n))]
            for st in sync:
                if st.name in in_chain:
                    continue
                if st.name in chain_of:
                    chain = [self.scope.stage(n) for n in chain_of[st.name]]
                    text = f"fused: {' >> '.join(c.name for c in chain)}"
                    for part in textwrap.wrap(text, LIMIT - 2 - 4 * w.depth,
                                              subsequent_indent="    "):
                        w(f"# {part}")
                    for member in chain:
                        self.stage(w, member, ctx)
                    w("# end fused")
                else:
                    self.stage(w, st, ctx)
            if len(waits) == 1:
                self.stage(w, waits[0], ctx)
            elif waits:
                tasks = []
                for st in waits:
                    self.forced.add(st.name)
                    fn = self.ns.fresh(f"{st.name}_task")
                    w("")
                    with w.block(f"async def {fn}() -> dict[str, Any]:"):
                        self.stage(w, st, ctx)
                        if self.mode == "fast" and st.kind == "gen":
                            w("return {}")
                        else:
                            w(f"return {self._marker(st.name)}")
                    tasks.append((st, fn))
                group = self.ns.fresh("level")
                handles = []
                with w.block(f"async with asyncio.TaskGroup() as {group}:"):
                    for st, fn in tasks:
                        handle = self.ns.fresh(f"{st.name}_handle")
                        handles.append((st, handle))
                        w(f"{handle} = {group}.create_task({fn}())")
                for st, handle in handles:
                    if self.mode == "fast" and st.kind == "gen":
                        continue
                    if st.name in self.used or self._publishes(st):
                        w(f"{self._marker(st.name)} = {handle}.result()")

    # ------------------------------------------------------------------ stages

    def stage(self, w: Writer, st: StageIR, ctx: Ctx) -> None:
        guard = self._guard(st)
        if self.mode == "traced" and st.kind == "gen" and self._needs_var(st):
            w(f"{self._marker(st.name)} = _SKIPPED")
        if guard is not None:
            if st.kind != "gen":
                w(f"{self._marker(st.name)} = _SKIPPED")
            with w.block(f"if {guard}:"):
                self._stage_body(w, st, ctx)
        else:
            self._stage_body(w, st, ctx)

    def _stage_body(self, w: Writer, st: StageIR, ctx: Ctx) -> None:
        w(f"# {where(st.loc)}: {st.name}")
        if st.kind == "call":
            if self.mode == "fast":
                self._call_fast(w, st, ctx)
            else:
                self._call_traced(w, st, ctx)
        elif st.kind == "gen":
            self._generator(w, st, ctx)
        elif st.kind == "graph":
            assert st.body is not None
            self._nested(st.body)
            fn = self.names.scope_fn(st.body, self.mode)
            call = f"{fn}(rt, {ctx.idx}, "
            call += f"{ctx.span}, " if self.mode == "traced" else ""
            call += f"{self._inputs_dict(st)})"
            if not _is_sync_fn(st.body, self.mode):
                call = f"await {call}"
            var = self.out[st.name]
            if not self._needs_var(st):
                w(call)
            elif self.mode == "traced":
                w(f"{var} = _complete({call}, {tuple(st.needed)!r})")
            else:
                w(f"{var} = {call}")
            self._publish_after(w, st, var, ctx)
        else:
            self._loop(w, st, ctx)

    def _nested(self, body: ScopeIR) -> None:
        key = (body.symbol, self.mode)
        if key in self.names.scope_fns:
            return
        self.names.scope_fn(body, self.mode)
        self.extra.append(ScopeWriter(self.module, body, self.mode, self.names).write())

    def _call_fast(self, w: Writer, st: StageIR, ctx: Ctx) -> None:
        var = self.out[st.name]
        assert st.function is not None
        call = f"{st.function}({self._call_args(st)})"
        if st.flavor == "async":
            call = f"await {call}"
        elif st.flavor == "cpu":
            kwargs = self._kwargs(st)
            call = ("await asyncio.get_running_loop().run_in_executor(None, "
                    f"functools.partial({st.function}{', ' + kwargs if kwargs else ''}))")

        def body() -> None:
            with w.block("try:"):
                if st.returns_none:
                    w(call)
                else:
                    w(f"{var} = {call}")
            with w.block("except Exception as exc:"):
                w(f"raise _op_error({st.qualname!r}, {ctx.idx}, exc) from exc")

        if st.flavor in ("async", "cpu"):
            with w.block(f"async with {self.names.semaphore(st)}:"):
                body()
        else:
            body()
        if st.returns_none:
            w(f"{var} = _outputs({st.qualname!r}, {ctx.idx}, None, {tuple(st.needed)!r})")
        else:
            self._check(w, st, var, ctx.idx, unpack=st.name not in self.forced)
        self._publish(w, st, var, ctx)

    def _call_traced(self, w: Writer, st: StageIR, ctx: Ctx) -> None:
        var = self.out[st.name]
        head = f"{st.qualname!r}, {ctx.idx}, {ctx.span}, {tuple(st.needed)!r}"
        kwargs = self._kwargs(st)
        tail = f", {kwargs}" if kwargs else ""
        if st.flavor == "async":
            call = f"await rt.acall({head}, {self.names.semaphore(st)}, {st.function}{tail})"
        elif st.flavor == "cpu":
            call = f"await rt.tcall({head}, {self.names.semaphore(st)}, {st.function}{tail})"
        else:
            call = f"rt.call({head}, {st.function}{tail})"
        publishes = self._publishes(st)
        if not self._needs_var(st):
            w(call)
            return
        w(f"{var} = {call}")
        if publishes:
            with w.block(f"if {var} is not _SKIPPED:"):
                self._publish(w, st, var, ctx)

    # ------------------------------------------------------------------ generators

    def _generator(self, w: Writer, st: StageIR, ctx: Ctx) -> None:
        region = self.scope.region((*st.context, st.name))
        counter = self.ns.fresh(f"i_{st.name}")
        it = self.ns.fresh(f"{st.name}_iter")
        var = self.out[st.name]
        traced = self.mode == "traced"
        span = self.ns.fresh(f"{st.name}_span") if traced else "span"
        child = ctx.deeper(counter, span)
        tasks = region.strategy != "inline" and bool(region.levels)
        is_async = st.flavor == "asyncgen"
        frame_fn = window = group = ""
        if tasks:
            frame_fn = self.ns.fresh(f"{st.name}_frame")
            window = self.ns.fresh(f"{st.name}_window")
            group = self.ns.fresh(f"{st.name}_frames")
            sig = f"{counter}: int, {var}: dict[str, Any]"
            if traced:
                sig += f", {span}: str"
            w("")
            with w.block(f"async def {frame_fn}({sig}) -> None:"):
                with w.block("try:"):
                    self.region(w, region, child)
                with w.block("finally:"):
                    w(f"{window}.release()")
            w("")
            w(f"{window} = asyncio.Semaphore({region.window})")
        sem = self.names.semaphore(st) if is_async else None
        if sem is not None:
            w(f"await {sem}.acquire()")
            w("try:")
            w.depth += 1
        if traced:
            with w.block("try:"):
                w(f"{it} = {st.function}({self._kwargs(st)})")
            with w.block("except Exception as exc:"):
                w(f"rt.fail({st.qualname!r}, {ctx.idx}, exc)")
            w("else:")
            w.depth += 1
            if self._needs_var(st):
                w(f"{self.done[st.name]} = {{}}")
        else:
            w(f"{it} = {st.function}({self._call_args(st)})")
        enumerated = not traced and not is_async  # for i, item in enumerate(...)
        counter_init_at = len(w.lines)
        w(f"{counter} = {-1 if enumerated else 0}")
        started = self.ns.fresh(f"{st.name}_t0") if traced else ""
        with w.block("try:"):
            if tasks:
                w(f"async with asyncio.TaskGroup() as {group}:")
                w.depth += 1
                w("try:")
                w.depth += 1
            if traced:
                w(f"{started} = time.time_ns()")
            item = self.ns.fresh(f"{st.name}_item") if traced else var
            loop = (f"for {counter}, {item} in enumerate({it}):" if enumerated
                    else f"{'async ' if is_async else ''}for {item} in {it}:")
            loop_at = len(w.lines)
            with w.block(loop):
                if traced:
                    w(f"{var} = rt.check({st.qualname!r}, {child.idx}, {item}, "
                      f"{tuple(st.needed)!r})")
                    if self._needs_var(st):  # a malformed yield fails the generator node
                        with w.block(f"if {var} is _SKIPPED:"):
                            w(f"{self.done[st.name]} = _SKIPPED")
                    with w.block(f"if {var} is not _SKIPPED:"):
                        frame = (f"rt.frame({st.qualname!r}, {child.idx}, {var}, {ctx.span}, "
                                 f"{started})")
                        w(f"{span} = {frame}" if region.levels else frame)
                        self._publish(w, st, var, child)
                        self._dispatch(w, region, child, tasks, frame_fn, window, group,
                                       counter, var, span)
                else:
                    self._check(w, st, var, child.idx, unpack=not tasks)
                    self._publish(w, st, var, child)
                    self._dispatch(w, region, child, tasks, frame_fn, window, group,
                                   counter, var, span)
                if not enumerated:
                    w(f"{counter} += 1")
                if traced:
                    w("await rt.drain()")
                    w(f"{started} = time.time_ns()")
            if enumerated and not _mentions(w.lines[loop_at + 1:], counter):
                # Only a failing generator needs the index (after the loop): say so in its name.
                unused = self.ns.fresh(f"_{counter}")
                for at in (counter_init_at, loop_at):
                    w.lines[at] = re.sub(rf"\b{re.escape(counter)}\b", unused, w.lines[at], count=1)
                counter = unused
            fail_idx = ctx.deeper(f"{counter} + 1", span).idx if enumerated else child.idx
            if tasks:
                w.depth -= 1
                with w.block("except (OperonxError, BaseExceptionGroup):"):
                    w("raise")
                with w.block("except Exception as exc:"):
                    self._gen_fail(w, st, fail_idx)
                w.depth -= 1
        if not tasks:
            with w.block("except (OperonxError, BaseExceptionGroup):"):
                w("raise")
            with w.block("except Exception as exc:"):
                self._gen_fail(w, st, fail_idx)
        with w.block("finally:"):
            w(f"await _aclose({it})" if is_async else f"_close({it})")
        if traced:
            w.depth -= 1
        if sem is not None:
            w.depth -= 1
            with w.block("finally:"):
                w(f"{sem}.release()")

    def _gen_fail(self, w: Writer, st: StageIR, idx: str) -> None:
        if self.mode == "traced":
            w(f"rt.fail({st.qualname!r}, {idx}, exc)")
            if self._needs_var(st):  # a failed generator skips what waits for its stream
                w(f"{self.done[st.name]} = _SKIPPED")
        else:
            w(f"raise _op_error({st.qualname!r}, {idx}, exc) from exc")

    def _dispatch(self, w: Writer, region: RegionIR, child: Ctx, tasks: bool, frame_fn: str,
                  window: str, group: str, counter: str, var: str, span: str) -> None:
        if not tasks:
            self.region(w, region, child)
            return
        w(f"await {window}.acquire()")
        args = f"{counter}, {var}" + (f", {span}" if self.mode == "traced" else "")
        w(f"{group}.create_task({frame_fn}({args}))")

    # ------------------------------------------------------------------ loops

    def _loop(self, w: Writer, st: StageIR, ctx: Ctx) -> None:
        assert st.body is not None and st.body.loop is not None
        var = self.out[st.name]
        bound = {a.name: self._arg(a.kind, a.node, a.key, a.ordered, a.literal) for a in st.args}
        state = dict(st.body.loop.state)
        init = ", ".join([*(f"{k!r}: {bound.get(k, v)}" for k, v in state.items()),
                          *(f"{k!r}: {v}" for k, v in bound.items() if k not in state)])
        if st.inline_loop and self.mode == "fast" and _is_sync_fn(st.body, "fast"):
            self._loop_inlined(w, st, ctx, var, bound, state)
            self._publish_after(w, st, var, ctx)
            return
        self._nested(st.body)
        if st.inline_loop:
            self._loop_code(w, st, ctx, var, "{" + init + "}")
        else:
            fn = self.names.loop_fn(st, self.scope, self.mode)
            is_async = not _is_sync_fn(st.body, self.mode) or self.mode == "traced"
            lw = Writer()
            params = f"rt: {self._rt_type}, idx: tuple[int, ...], "
            params += "span: str, " if self.mode == "traced" else ""
            params += "state: dict[str, Any]"
            lw(f"# {where(st.loc)}: loop {st.qualname!r}")
            with lw.block(f"{'async ' if is_async else ''}def {fn}({params}) -> dict[str, Any]:"):
                self._loop_code(lw, st, Ctx(), "out", "state", in_function=True)
                lw("return out")
            self.extra.append(lw.lines)
            call = f"{fn}(rt, {ctx.idx}, "
            call += f"{ctx.span}, " if self.mode == "traced" else ""
            call += "{" + init + "})"
            if self._needs_var(st):
                w(f"{var} = {'await ' if is_async else ''}{call}")
            else:
                w(f"{'await ' if is_async else ''}{call}")
        self._publish_after(w, st, var, ctx)

    def _loop_inlined(self, w: Writer, st: StageIR, ctx: Ctx, var: str, bound: dict[str, str],
                      literals: dict[str, str]) -> None:
        """The body's code inside a ``while``, its state in local variables (fast path)."""
        assert st.body is not None and st.body.loop is not None
        loop = st.body.loop
        keys = [*literals, *(k for k in bound if k not in literals)]
        local = {k: self.ns.fresh(f"{st.name}_{k}") for k in keys}
        for k in keys:
            w(f"{local[k]} = {bound.get(k, literals.get(k))}")
        until = until_text(loop.until, lambda name: local[name],
                           "{" + ", ".join(f"{k!r}: {local[k]}" for k in keys) + "}")
        limit = loop.max_iterations
        with w.block(f"for _ in range({limit}):  # max_iterations"):
            w(f"# {where(st.body.loc)}: loop body {st.qualname!r}, inlined")
            inner = ScopeWriter(self.module, st.body, self.mode, self.names, ns=self.ns,
                                inputs={k: local[k] for k in st.body.reads})
            exprs = inner.inline_into(w, ctx)
            self.extra += inner.extra
            for r in st.body.results:
                w(f"{local[r.key]} = {exprs[r.key]}")
            with w.block("try:"):  # noqa: SIM117 - each block is a level of generated code
                with w.block(f"if {until}:"):
                    w("break")
            with w.block("except Exception as exc:"):
                w(f"raise _op_error({st.qualname!r}, {ctx.idx}, exc) from exc")
        with w.block("else:"):
            w(f"raise _loop_limit({st.qualname!r}, {limit})")
        if self._needs_var(st):
            w(f"{var} = {{{', '.join(f'{k!r}: {local[k]}' for k in keys)}}}")

    def _loop_code(self, w: Writer, st: StageIR, ctx: Ctx, var: str, init: str,
                   in_function: bool = False) -> None:
        assert st.body is not None and st.body.loop is not None
        loop = st.body.loop
        ns = self.ns if not in_function else self.names.ns.child()
        state = ns.fresh(f"{st.name}_state") if init != "state" else "state"
        n = ns.fresh(f"{st.name}_iteration")
        stop = ns.fresh(f"{st.name}_stop")
        body = self.names.scope_fn(st.body, self.mode)
        sync_body = _is_sync_fn(st.body, self.mode)
        until = until_text(loop.until, lambda name: f"{state}[{name!r}]", state)
        limit = loop.max_iterations
        if init != "state":
            w(f"{state}: dict[str, Any] = {init}")
        w(f"{n} = 0")
        if self.mode == "fast":
            with w.block("while True:"):
                w(f"{n} += 1")
                w(f"{state}.update({'' if sync_body else 'await '}{body}(rt, {ctx.idx}, "
                  f"dict({state})))")
                with w.block("try:"):
                    w(f"{stop} = {until}")
                with w.block("except Exception as exc:"):
                    w(f"raise _op_error({st.qualname!r}, {ctx.idx}, exc) from exc")
                with w.block(f"if {stop}:"):
                    w("break")
                with w.block(f"if {n} >= {limit}:"):
                    w(f"raise _loop_limit({st.qualname!r}, {limit})")
            if in_function or self._needs_var(st):
                w(f"{var} = {state}")
            return
        errors = ns.fresh(f"{st.name}_errors")
        keep = in_function or self._needs_var(st)
        if keep:
            w(f"{var} = _SKIPPED")
        with w.block("while True:"):
            w(f"{n} += 1")
            w(f"{errors} = len(rt.errors)")
            step = ns.fresh(f"{st.name}_step")
            w(f"{step} = await {body}(rt, {ctx.idx}, {ctx.span}, dict({state}))")
            with w.block(f"if len(rt.errors) > {errors}:"):
                w("break")
            w(f"{state}.update({step})")
            with w.block("try:"):
                w(f"{stop} = {until}")
            with w.block("except Exception as exc:"):
                w(f"rt.fail({st.qualname!r}, {ctx.idx}, exc)")
                w("break")
            with w.block(f"if {stop}:"):
                if keep:
                    w(f"{var} = {state}")
                w("break")
            with w.block(f"if {n} >= {limit}:"):
                w(f"rt.fail({st.qualname!r}, {ctx.idx}, _loop_limit({st.qualname!r}, {limit}))")
                w("break")


def _mentions(lines: list[str], name: str) -> bool:
    """Whether generated ``lines`` use the identifier ``name``."""
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    return any(pattern.search(line) for line in lines)
