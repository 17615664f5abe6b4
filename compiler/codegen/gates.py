"""Branches in generated code (SPEC §8): decisions, the gates of skippable stages, presence.

The code mirrors the Engine's gates (``operonx.engine.gates``) through the
lowered IR (``compiler.ir.branches``):

* a stage a branch may skip starts as the ``_SKIPPED`` marker and runs only when
  its gate lets it; a read that may find nothing tests ``key in producer_out``
  (a marker holds no key), a stream that may not have started tests its
  generator's marker;
* a branch is decided by the first gate that asks, once per instance of its
  context, into a local (``B``): ``_UNDECIDED``, an arm's index, ``_NO_ARM`` or
  ``_FAILED_ARM`` (collect mode). When a target runs in another function than
  the one its branch lives in (a task, a deeper frame), the decision is kept in a
  one-item list, which nested functions can update.
* the conditions are plain Python over the values the branch reads, in an
  ``if``/``elif`` chain, never an interpreter.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from compiler.codegen import pyast as py
from compiler.codegen.pyast import Ident
from compiler.ir.nodes import BranchIR, GateIR, Presence, StageIR
from compiler.ir.printer import where
from operonx.ir import condition
from operonx.ir.model import Const, InputRef, OutputRef

if TYPE_CHECKING:
    from compiler.codegen.scopes import Ctx, ScopeWriter

Stmts = list[ast.stmt]
RUN, SKIP, FAIL = 0, 1, 2  # a general gate's verdict


class Decision:
    """Where one branch's decision lives in generated code."""

    def __init__(self, branch: BranchIR, var: Ident, in_cell: bool) -> None:
        self.branch = branch
        self.var = var
        self.in_cell = in_cell  # a one-item list: targets run in nested functions

    def load(self) -> ast.expr:
        return py.expr("B[0]", B=self.var) if self.in_cell else py.name(self.var)

    def store(self, value: ast.expr) -> Stmts:
        if self.in_cell:
            return py.stmts("B[0] = V", B=self.var, V=value)
        return py.stmts("B = V", B=self.var, V=value)

    def init(self) -> Stmts:
        if self.in_cell:
            return py.stmts("B = [_UNDECIDED]", B=self.var)
        return py.stmts("B = _UNDECIDED", B=self.var)


class Gates:
    """The branch-related code of one scope function (and the scopes inlined into it)."""

    def __init__(self, writer: ScopeWriter) -> None:
        self.w = writer
        self.decisions: dict[str, Decision] = {}
        # Straight-line code of the current region instance (local decisions only): branches
        # some gate may have decided, and those a gate surely decided.
        self.asked: set[str] = set()
        self.decided: set[str] = set()

    # ---------------------------------------------------------------- presence

    def present(self, p: Presence) -> ast.expr:
        """True when the value (or stream) ``p`` describes is there: its producer ran (a
        failed one stops its readers before they read), and a sub-graph, which may leave a
        key out, has the key."""
        w = self.w
        if p.key is not None and w.scope.stage(p.stage).kind == "graph":
            return py.expr("K in V", K=py.lit(p.key), V=w.out[p.stage])
        return py.expr("M is not _SKIPPED", M=w.marker_of(p.stage))

    def all_present(self, checks: list[Presence]) -> ast.expr | None:
        tests = [self.present(p) for p in dict.fromkeys(checks)]
        if not tests:
            return None
        return tests[0] if len(tests) == 1 else ast.BoolOp(op=ast.And(), values=tests)

    # -------------------------------------------------------------- decisions

    def region_init(self, context: tuple[str, ...], in_nested: set[str]) -> Stmts:
        """The undecided decisions of the branches decided per instance of ``context``.

        ``in_nested``: the stages of this region written inside nested functions.
        """
        out: Stmts = []
        for branch in self.w.scope.branches:
            if branch.context != context:
                continue
            in_cell = any(self.w.scope.stage(t).context != context or t in in_nested
                          for _c, targets in branch.arms for t in targets)
            var = self.w.fn.ns.fresh(f"{branch.name}_arm")
            decision = self.decisions[branch.name] = Decision(branch, var, in_cell)
            self.asked.discard(branch.name)
            self.decided.discard(branch.name)
            out += [py.comment(f"{where(branch.loc)}: {branch.name}: {branch.text}"),
                    *decision.init()]
        return out

    def decide_if_needed(self, branch_name: str, ctx: Ctx, surely: bool) -> Stmts:
        """Decide the branch here unless a target of this instance already did.

        ``surely``: this code runs whenever the region instance does (it is not under an
        ``if``), so later gates of the instance can count on the decision.
        """
        decision = self.decisions[branch_name]
        if decision.in_cell:
            return py.stmts("if B == _UNDECIDED:\n    DECIDE", B=decision.load(),
                            DECIDE=self._decide(decision, ctx))
        if branch_name in self.decided:
            return []
        first = branch_name not in self.asked
        self.asked.add(branch_name)
        if surely:
            self.decided.add(branch_name)
        if first:  # nothing before this point of the instance asked: it is undecided here
            return self._decide(decision, ctx)
        return py.stmts("if B == _UNDECIDED:\n    DECIDE", B=decision.load(),
                        DECIDE=self._decide(decision, ctx))

    def _decide(self, decision: Decision, ctx: Ctx) -> Stmts:
        branch, w = decision.branch, self.w
        last = branch.arms[-1]
        otherwise = py.lit(len(branch.arms) - 1) if last[0] is None else py.expr("_NO_ARM")
        conditional = [(i, cond) for i, (cond, _t) in enumerate(branch.arms) if cond is not None]
        tried: Stmts
        if len(conditional) == 1:  # one test: ``B = 0 if test else otherwise``
            (i, cond), = conditional
            tried = decision.store(ast.IfExp(test=self.condition(cond), body=py.lit(i),
                                             orelse=otherwise))
        else:  # the first arm whose condition holds, as if/elif/else
            chain: Stmts = decision.store(otherwise)
            for i, cond in reversed(conditional):
                chain = [ast.If(test=self.condition(cond), body=decision.store(py.lit(i)),
                                orelse=chain)]
            tried = chain
        index = ctx.index_at(len(branch.context))
        if w.mode == "fast":
            failed = py.stmts("raise _branch_error(NAME, IDX, EXC, TEXT) from EXC",
                              NAME=py.lit(branch.qualname), IDX=index, EXC=w.fn.exc,
                              TEXT=py.lit(branch.text))
        else:
            failed = py.stmts("RT.fail_branch(NAME, IDX, EXC, TEXT)", RT=w.fn.rt,
                              NAME=py.lit(branch.qualname), IDX=index, EXC=w.fn.exc,
                              TEXT=py.lit(branch.text)) + decision.store(py.expr("_FAILED_ARM"))
        decide = py.stmts("try:\n    TRIED\nexcept _OP_FAILURES as EXC:\n    FAILED",
                          TRIED=tried, EXC=w.fn.exc, FAILED=failed)
        there = self.all_present(list(branch.absent))
        if there is None:
            return decide
        return py.stmts("if THERE:\n    DECIDE\nelse:\n    NO_ARM", THERE=there, DECIDE=decide,
                        NO_ARM=decision.store(py.expr("_NO_ARM")))

    def condition(self, cond: condition.Condition) -> ast.expr:
        """The condition as an expression, evaluated as the Engine evaluates its tree."""
        w = self.w

        def operand(x: condition.Operand) -> ast.expr:
            if isinstance(x, Const):
                return py.lit(x.value)
            if isinstance(x, InputRef):
                return py.name(w.inp[x.key])
            assert isinstance(x, OutputRef)
            return w.value_of(x.node, x.key)

        def build(c: condition.Condition) -> ast.expr:
            match c:
                case condition.Compare(op=op, left=left, right=right):
                    return ast.Compare(left=operand(left), ops=[_COMPARE[op]()],
                                       comparators=[operand(right)])
                case condition.IsIn(operand=x, values=values):
                    return ast.Compare(left=operand(x), ops=[ast.In()],
                                       comparators=[py.lit(tuple(values))])
                case condition.IsNone(operand=x):
                    return ast.Compare(left=operand(x), ops=[ast.Is()],
                                       comparators=[py.lit(None)])
                case condition.Truth(operand=x):
                    return operand(x)
                case condition.AllOf(parts=parts):
                    return ast.BoolOp(op=ast.And(), values=[build(p) for p in parts])
                case condition.AnyOf(parts=parts):
                    return ast.BoolOp(op=ast.Or(), values=[build(p) for p in parts])
                case condition.Not(part=part):
                    inner = build(part)
                    if isinstance(inner, ast.Compare) and isinstance(
                            inner.ops[0], (ast.Eq, ast.NotEq)):
                        # ``not bool(a != b)``, which is ``not (a != b)`` exactly (ruff would
                        # have ``a == b``, which is not the same for every type)
                        inner = ast.Call(func=ast.Name(id="bool", ctx=ast.Load()),
                                         args=[inner], keywords=[])
                    return ast.UnaryOp(op=ast.Not(), operand=inner)
            raise AssertionError(f"not a condition: {c!r}")

        return build(cond)

    # ------------------------------------------------------------------ gates

    def guarded(self, st: StageIR, gate: GateIR, ctx: Ctx, body: Stmts, surely: bool) -> Stmts:
        """``body`` (the stage) behind its gate; what is left in the stage's marker says
        whether it was skipped (``_SKIPPED``) or failed with its branch (``_FAILED``).
        ``surely``: the gate's code runs whenever its region instance does."""
        w = self.w
        reads = [self._any_present(options) for options in gate.reads]
        reads_ok = reads[0] if len(reads) == 1 else (
            ast.BoolOp(op=ast.And(), values=reads) if reads else None)
        marker = w.marker_of(st.name)
        traced = w.mode == "traced"
        skipped = py.stmts("M = _SKIPPED", M=marker) if traced else []
        if not gate.edges:
            assert reads_ok is not None
            return py.stmts("if OK:\n    BODY\nelse:\n    SKIPPED", OK=reads_ok, BODY=body,
                            SKIPPED=skipped) if skipped else \
                py.stmts("if OK:\n    BODY", OK=reads_ok, BODY=body)
        only = gate.edges[0]
        if len(gate.edges) == 1 and only.source is None and only.branch is not None \
                and reads_ok is None:
            # The common shape: one arm's target after sources that always run.
            arm = self.decisions[only.branch].load()
            code = self.decide_if_needed(only.branch, ctx, surely)
            if traced:
                return code + py.stmts("""
                    if ARM == N:
                        BODY
                    elif ARM != _FAILED_ARM:
                        SKIPPED
                """, ARM=arm, N=py.lit(only.arm), BODY=body, SKIPPED=skipped)
            return code + py.stmts("if ARM == N:\n    BODY", ARM=arm, N=py.lit(only.arm),
                                   BODY=body)
        verdict = w.fn.ns.fresh(f"{st.name}_gate")
        edges: Stmts = []
        for i, edge in enumerate(gate.edges):
            tests: list[ast.expr] = []
            if i > 0:
                tests.append(py.expr("G == N", G=verdict, N=py.lit(SKIP)))
            if edge.source is not None:
                tests.append(py.expr("M is not _SKIPPED", M=w.marker_of(edge.source)))
            if edge.branch is None:
                then = py.stmts("G = N", G=verdict, N=py.lit(RUN))
            else:
                arm = self.decisions[edge.branch].load()
                then = self.decide_if_needed(edge.branch, ctx, surely and not tests
                                             and reads_ok is None) + py.stmts("""
                    if ARM == N:
                        G = RUN
                    elif ARM == _FAILED_ARM:
                        G = FAIL
                """, ARM=arm, N=py.lit(edge.arm), G=verdict, RUN=py.lit(RUN),
                    FAIL=py.lit(FAIL))
            if not tests:
                edges += then
            else:
                test = tests[0] if len(tests) == 1 else ast.BoolOp(op=ast.And(), values=tests)
                edges += py.stmts("if TEST:\n    THEN", TEST=test, THEN=then)
        code = py.stmts("G = N", G=verdict, N=py.lit(SKIP))
        code += py.stmts("if OK:\n    EDGES", OK=reads_ok, EDGES=edges) if reads_ok else edges
        if traced:
            return code + py.stmts("""
                if G == RUN:
                    BODY
                elif G == SKIP:
                    SKIPPED
            """, G=verdict, RUN=py.lit(RUN), SKIP=py.lit(SKIP), BODY=body, SKIPPED=skipped)
        return code + py.stmts("if G == RUN:\n    BODY", G=verdict, RUN=py.lit(RUN), BODY=body)

    def _any_present(self, options: tuple[Presence, ...]) -> ast.expr:
        tests = [self.present(p) for p in options]
        return tests[0] if len(tests) == 1 else ast.BoolOp(op=ast.Or(), values=tests)


_COMPARE: dict[str, type[ast.cmpop]] = {"==": ast.Eq, "!=": ast.NotEq, "<": ast.Lt,
                                         "<=": ast.LtE, ">": ast.Gt, ">=": ast.GtE}
