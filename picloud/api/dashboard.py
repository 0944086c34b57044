"""Routes: the web dashboard at `/` and its versioned, cacheable assets."""

from __future__ import annotations

import asyncio

from aiohttp import web

from picloud.api.common import doc
from picloud.dashboard import Asset, Bundle, bundle
from picloud.errors import NotFound

__all__ = ["routes"]

routes = web.RouteTableDef()

# The page talks only to its own origin and runs only its own files.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"


@routes.get("/")
@doc("The web dashboard (a single page; it uses only documented /api/v1 calls).", auth="none")
async def index(request: web.Request) -> web.StreamResponse:
    asset = (await _bundle()).assets.get("index.html")
    if asset is None:
        raise NotFound("the dashboard is not installed")
    return _serve(request, asset, _REVALIDATE)


@routes.get("/assets/{version}/{path:.+}")
@doc("A dashboard file; immutable under the current bundle version.", auth="none")
async def asset(request: web.Request) -> web.StreamResponse:
    files = await _bundle()
    path = request.match_info["path"]
    found = files.assets.get(path)
    if found is None or path == "index.html":
        raise NotFound(f"no such dashboard file: {path}")
    # A stale version (a page loaded before an upgrade) still gets the file, uncached.
    fresh = request.match_info["version"] == files.version
    return _serve(request, found, _IMMUTABLE if fresh else _REVALIDATE)


async def _bundle() -> Bundle:
    # The first request reads and gzips every file: keep that off the event loop.
    if bundle.cache_info().currsize:
        return bundle()
    return await asyncio.to_thread(bundle)


def _serve(request: web.Request, asset: Asset, cache_control: str) -> web.StreamResponse:
    headers = {
        "Content-Type": asset.content_type,
        "ETag": asset.etag,
        "Cache-Control": cache_control,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": _CSP,
    }
    if asset.etag in _etags(request.headers.get("If-None-Match", "")):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
