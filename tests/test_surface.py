"""The versioned surface: /healthz, /version, the JSON 404 and 401, OpenAPI coverage."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from picloud.api.openapi import build_document
from picloud.store.migrate import latest_version
from picloud.versions import API_VERSION, PRODUCT_VERSION, SDK_VERSION, WIRE_VERSION
from tests.conftest import Daemon


async def test_healthz_is_plain_ok(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    assert await resp.text() == "ok"


async def test_version_reports_all_five(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/version")
    assert await resp.json() == {
        "product": PRODUCT_VERSION,
        "sdk": SDK_VERSION,
        "api": API_VERSION,
        "schema": latest_version(),
        "wire": WIRE_VERSION,
    }


async def test_unknown_api_path_is_json_404(client: TestClient[Any, Any]) -> None:
    for path in ("/api/v1/nope", "/api/v2/apps", "/api/", "/api/v1/execute"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_admin_routes_need_the_token(daemon: Daemon) -> None:
    doc = build_document(daemon.client.server.app)
    admin_paths = [p for p in doc["paths"] if p.startswith("/api/v1/admin")]
    for path in admin_paths:
        for method in doc["paths"][path]:
            if method.startswith("x-"):
                continue
            concrete = path.replace("{", "x").replace("}", "")
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
                resp = await daemon.client.request(method.upper(), concrete, headers=headers)
                assert resp.status == 401, (method, path)
                body = await resp.json()
                assert body["error"]["code"] == "unauthorized"


async def test_every_route_is_documented(daemon: Daemon) -> None:
    app = daemon.client.server.app
    doc = build_document(app)
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        assert getattr(route.handler, "__openapi__", None), f"{route} has no @doc"
        summary = doc["paths"]
        assert summary, "empty document"
    resp = await daemon.client.get("/api/v1/openapi.json")
    assert (await resp.json())["paths"] == doc["paths"]


async def test_wrong_method_on_a_known_route_is_405(daemon: Daemon) -> None:
    resp = await daemon.client.request("PATCH", "/api/v1/admin/apps", headers=daemon.headers)
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "bad_request"
    assert "GET" in resp.headers["Allow"]
    assert "POST" in resp.headers["Allow"]
    resp = await daemon.client.request("PATCH", "/api/v1/admin/nothing", headers=daemon.headers)
    assert resp.status == 404
