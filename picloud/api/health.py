"""Routes: /healthz and /version."""

from __future__ import annotations

from aiohttp import web

from picloud.api.common import doc, json_response
from picloud.state import DB, RUNTIME
from picloud.versions import API_VERSION, SDK_VERSION, WIRE_VERSION, product_version

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/healthz")
@doc("Readiness: `ok` when the store and the sandbox pool are up, else 503.", auth="none")
async def healthz(request: web.Request) -> web.Response:
    if request.app[RUNTIME].ready:
        return web.Response(text="ok")
    return web.Response(text="starting", status=503)


@routes.get("/version")
@doc(
    "The five version numbers.",
    auth="none",
    response={"product": "0.1.0", "sdk": "1.0", "api": 1, "schema": 4, "wire": 1},
)
async def version(request: web.Request) -> web.Response:
    return json_response(
        {
            "product": product_version(),
            "sdk": SDK_VERSION,
            "api": API_VERSION,
            "schema": request.app[DB].schema_version,
            "wire": WIRE_VERSION,
        }
    )
