"""Routes: scripts, their versions and rollback (control plane)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from picloud.api.apps import read_admin_json
from picloud.api.common import (
    API,
    Body,
    decode_cursor,
    doc,
    json_response,
    page,
    parse_limit,
)
from picloud.errors import BadRequest
from picloud.ids import check_slug
from picloud.manager import apps as app_manager
from picloud.manager import scripts as manager
from picloud.manager.views import script_view, version_view
from picloud.state import DB, SETTINGS
from picloud.store import scripts as store

__all__ = ["routes"]

routes = web.RouteTableDef()
SCRIPTS = f"{API}/admin/scripts"
_MAX_VERSION = 2**62

_SOURCE = "def handle(ctx):\n    return {'hello': 'world'}\n"
_SCRIPT: dict[str, Any] = {
    "id": "hello",
    "app": "home",
    "version": 1,
    "public": True,
    "timeout_ms": 5000,
    "memory_mb": 64,
    "isolation": "warm",
    "sha256": "...",
    "created_at": "2026-01-01T00:00:00.000Z",
    "updated_at": "2026-01-01T00:00:00.000Z",
}
_VERSION = {"version": 1, "sha256": "...", "created_at": "...", "rollback_of": None}


async def _json(request: web.Request) -> dict[str, Any]:
    return await read_admin_json(request)


def _script_id(request: web.Request) -> str:
    return check_slug(request.match_info["id"], "script id")


def _path_version(raw: str) -> int:
    return _version(int(raw) if raw.isdigit() and len(raw) < 19 else raw)


def _version(raw: object) -> int:
    """A version number: a positive integer."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= _MAX_VERSION:
        raise BadRequest(f"version must be a positive integer, got {raw!r:.40}")
    return raw


@routes.post(SCRIPTS)
@doc(
    "Create a script (version 1). The source must compile and define handle(ctx); "
    "otherwise 400 with the line of the error. timeout_ms, memory_mb and isolation "
    "('warm' or 'fresh') default from the settings and are capped by them.",
    body={"id": "hello", "app": "home", "source": _SOURCE, "public": True, "timeout_ms": 5000},
    response=_SCRIPT,
    status=201,
)
async def create_script(request: web.Request) -> web.Response:
    script_id, app_id, source, cfg = manager.parse_create(
        await _json(request), request.app[SETTINGS]
    )
    script = await manager.create_script(request.app[DB], script_id, app_id, source, cfg)
    return json_response(script_view(script), status=201)


@routes.get(SCRIPTS)
@doc(
    "List scripts by id, of one app with ?app=; without their sources.",
    response={"items": [_SCRIPT], "cursor": None},
    query=("app", "limit", "cursor"),
)
async def list_scripts(request: web.Request) -> web.Response:
    db = request.app[DB]
    limit = parse_limit(request)
    after = decode_cursor(request.query.get("cursor"))
    app_id = request.query.get("app") or None  # `?app=` (empty) means every app
    if app_id is not None:
        await app_manager.get_app(db, check_slug(app_id, "app"))
    rows = await db.read(lambda c: store.list_scripts(c, app_id, after, limit + 1))
    return json_response(page([script_view(s) for s in rows], limit, lambda s: s["id"]))


@routes.get(SCRIPTS + "/{id}")
@doc("One script with its current source.", response={**_SCRIPT, "source": _SOURCE})
async def get_script(request: web.Request) -> web.Response:
    script = await manager.get_script(request.app[DB], _script_id(request))
    return json_response(script_view(script))


@routes.put(SCRIPTS + "/{id}")
@doc(
    "Update a script: a new source makes a new version (compile-checked); public, "
    "timeout_ms, memory_mb and isolation change in place.",
    body={"source": _SOURCE},
    response={**_SCRIPT, "version": 2},
)
async def update_script(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    script_id = _script_id(request)
    spec = manager.parse_update(await _json(request), settings)
    script = await manager.update_script(
        request.app[DB], script_id, spec, settings.script_versions_keep
    )
    return json_response(script_view(script))


@routes.delete(SCRIPTS + "/{id}")
@doc("Delete a script with its versions, triggers and invocation records.", status=204)
async def delete_script(request: web.Request) -> web.Response:
    await manager.delete_script(request.app[DB], _script_id(request))
    return web.Response(status=204)


@routes.get(SCRIPTS + "/{id}/versions")
@doc(
    "The script's versions, oldest first (the newest script_versions_keep are kept).",
    response={"items": [_VERSION], "cursor": None},
    query=("limit", "cursor"),
)
async def list_versions(request: web.Request) -> web.Response:
    db, script_id = request.app[DB], _script_id(request)
    limit = parse_limit(request)
    cursor = decode_cursor(request.query.get("cursor"))
    after = _path_version(cursor) if cursor is not None else None
    await manager.get_script(db, script_id)
    rows = await db.read(lambda c: store.list_versions(c, script_id, after, limit + 1))
    return json_response(page([version_view(v) for v in rows], limit, lambda v: str(v["version"])))


@routes.get(SCRIPTS + "/{id}/versions/{version}")
@doc("One version of a script, with its source.", response={**_VERSION, "source": _SOURCE})
async def get_version(request: web.Request) -> web.Response:
    script_id = _script_id(request)
    number = _path_version(request.match_info["version"])
    version = await manager.get_version(request.app[DB], script_id, number)
    return json_response(version_view(version))


@routes.post(SCRIPTS + "/{id}/rollback")
@doc(
    "Roll back: a NEW version with the source of the given one; answers the script.",
    body={"version": 1},
    response={**_SCRIPT, "version": 3},
)
async def rollback(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    script_id = _script_id(request)
    body = Body(await _json(request), ("version",))
    number = body.integer("version", lo=1, hi=_MAX_VERSION)
    script = await manager.rollback(
        request.app[DB], script_id, number, settings.script_versions_keep
    )
    return json_response(script_view(script))
