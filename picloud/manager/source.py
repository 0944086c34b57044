"""The upload-time check of a script's source: it compiles and defines `handle(ctx)`."""

from __future__ import annotations

import ast

from picloud.errors import BadRequest

__all__ = ["check_source"]


def check_source(script_id: str, source: str) -> None:
    """BadRequest naming the line when `source` does not compile or has no `handle(ctx)`."""
    filename = f"<script {script_id}>"
    try:
        compile(source, filename, "exec", dont_inherit=True)
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise BadRequest(f"line {exc.lineno or 1}: {exc.msg}") from None
    except ValueError as exc:  # NUL bytes, on 3.11
        raise BadRequest(f"line 1: {exc}") from None
    except (RecursionError, MemoryError):
        raise BadRequest("line 1: the source is nested too deeply to compile") from None
    _check_handle(tree)


def _check_handle(tree: ast.Module) -> None:
    handle: ast.stmt | None = None
    for node in tree.body:
        if _defines_handle(node):
            handle = node
    if handle is None:
        raise BadRequest("line 1: the script defines no top-level function handle(ctx)")
    if isinstance(handle, ast.AsyncFunctionDef):
        raise BadRequest(f"line {handle.lineno}: handle must be a plain def, not async def")
    if isinstance(handle, ast.FunctionDef) and not _takes_one_argument(handle.args):
        raise BadRequest(f"line {handle.lineno}: handle must accept one argument, ctx")


def _defines_handle(node: ast.stmt) -> bool:
    """A top-level def, assignment or import that binds the name `handle`."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return node.name == "handle"
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == "handle" for t in node.targets)
    if isinstance(node, ast.AnnAssign | ast.AugAssign):
        return isinstance(node.target, ast.Name) and node.target.id == "handle"
    if isinstance(node, ast.Import | ast.ImportFrom):
        return any((a.asname or a.name) == "handle" for a in node.names)
    return False


def _takes_one_argument(args: ast.arguments) -> bool:
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    if required > 1:
        return False
    required_kwonly = sum(1 for d in args.kw_defaults if d is None)
    return (bool(positional) or args.vararg is not None) and required_kwonly == 0
