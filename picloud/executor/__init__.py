"""The executor role: the zygote, sandboxed workers, and the broker for SDK calls.

Kept import-light: the zygote (`python -m picloud.executor.zygote`) imports this
package and must not pull in aiohttp, so the daemon-side names load lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from picloud.executor.api import Executor, Job, Outcome, ScriptRef, ScriptResponse

if TYPE_CHECKING:
    from picloud.executor.service import EXECUTOR, SandboxExecutor, executor_ctx, zygote_ctx

__all__ = [
    "EXECUTOR",
    "Executor",
    "Job",
    "Outcome",
    "SandboxExecutor",
    "ScriptRef",
    "ScriptResponse",
    "executor_ctx",
    "zygote_ctx",
]

_LAZY = {"EXECUTOR", "SandboxExecutor", "executor_ctx", "zygote_ctx"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from picloud.executor import service

        return getattr(service, name)
    raise AttributeError(f"module 'picloud.executor' has no attribute {name!r}")
