"""Route: the JSON 404 for every unknown /api path (registered last, so it never shadows)."""

from __future__ import annotations

from aiohttp import web

from picloud.api.common import doc
from picloud.errors import NotFound

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.route("*", "/api/{tail:.*}")
@doc("Any other /api path: 404 in the JSON error shape (never the dashboard).", auth="none")
async def api_not_found(request: web.Request) -> web.Response:
    raise NotFound(f"no such route: {request.path}")
