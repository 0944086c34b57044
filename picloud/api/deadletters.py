"""Routes: dead letters (control plane) — list with filters, read, replay, delete."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from aiohttp import web

from picloud.api.common import (
    API,
    app_filter,
    decode_cursor,
    doc,
    json_response,
    page,
    parse_limit,
)
from picloud.errors import BadRequest, Conflict, NotFound
from picloud.ids import check_slug
from picloud.manager.views import iso
from picloud.state import DB
from picloud.store.db import now_ms
from picloud.store.triggers import (
    DeadLetter,
    dead_letter,
    delete_dead_letter,
    get_trigger,
    list_dead_letters,
    replay_dead_letter,
)

__all__ = ["dead_letter_view", "routes"]

routes = web.RouteTableDef()
DEAD = f"{API}/admin/dead-letters"

_EXAMPLE: dict[str, Any] = {
    "id": "dl_018f...",
    "app": "home",
    "trigger_id": "trg_018f...",
    "script": "on-widget",
    "event": {"type": "kv", "op": "insert", "collection": "widgets", "key": "k", "value": 1},
    "attempts": 3,
    "error": "script_error: ZeroDivisionError: division by zero",
    "depth": 0,
    "created_at": "2026-01-01T00:00:00.000Z",
    "dead_letter_script": "dl",
    "handler_status": "ok",
    "handler_error": None,
    "replays": 0,
    "replayed_at": None,
}


def dead_letter_view(dl: DeadLetter) -> dict[str, Any]:
    return {
        "id": dl.id,
        "app": dl.app_id,
        "trigger_id": dl.trigger_id,
        "script": dl.script_id,
        "event": json.loads(dl.event),
        "attempts": dl.attempts,
        "error": dl.error,
        "depth": dl.depth,
        "created_at": iso(dl.created_at),
        "dead_letter_script": dl.handler_script_id,
        # pending: the dead-letter script has not run yet; none: the trigger names none.
        "handler_status": dl.handler_status or "pending",
        "handler_error": dl.handler_error,
        "replays": dl.replays,
        "replayed_at": iso(dl.replayed_at),
    }


def _id(request: web.Request) -> str:
    value = request.match_info["id"]
    if len(value) > 128:
        raise NotFound("no such dead letter")
    return value


def _filter(request: web.Request, name: str, slug: bool) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if slug:
        return check_slug(value, name)
    if len(value) > 128:
        raise BadRequest(f"{name} is too long")
    return value


@routes.get(DEAD)
@doc(
    "Dead letters, newest first; filter by ?app=, ?trigger= (id) and ?script= (the "
    "handler that failed). Kept until deleted.",
    response={"items": [_EXAMPLE], "cursor": None},
    query=("app", "trigger", "script", "limit", "cursor"),
)
async def list_route(request: web.Request) -> web.Response:
    limit = parse_limit(request)
    before = decode_cursor(request.query.get("cursor"))
    app_id = await app_filter(request)
    trigger_id = _filter(request, "trigger", slug=False)
    script_id = _filter(request, "script", slug=True)
    rows = await request.app[DB].read(
        lambda c: list_dead_letters(
            c,
            app_id=app_id,
            trigger_id=trigger_id,
            script_id=script_id,
            before=before,
            limit=limit + 1,
        )
    )
    return json_response(page([dead_letter_view(d) for d in rows], limit, lambda d: d["id"]))


@routes.get(DEAD + "/{id}")
@doc("One dead letter: the original event, trigger, handler, attempts and last error.")
async def get_route(request: web.Request) -> web.Response:
    dl_id = _id(request)
    dl = await request.app[DB].read(lambda c: dead_letter(c, dl_id))
    if dl is None:
        raise NotFound(f"dead letter '{dl_id}' does not exist")
    return json_response(dead_letter_view(dl))


@routes.post(DEAD + "/{id}/replay")
@doc(
    "Queue the original event again as a fresh delivery (attempts 0, depth 0) through its "
    "trigger; the dead letter is kept (replays counts them). 409 when the trigger is gone.",
    response={"id": "dl_018f...", "event_id": 42, "replays": 1},
    status=202,
)
async def replay_route(request: web.Request) -> web.Response:
    dl_id = _id(request)

    def replay(conn: sqlite3.Connection) -> tuple[int, int]:
        dl = dead_letter(conn, dl_id)
        if dl is None:
            raise NotFound(f"dead letter '{dl_id}' does not exist")
        if dl.trigger_id is None or get_trigger(conn, dl.trigger_id) is None:
            raise Conflict(f"the trigger of dead letter '{dl_id}' was deleted")
        event_id = replay_dead_letter(conn, dl_id, now_ms())
        assert event_id is not None
        return event_id, dl.replays + 1

    event_id, replays = await request.app[DB].write(replay)
    return json_response({"id": dl_id, "event_id": event_id, "replays": replays}, status=202)


@routes.delete(DEAD + "/{id}")
@doc("Delete a dead letter.", status=204)
async def delete_route(request: web.Request) -> web.Response:
    dl_id = _id(request)
    if not await request.app[DB].write(lambda c: delete_dead_letter(c, dl_id)):
        raise NotFound(f"dead letter '{dl_id}' does not exist")
    return web.Response(status=204)
