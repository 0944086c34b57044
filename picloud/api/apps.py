"""Routes: apps, their API keys and their secrets (control plane)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from picloud.api.common import (
    API,
    Body,
    decode_cursor,
    doc,
    json_response,
    page,
    parse_limit,
    read_json,
)
from picloud.errors import BadRequest
from picloud.executor import EXECUTOR
from picloud.ids import check_slug
from picloud.manager import apps as manager
from picloud.manager.views import app_view, iso, key_view
from picloud.state import DB, SETTINGS
from picloud.store import apps as store

__all__ = ["read_admin_json", "routes"]

routes = web.RouteTableDef()
APPS = f"{API}/admin/apps"
# A secret is handed to every run of the app's scripts: keep it small.
MAX_SECRET_BYTES = 64 * 1024

_APP = {
    "id": "home",
    "created_at": "2026-01-01T00:00:00.000Z",
    "scripts": 0,
    "keys": 0,
    "secrets": 0,
    "kv_bytes": 0,
}
_KEY = {
    "id": "key_0190f1c2d3e4a1b2c3d4e5",
    "app": "home",
    "prefix": "pc_key_AbC123",
    "created_at": "2026-01-01T00:00:00.000Z",
    "last_used_at": None,
}
_PAGE = ("limit", "cursor")


def _app_id(request: web.Request) -> str:
    return check_slug(request.match_info["app"], "app")


async def read_admin_json(request: web.Request) -> dict[str, Any]:
    """A JSON object body of at most max_admin_body_bytes (413 beyond, 400 if not an object)."""
    return await read_json(request, request.app[SETTINGS].max_admin_body_bytes)


async def _body(request: web.Request, allowed: tuple[str, ...]) -> Body:
    return Body(await read_admin_json(request), allowed)


@routes.post(APPS)
@doc("Create an app.", body={"id": "home"}, response=_APP, status=201)
async def create_app(request: web.Request) -> web.Response:
    body = await _body(request, ("id",))
    app = await manager.create_app(request.app[DB], check_slug(body.text("id"), "id"))
    return json_response(app_view(app), status=201)


@routes.get(APPS)
@doc("List apps, by id.", response={"items": [_APP], "cursor": None}, query=_PAGE)
async def list_apps(request: web.Request) -> web.Response:
    limit = parse_limit(request)
    after = decode_cursor(request.query.get("cursor"))
    apps = await request.app[DB].read(lambda c: store.list_apps(c, after, limit + 1))
    return json_response(page([app_view(a) for a in apps], limit, lambda a: a["id"]))


@routes.get(APPS + "/{app}")
@doc("One app.", response=_APP)
async def get_app(request: web.Request) -> web.Response:
    return json_response(app_view(await manager.get_app(request.app[DB], _app_id(request))))


@routes.delete(APPS + "/{app}")
@doc(
    "Delete an app and everything it owns: scripts, versions, KV, triggers, events, "
    "dead letters, keys, secrets and invocation records.",
    status=204,
)
async def delete_app(request: web.Request) -> web.Response:
    app_id = _app_id(request)
    await manager.delete_app(request.app[DB], app_id)
    # Warm workers hold the app's code and memory: none may serve a re-created app.
    request.app[EXECUTOR].forget_app(app_id)
    return web.Response(status=204)


@routes.post(APPS + "/{app}/keys")
@doc(
    "Create an API key for the app's private scripts; the key is shown only in this answer.",
    body={},
    response={**_KEY, "key": "pc_key_..."},
    status=201,
)
async def create_key(request: web.Request) -> web.Response:
    app_id = _app_id(request)
    await _body(request, ())
    key, plaintext = await manager.create_key(request.app[DB], app_id)
    return json_response({**key_view(key), "key": plaintext}, status=201)


@routes.get(APPS + "/{app}/keys")
@doc("List the app's keys, masked.", response={"items": [_KEY], "cursor": None}, query=_PAGE)
async def list_keys(request: web.Request) -> web.Response:
    db, app_id = request.app[DB], _app_id(request)
    limit = parse_limit(request)
    after = decode_cursor(request.query.get("cursor"))
    await manager.get_app(db, app_id)
    keys = await db.read(lambda c: store.list_keys(c, app_id, after, limit + 1))
    return json_response(page([key_view(k) for k in keys], limit, lambda k: k["id"]))


@routes.delete(APPS + "/{app}/keys/{key_id}")
@doc("Revoke a key: it stops working at once.", status=204)
async def revoke_key(request: web.Request) -> web.Response:
    app_id = _app_id(request)
    key_id = check_slug(request.match_info["key_id"], "key id")
    await manager.revoke_key(request.app[DB], app_id, key_id)
    return web.Response(status=204)


@routes.get(APPS + "/{app}/secrets")
@doc(
    "List the names of the app's secrets (values are never returned).",
    response={"items": [{"name": "API_TOKEN", "updated_at": "..."}], "cursor": None},
    query=_PAGE,
)
async def list_secrets(request: web.Request) -> web.Response:
    db, app_id = request.app[DB], _app_id(request)
    limit = parse_limit(request)
    after = decode_cursor(request.query.get("cursor"))
    await manager.get_app(db, app_id)
    rows = await db.read(lambda c: store.secret_names(c, app_id, after, limit + 1))
    items = [{"name": name, "updated_at": iso(at)} for name, at in rows]
    return json_response(page(items, limit, lambda s: s["name"]))


@routes.put(APPS + "/{app}/secrets/{name}")
@doc(
    "Set a secret; scripts of the app read it as ctx['secrets'][name].",
    body={"value": "s3cret"},
    response={"name": "API_TOKEN", "created": True},
)
async def set_secret(request: web.Request) -> web.Response:
    app_id = _app_id(request)
    name = manager.check_secret_name(request.match_info["name"])
    body = await _body(request, ("value",))
    value = body.text("value", max_len=MAX_SECRET_BYTES)
    if "\x00" in value:
        raise BadRequest("field 'value' must not contain NUL characters")
    created = await manager.set_secret(request.app[DB], app_id, name, value)
    return json_response({"name": name, "created": created})


@routes.delete(APPS + "/{app}/secrets/{name}")
@doc("Delete a secret.", status=204)
async def delete_secret(request: web.Request) -> web.Response:
    app_id = _app_id(request)
    name = manager.check_secret_name(request.match_info["name"])
    await manager.delete_secret(request.app[DB], app_id, name)
    return web.Response(status=204)
