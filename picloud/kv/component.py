"""The KV component in the daemon: the `KV` app key, its cleanup context and TTL purge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from picloud.kv.api import KvService
from picloud.kv.service import SqliteKv
from picloud.state import DB, SETTINGS

__all__ = ["KV", "PURGE_INTERVAL_S", "kv_ctx"]

log = logging.getLogger(__name__)

KV = web.AppKey("kv", KvService)
# Expired keys are hidden at once by every read; this only gives their space back.
PURGE_INTERVAL_S = 1.0


async def kv_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the KV service and run the background purge of expired keys."""
    settings = app[SETTINGS]
    service = SqliteKv(
        app[DB],
        settings.kv_max_value_bytes,
        settings.kv_app_quota_bytes,
        settings.kv_read_cache_bytes,
    )
    app[KV] = service
    task = asyncio.create_task(_purge_forever(service), name="kv-purge")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _purge_forever(service: KvService) -> None:
    while True:
        await asyncio.sleep(PURGE_INTERVAL_S)
        try:
            purged = await service.purge_expired()
        except Exception:
            log.exception("kv: purging expired keys failed; retrying later")
            continue
        if purged:
            log.debug("kv: purged %d expired keys", purged)
