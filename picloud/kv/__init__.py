"""The kv component."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

__all__ = ["kv_ctx"]


async def kv_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start and stop the kv component's background work. TODO(kv)."""
    yield
