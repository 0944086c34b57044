"""The error middleware (one JSON shape for every failure) and admin authentication."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from picloud.api.common import API, json_response
from picloud.auth import ADMIN_TOKENS, bearer
from picloud.errors import PiCloudError, Unauthorized, error_body

__all__ = ["auth_middleware", "error_middleware"]

log = logging.getLogger(__name__)
_ADMIN = f"{API}/admin"  # built once: this check runs on every request
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    503: "unavailable",
    504: "timeout",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PiCloudError as exc:
        resp = json_response(exc.body(), status=exc.status)
        resp.headers.update(exc.headers)
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "internal")
        message = _message(request, exc)
        resp = json_response(error_body(code, message), status=exc.status)
        if "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(error_body("internal", "internal error"), status=500)


def _message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no such route: {request.path}"
    if exc.status == 405:
        return f"method {request.method} is not allowed on {request.path}"
    return exc.reason


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /api/v1/admin/* route needs the admin token (compared in constant time)."""
    path = request.path
    if path.startswith(_ADMIN) and (len(path) == len(_ADMIN) or path[len(_ADMIN)] == "/"):
        token = bearer(request)
        if token is None or not request.app[ADMIN_TOKENS].matches(token):
            raise Unauthorized("a valid admin token is required (Authorization: Bearer ...)")
    return await handler(request)
