"""The executor role: the zygote, sandboxed workers, and the broker for SDK calls."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from picloud.executor.api import Executor, Job, Outcome, ScriptRef, ScriptResponse

__all__ = [
    "EXECUTOR",
    "Executor",
    "Job",
    "Outcome",
    "ScriptRef",
    "ScriptResponse",
    "executor_ctx",
    "zygote_ctx",
]

EXECUTOR = web.AppKey("executor", Executor)


async def zygote_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the zygote (before the store and any secret are opened). TODO(executor)."""
    yield


async def executor_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the worker pool and invocation recorder. TODO(executor)."""
    from picloud.state import RUNTIME

    app[RUNTIME].pool_ready = True
    yield
    app[RUNTIME].pool_ready = False
