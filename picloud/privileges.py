"""Dropping root after the zygote has started (the appliance runs the daemon as root first)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

__all__ = ["privileges_ctx"]


async def privileges_ctx(app: web.Application) -> AsyncIterator[None]:
    """Drop to the service user, when started as root. TODO(appliance)."""
    yield
