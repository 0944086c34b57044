"""Route: the JSON 404 (or 405) for every unknown /api path; registered last."""

from __future__ import annotations

from aiohttp import web

from picloud.api.common import doc
from picloud.errors import NotFound, PiCloudError

__all__ = ["routes"]

routes = web.RouteTableDef()


class MethodNotAllowed(PiCloudError):
    status, code = 405, "bad_request"


@routes.route("*", "/api/{tail:.*}")
@doc(
    "Any other /api path: 404 in the JSON error shape (never the dashboard).",
    status=404,
    auth="none",
)
async def api_not_found(request: web.Request) -> web.Response:
    # This catch-all matches before aiohttp can answer 405 for a known path with another
    # method, so ask the other resources whether the path exists at all.
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is request.match_info.route.resource:
            continue
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    if allowed:
        raise MethodNotAllowed(
            f"method {request.method} is not allowed on {request.path}",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    raise NotFound(f"no such route: {request.path}")
