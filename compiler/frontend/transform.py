"""The edits the extractor makes to copied code, as libcst transformers.

Only three kinds of edit, so that the user's body text survives intact:
removing ``@op`` decorators, renaming module-level names that collide in the
generated module, and completing signatures so ``mypy --strict`` accepts them.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import libcst as cst

from compiler.frontend.modinfo import annotations_in
from compiler.frontend.types import (
    ANY,
    explicit_generics,
    has_bare_generics,
    needed_imports,
    own_nodes,
)


def strip_decorators(node: cst.BaseStatement,
                     is_op: Callable[[cst.Decorator], bool]) -> cst.BaseStatement:
    """Remove the ``@op`` / ``@op(...)`` decorators of a top-level ``def``; keep the others."""
    if not isinstance(node, cst.FunctionDef):
        return node
    kept = [d for d in node.decorators if not is_op(d)]
    if len(kept) == len(node.decorators):
        return node
    # Comments written above the removed first decorator move onto the def.
    leading = list(node.leading_lines)
    if node.decorators and not kept:
        leading += list(node.decorators[0].leading_lines)
        return node.with_changes(decorators=(), leading_lines=leading)
    return node.with_changes(decorators=kept)


def decorator_path(decorator: cst.Decorator) -> str | None:
    """``@op`` -> "op", ``@operonx.core.op(name=...)`` -> "operonx.core.op"; else None."""
    expr: cst.BaseExpression = decorator.decorator
    if isinstance(expr, cst.Call):
        expr = expr.func
    parts: list[str] = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if not isinstance(expr, cst.Name):
        return None
    parts.append(expr.value)
    return ".".join(reversed(parts))


class RenameGlobals(cst.CSTTransformer):
    """Rename references to module-level names (never attributes, keywords or parameters).

    The caller guarantees (via symtable) that no renamed name is also a local of
    some nested scope, so every ``Name`` node spelled like it means the global.
    """

    def __init__(self, renames: Mapping[str, str]) -> None:
        super().__init__()
        self.renames = renames

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        new = self.renames.get(original.value)
        return updated.with_changes(value=new) if new else updated

    # Names that are not variable references: restore them after leave_Name renamed them.
    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        return updated.with_changes(attr=original.attr)

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated.with_changes(keyword=original.keyword)

    def leave_Param(self, original: cst.Param, updated: cst.Param) -> cst.Param:
        return updated.with_changes(name=original.name)

    def leave_ImportAlias(self, original: cst.ImportAlias,
                          updated: cst.ImportAlias) -> cst.ImportAlias:
        return original


def needs_annotating(source: str | ast.AST) -> bool:
    """Whether :class:`Annotator` would change ``source`` (or its parsed tree): some ``def``
    lacks a parameter or return annotation, or some annotation has a bare generic. Checked
    with :mod:`ast`, which is much faster than a libcst visit: most ops are fully annotated
    already."""
    tree = ast.parse(source) if isinstance(source, str) else source
    return any(annotation is None or has_bare_generics(annotation)
               for annotation in annotations_in(tree))


@dataclass
class Annotator(cst.CSTTransformer):
    """Complete every ``def``'s signature for ``mypy --strict``; leave bodies alone.

    A missing parameter annotation becomes ``Any``; a missing return annotation
    is ``top_return`` for the top-level function (the op's synthesized one) and
    inferred from the function's shape for helpers and nested functions. Bare
    generics (``list``) get explicit ``Any`` arguments. ``used`` collects the
    names of ``typing`` / ``collections.abc`` the added text needs.
    """

    top_return: str | None = None
    used: set[str] = field(default_factory=set)
    _depth: int = 0
    _class_depth: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._class_depth.append(self._depth + 1)

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self._class_depth.pop()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._depth += 1

    def leave_FunctionDef(self, original: cst.FunctionDef,
                          updated: cst.FunctionDef) -> cst.FunctionDef:
        is_method = bool(self._class_depth) and self._class_depth[-1] == self._depth
        is_top = self._depth == 1
        self._depth -= 1
        params = self._annotate_params(updated.params, is_method and not _is_static(original))
        returns = updated.returns
        if returns is None:
            text = self.top_return if is_top and self.top_return else _helper_return(original)
            returns = cst.Annotation(cst.parse_expression(self._note(text)))
        return updated.with_changes(params=params, returns=returns)

    def leave_Annotation(self, original: cst.Annotation,
                         updated: cst.Annotation) -> cst.Annotation:
        text = cst.Module([]).code_for_node(updated.annotation)
        fixed = explicit_generics(text)
        if fixed == ast.unparse(ast.parse(text, mode="eval")):
            return updated
        return updated.with_changes(annotation=cst.parse_expression(self._note(fixed)))

    def _annotate_params(self, params: cst.Parameters, skip_first: bool) -> cst.Parameters:
        def complete(param: cst.Param) -> cst.Param:
            if param.annotation is not None:
                return param
            self.used.add(ANY)
            annotated = param.with_changes(annotation=cst.Annotation(cst.Name(ANY)))
            # PEP 8: an annotated default is spelled ``x: Any = 1``, not ``x=1``.
            return annotated.with_changes(equal=cst.AssignEqual()) if param.default else annotated

        positional = list(params.posonly_params) + list(params.params)
        first = positional[0] if skip_first and positional else None

        def each(group: Sequence[cst.Param]) -> list[cst.Param]:
            return [p if p is first else complete(p) for p in group]

        star = params.star_arg
        return params.with_changes(
            posonly_params=each(params.posonly_params), params=each(params.params),
            kwonly_params=each(params.kwonly_params),
            star_arg=complete(star) if isinstance(star, cst.Param) else star,
            star_kwarg=complete(params.star_kwarg) if params.star_kwarg else None)

    def _note(self, annotation: str) -> str:
        """Record the typing names a synthesized annotation needs."""
        for line in needed_imports(annotation):
            self.used.add(line.rsplit(" ", 1)[1])
        return annotation


def _is_static(node: cst.FunctionDef) -> bool:
    return any(decorator_path(d) == "staticmethod" for d in node.decorators)


def _helper_return(node: cst.FunctionDef) -> str:
    """A return annotation for a helper: exact where its shape says, else ``Any``."""
    tree = ast.parse(_dedented(node)).body[0]
    assert isinstance(tree, (ast.FunctionDef, ast.AsyncFunctionDef))
    own = own_nodes(tree, ast.AST)
    is_async = isinstance(tree, ast.AsyncFunctionDef)
    returns = [n for n in own if isinstance(n, ast.Return)]
    if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in own):
        # ``Iterator`` types a ``yield`` expression's value as None and allows no
        # ``return value``: state it only when the generator uses neither.
        statements = {id(n.value) for n in own if isinstance(n, ast.Expr)}
        plain = all(isinstance(n, ast.Yield) and id(n) in statements
                    for n in own if isinstance(n, (ast.Yield, ast.YieldFrom)))
        if not plain or any(r.value is not None for r in returns):
            return ANY
        return "AsyncIterator[Any]" if is_async else "Iterator[Any]"
    if all(r.value is None or (isinstance(r.value, ast.Constant) and r.value.value is None)
           for r in returns):
        return "None"
    return ANY


def _dedented(node: cst.FunctionDef) -> str:
    return cst.Module(body=[node.with_changes(decorators=(), leading_lines=())]).code

