"""The triggers component."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

__all__ = ["triggers_ctx"]


async def triggers_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start and stop the triggers component's background work. TODO(triggers)."""
    yield
