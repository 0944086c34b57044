"""Route: the OpenAPI 3 document, built from the router and each handler's @doc."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from picloud.api.common import API, doc, json_response
from picloud.versions import product_version

__all__ = ["build_document", "routes"]

routes = web.RouteTableDef()
_ANY_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}


@routes.get(f"{API}/openapi.json")
@doc("This document.", auth="none")
async def openapi(request: web.Request) -> web.Response:
    return json_response(build_document(request.app))


def build_document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path") or info.get("prefix")
        if not path or route.method == "HEAD":
            continue
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)
        meta = getattr(route.handler, "__openapi__", None)
        # "x-any" alone would hide the route from OpenAPI tools: list every method it takes.
        methods = _ANY_METHODS if route.method == "*" else (route.method.lower(),)
        for method in methods:
            paths.setdefault(path, {})[method] = _operation(path, meta)
    return {
        "openapi": "3.0.3",
        "info": {"title": "PiCloud", "version": product_version()},
        "components": {
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer"},
                "appKey": {"type": "http", "scheme": "bearer"},
                "appKeyHeader": {"type": "apiKey", "in": "header", "name": "X-PiCloud-Key"},
            },
            "schemas": {"Error": _ERROR},
        },
        "paths": dict(sorted(paths.items())),
    }


def _operation(path: str, meta: dict[str, Any] | None) -> dict[str, Any]:
    meta = meta or {}
    op: dict[str, Any] = {"summary": meta.get("summary", "")}
    params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in re.findall(r"\{(\w+)\}", path)
    ]
    params += [
        {"name": q, "in": "query", "schema": {"type": "string"}} for q in meta.get("query", [])
    ]
    if params:
        op["parameters"] = params
    if meta.get("body") is not None:
        op["requestBody"] = {"content": {"application/json": {"example": meta["body"]}}}
    error = {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    status = int(meta.get("status", 200))
    ok: dict[str, Any] = {"description": "success"} if status < 400 else dict(error)
    if meta.get("response") is not None:
        ok["content"] = {"application/json": {"example": meta["response"]}}
    op["responses"] = {str(status): ok, "default": error}
    if meta.get("auth") == "admin":
        op["security"] = [{"admin": []}]
    elif meta.get("auth") == "app":
        op["security"] = [{}, {"appKey": []}, {"appKeyHeader": []}]
    return op
