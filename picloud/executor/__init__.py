"""The executor role: the zygote, sandboxed workers, and the broker for SDK calls.

Kept import-light: the zygote (`python -m picloud.executor.zygote`) imports this
package and must not pull in aiohttp, nor even `api`'s dataclasses (~0.4 MiB in a
heap every worker inherits), so every name here loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from picloud.lazy import exports

if TYPE_CHECKING:
    from picloud.executor.api import Executor, Job, Outcome, ScriptRef, ScriptResponse
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

__getattr__ = exports(
    __name__,
    {
        "Executor": "picloud.executor.api",
        "Job": "picloud.executor.api",
        "Outcome": "picloud.executor.api",
        "ScriptRef": "picloud.executor.api",
        "ScriptResponse": "picloud.executor.api",
        "EXECUTOR": "picloud.executor.service",
        "SandboxExecutor": "picloud.executor.service",
        "executor_ctx": "picloud.executor.service",
        "zygote_ctx": "picloud.executor.service",
    },
)
