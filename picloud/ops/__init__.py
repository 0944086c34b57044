"""The ops component."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

__all__ = ["ops_ctx"]


async def ops_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start and stop the ops component's background work. TODO(ops)."""
    yield
