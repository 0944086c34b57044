"""Routes: backup. TODO: filled in by its issue."""

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()
