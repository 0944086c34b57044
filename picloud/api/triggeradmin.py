"""Routes: triggers (control plane) — create, list, read, change, enable/disable, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from picloud.api.apps import read_admin_json
from picloud.api.common import (
    API,
    app_filter,
    decode_cursor,
    doc,
    json_response,
    page,
    parse_limit,
)
from picloud.errors import NotFound
from picloud.manager.views import iso
from picloud.state import DB
from picloud.store.triggers import Trigger, delete_trigger, event_counts, get_trigger
from picloud.store.triggers import list_triggers as store_list
from picloud.triggers import DISPATCHER
from picloud.triggers.spec import create_trigger as spec_create
from picloud.triggers.spec import patch_trigger as spec_patch

__all__ = ["routes", "trigger_view"]

routes = web.RouteTableDef()
TRIGGERS = f"{API}/admin/triggers"

_EXAMPLE: dict[str, Any] = {
    "id": "trg_018f...",
    "app": "home",
    "kind": "kv",
    "script": "on-widget",
    "dead_letter_script": "dl",
    "enabled": True,
    "max_attempts": 3,
    "backoff_base_ms": 1000,
    "backoff_max_ms": 300000,
    "created_at": "2026-01-01T00:00:00.000Z",
    "collection": "widgets",
    "ops": ["insert", "update", "delete"],
    "pending": 0,
    "retrying": 0,
    "dead": 0,
}


def trigger_view(
    t: Trigger, counts: dict[str, int], next_run_at: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": t.id,
        "app": t.app_id,
        "kind": t.kind,
        "script": t.script_id,
        "dead_letter_script": t.dead_letter_script_id,
        "enabled": t.enabled,
        "max_attempts": t.max_attempts,
        "backoff_base_ms": t.backoff_base_ms,
        "backoff_max_ms": t.backoff_max_ms,
        "created_at": iso(t.created_at),
    }
    if t.kind == "kv":
        out["collection"] = t.collection
        out["ops"] = (t.ops or "").split(",")
    else:
        out["schedule"] = t.schedule
        out["timezone"] = t.timezone
        out["last_run_at"] = iso(t.last_fired_at)
        out["next_run_at"] = iso(next_run_at) if t.enabled else None
        out["skipped_runs"] = t.skipped_runs
    out.update(pending=counts["pending"], retrying=counts["retrying"], dead=counts["dead"])
    return out


def _trigger_id(request: web.Request) -> str:
    value = request.match_info["id"]
    if len(value) > 128:
        raise NotFound("no such trigger")
    return value


def _changed(request: web.Request, trigger_id: str) -> None:
    dispatcher = request.app.get(DISPATCHER)
    if dispatcher is not None:
        dispatcher.trigger_changed(trigger_id)


async def _view(request: web.Request, trigger_id: str) -> dict[str, Any]:
    t = await request.app[DB].read(lambda c: get_trigger(c, trigger_id))
    if t is None:
        raise NotFound(f"trigger '{trigger_id}' does not exist")
    return _views(request, [t], await _counts(request, [t]))[0]


async def _counts(request: web.Request, rows: list[Trigger]) -> dict[str, dict[str, int]]:
    ids = [t.id for t in rows]
    return await request.app[DB].read(lambda c: event_counts(c, ids))


def _views(
    request: web.Request, rows: list[Trigger], counts: dict[str, dict[str, int]]
) -> list[dict[str, Any]]:
    dispatcher = request.app.get(DISPATCHER)
    out = []
    for t in rows:
        next_run = dispatcher.cron.next_run_at(t.id) if dispatcher is not None else None
        out.append(trigger_view(t, counts[t.id], next_run))
    return out


@routes.post(TRIGGERS)
@doc(
    "Create a trigger: kind 'kv' (collection, ops) or 'cron' (schedule, optional IANA "
    "timezone; UTC by default). script and dead_letter_script must be in the same app. "
    "max_attempts (1-100, default 3), backoff_base_ms (default 1000) and backoff_max_ms "
    "(default 300000) set the retry policy; enabled defaults to true.",
    body={
        "app": "home",
        "kind": "kv",
        "collection": "widgets",
        "ops": ["insert", "update", "delete"],
        "script": "on-widget",
        "dead_letter_script": "dl",
        "max_attempts": 3,
    },
    response=_EXAMPLE,
    status=201,
)
async def create_trigger(request: web.Request) -> web.Response:
    data = await read_admin_json(request)
    t = await request.app[DB].write(lambda c: spec_create(c, data))
    _changed(request, t.id)
    return json_response(await _view(request, t.id), status=201)


@routes.get(TRIGGERS)
@doc(
    "List triggers by id, of one app with ?app=; each with its pending, retrying and "
    "dead event counts.",
    response={"items": [_EXAMPLE], "cursor": None},
    query=("app", "limit", "cursor"),
)
async def list_triggers(request: web.Request) -> web.Response:
    db = request.app[DB]
    limit = parse_limit(request)
    after = decode_cursor(request.query.get("cursor"))
    app_id = await app_filter(request)
    rows = await db.read(lambda c: store_list(c, app_id, after, limit + 1))
    counts = await _counts(request, rows)
    return json_response(page(_views(request, rows, counts), limit, lambda t: t["id"]))


@routes.get(TRIGGERS + "/{id}")
@doc("One trigger with its pending, retrying and dead event counts.", response=_EXAMPLE)
async def get_trigger_route(request: web.Request) -> web.Response:
    return json_response(await _view(request, _trigger_id(request)))


@routes.patch(TRIGGERS + "/{id}")
@doc(
    "Change a trigger: {'enabled': false} pauses it without deleting it (its queued events "
    "wait; a kv trigger records no new events while disabled), and script, "
    "dead_letter_script (null clears it), max_attempts, backoff_*_ms, collection/ops (kv) "
    "or schedule/timezone (cron) can change.",
    body={"enabled": False},
    response={**_EXAMPLE, "enabled": False},
)
async def patch_trigger(request: web.Request) -> web.Response:
    trigger_id = _trigger_id(request)
    data = await read_admin_json(request)
    await request.app[DB].write(lambda c: spec_patch(c, trigger_id, data))
    _changed(request, trigger_id)
    return json_response(await _view(request, trigger_id))


@routes.delete(TRIGGERS + "/{id}")
@doc("Delete a trigger and its undelivered events; its dead letters are kept.", status=204)
async def delete_trigger_route(request: web.Request) -> web.Response:
    trigger_id = _trigger_id(request)
    if not await request.app[DB].write(lambda c: delete_trigger(c, trigger_id)):
        raise NotFound(f"trigger '{trigger_id}' does not exist")
    _changed(request, trigger_id)
    return web.Response(status=204)
