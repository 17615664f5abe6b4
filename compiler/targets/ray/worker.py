"""One function per task-running unit: the code a Ray worker executes.

A call unit's function calls its op (or every op of a fused chain, in order) and
returns its report plus one object per output key the graph reads, so each
consumer receives exactly the values it needs as object refs. A generator
unit's function is a Ray streaming generator (``templates/ray/worker.py.j2``:
``_frames`` / ``_aframes``). Op calls are written out as plain keyword calls
(``double(value=value)``), so ``mypy --strict`` checks the constants against the
ops' signatures like in the local module.
"""

from __future__ import annotations

import keyword
import os

from compiler.ir.nodes import StageIR, literal_text
from compiler.targets.ray.source import LIMIT, Call, Code, Names, comment, ident, lines, literal
from compiler.targets.ray.units import Unit, argument_key, task_arguments

SIGNATURE = "(want: bool, layout: tuple[_Layout, ...], *flat: Any)"
# Names every stage function binds; module-level code must not take them (they would shadow).
STAGE_LOCALS = frozenset({"want", "layout", "flat", "calls", "failed"})


def stage_function(unit: Unit, fn_name: str, module_names: frozenset[str]) -> str:
    """The source of ``fn_name``, the function one Ray task of ``unit`` runs."""
    local = Names(module_names | STAGE_LOCALS)
    slots = {argument_key(arg): local.fresh(arg.key if arg.kind == "input"
                                            else f"{arg.node}_{arg.key}")
             for arg in task_arguments(unit)}
    outs: dict[str, str] = {}  # chain member -> the local holding its outputs

    def op_call(stage: StageIR) -> Call:
        assert stage.function is not None
        kwargs: list[tuple[str, object]] = []
        extra: list[object] = []
        for arg in stage.args:
            if arg.kind == "const":
                value = literal(literal_text(arg.value)).text
            elif arg.kind == "value" and arg.node in outs:
                value = f"{outs[arg.node]}[{arg.key!r}]"
            else:
                value = slots[argument_key(arg)]
            # The parser reads identifiers as NFKC: only ASCII names are written as keywords.
            if arg.name.isascii() and arg.name.isidentifier() and not keyword.iskeyword(arg.name):
                kwargs.append((arg.name, Code(value)))
            else:  # a keyword that is not an identifier: only ** can pass it
                extra.append(Code(f"**{{{arg.name!r}: {value}}}"))
        return Call(Code(f"lambda: {ident(stage.function).text}"), tuple(extra), tuple(kwargs))

    head = unit.head
    where = f"{os.path.basename(head.loc.file)}:{head.loc.line}"
    what = " >> ".join(s.qualname for s in unit.stages)
    note = {"gen": " (a generator: a Ray streaming generator)",
            "asyncgen": " (an async generator: a Ray streaming generator)"}.get(head.flavor, "")
    if len(unit.stages) > 1:
        note = " (a fused chain: one task per frame)"
    out = [f"# {comment(where)}: {comment(what)}{note}"]
    returns = "Iterator[object]" if head.kind == "gen" else "object"
    signature = f"def {ident(fn_name).text}{SIGNATURE} -> {returns}:"
    if len(signature) > LIMIT:
        opening = f"def {fn_name}("
        signature = (f"{opening}want: bool, layout: tuple[_Layout, ...],\n"
                     f"{' ' * len(opening)}*flat: Any) -> {returns}:")
    out.append(signature)
    names = list(slots.values())
    if len(names) == 1:
        out.append(f"    ({names[0]},) = _unpack(layout, flat)")
    elif names:
        out += lines(Code("_unpack(layout, flat)"), 4, f"{', '.join(names)} = ")

    if head.kind == "gen":
        helper = "_aframes" if head.flavor == "asyncgen" else "_frames"
        out += lines(Call(Code(f"yield from {helper}"),
                          (Code("want"), head.qualname, head.needed, op_call(head))), 4)
        return "\n".join(out)

    out.append("    calls = _Calls(want)")
    out.append("    try:")
    for stage in unit.stages:
        call = op_call(stage)  # before ``outs`` learns this stage: it reads earlier ones
        var = local.fresh(f"{stage.name}_out")
        method = "calls.acall" if stage.flavor == "async" else "calls.call"
        out += lines(Call(Code(method), (stage.qualname, stage.needed, call)), 8, f"{var} = ")
        outs[stage.name] = var
    keys = unit.tail.needed
    out.append("    except _Failed as failed:")
    out += _returns(Code("calls.report(failed)"), [Code("None") for _key in keys], 8)
    tail = outs[unit.tail.name]
    out += _returns(Code("calls.report()"), [Code(f"{tail}[{key!r}]") for key in keys], 4)
    return "\n".join(out)


def _returns(report: Code, values: list[Code], indent: int) -> list[str]:
    """``return report, *values``: with ``num_returns=1`` Ray wants the report alone."""
    if not values:
        return lines(report, indent, "return ")
    return lines((report, *values), indent, "return ")
