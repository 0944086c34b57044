"""The upload-time check of a script's source: it compiles and defines `handle(ctx)`."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import sys

from picloud.affinity import allowed_cpus
from picloud.errors import BadRequest

__all__ = ["check_source", "check_source_off_loop"]

# compile() holds the GIL for its whole run (~0.5 s for 256 KiB on a fast core), so a
# thread does not keep the event loop going: larger sources are checked in a child process.
INLINE_BYTES = 4 * 1024
_CHILD_TIMEOUT_S = 60.0
_REFUSED = 3


async def check_source_off_loop(script_id: str, source: str) -> None:
    """`check_source` without stalling the event loop on a large source."""
    if len(source) <= INLINE_BYTES:
        check_source(script_id, source)
        return
    verdict = await _check_in_child(script_id, source)
    if verdict is None:  # the child could not run: check here rather than fail the deploy
        check_source(script_id, source)
    elif verdict:
        raise BadRequest(verdict)


async def _check_in_child(script_id: str, source: str) -> str | None:
    """'' when the source passes, the refusal's message, or None if the child failed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PICLOUD_", "NOTIFY_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "picloud.manager.source",
        script_id,
        ",".join(map(str, sorted(allowed_cpus()))),  # not the loop's pinned CPU (affinity)
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        async with asyncio.timeout(_CHILD_TIMEOUT_S):
            out, _ = await proc.communicate(source.encode("utf-8", "surrogatepass"))
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise BadRequest("line 1: the source took too long to compile") from None
    if proc.returncode == 0:
        return ""
    if proc.returncode == _REFUSED:
        return out.decode("utf-8", "replace")
    return None


def check_source(script_id: str, source: str) -> None:
    """BadRequest naming the line when `source` does not compile or has no `handle(ctx)`."""
    filename = f"<script {script_id}>"
    try:
        # Parse once: compiling the tree finds what only the compiler sees ('return'
        # outside a function, ...) without parsing the text a second time.
        tree = ast.parse(source, filename)
        compile(tree, filename, "exec", dont_inherit=True)
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
    value = getattr(handle, "value", None)
    if isinstance(handle, ast.Assign | ast.AnnAssign) and isinstance(value, _NOT_CALLABLE):
        # `handle = make_handler()` may well be callable; `handle = 3` never is.
        raise BadRequest(f"line {handle.lineno}: handle must be a function, not a literal")


_NOT_CALLABLE = (
    ast.Constant, ast.JoinedStr, ast.List, ast.Tuple, ast.Dict, ast.Set,
    ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp,
)  # fmt: skip


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


def _main() -> int:
    """The child: the source on stdin; exit 0 if it passes, else the message and 3."""
    if len(sys.argv) > 2 and sys.argv[2]:
        with contextlib.suppress(OSError, ValueError):
            os.sched_setaffinity(0, {int(cpu) for cpu in sys.argv[2].split(",")})
    source = sys.stdin.buffer.read().decode("utf-8", "surrogatepass")
    try:
        check_source(sys.argv[1], source)
    except BadRequest as exc:
        sys.stdout.write(exc.message)
        return _REFUSED
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
