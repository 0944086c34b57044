"""The executor role: the zygote, sandboxed workers, and the broker for SDK calls.

Kept import-light: the zygote (`python -m picloud.executor.zygote`) imports this
package and must not pull in aiohttp, nor even `api`'s dataclasses (~0.4 MiB in a
heap every worker inherits), so every name here loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

_HOME = {
    "Executor": "api",
    "Job": "api",
    "Outcome": "api",
    "ScriptRef": "api",
    "ScriptResponse": "api",
    "EXECUTOR": "service",
    "SandboxExecutor": "service",
    "executor_ctx": "service",
    "zygote_ctx": "service",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'picloud.executor' has no attribute {name!r}")
    return getattr(importlib.import_module(f"picloud.executor.{home}"), name)
