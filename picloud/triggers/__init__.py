"""The triggers component: the dispatcher of KV and cron events, started with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from picloud.executor import EXECUTOR
from picloud.state import DB, SETTINGS
from picloud.triggers.dispatcher import Dispatcher, Limits

__all__ = ["DISPATCHER", "Dispatcher", "triggers_ctx"]

log = logging.getLogger(__name__)

DISPATCHER = web.AppKey("dispatcher", Dispatcher)


async def triggers_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the dispatcher (woken by every commit) and stop it before the store closes."""
    executor = app.get(EXECUTOR)
    if executor is None:
        log.warning("triggers: no executor; events wait in the outbox until there is one")
    admission = getattr(executor, "admission", None)  # the in-process executor's bounds
    limits = Limits.derive(
        app[SETTINGS].trigger_concurrency,
        getattr(admission, "max_total", None),
        getattr(admission, "max_per_app", None),
    )
    log.info(
        "triggers: up to %d runs at once, %d per app, %d per trigger",
        limits.total,
        limits.per_app,
        limits.per_trigger,
    )
    dispatcher = Dispatcher(app[DB], executor, limits)
    app[DISPATCHER] = dispatcher
    app[DB].on_commit(dispatcher.wake)
    task = asyncio.create_task(dispatcher.run(), name="trigger-dispatcher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await dispatcher.stop()
