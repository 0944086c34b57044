"""Routes: invocation records (list with filters, one with its log)."""

from __future__ import annotations

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
from picloud.errors import BadRequest, NotFound
from picloud.executor.service import EXECUTOR
from picloud.state import DB
from picloud.store import invocations as store

__all__ = ["routes"]

routes = web.RouteTableDef()
_FILTERS = ("app", "script", "status", "trigger")
_STATUSES = ("ok", "script_error", "timeout", "resource_limit", "internal")


async def _flush(request: web.Request) -> None:
    """Records are written in batches: flush first so a listing shows the latest runs."""
    recorder = request.app[EXECUTOR].recorder
    if recorder is not None:
        await recorder.flush()


@routes.get(f"{API}/admin/invocations")
@doc(
    "Invocations, newest first.",
    query=("app", "script", "status", "trigger", "limit", "cursor"),
    response={"items": [{"id": "inv_...", "status": "ok"}], "cursor": None},
)
async def list_invocations(request: web.Request) -> web.Response:
    filters = {name: request.query[name] for name in _FILTERS if request.query.get(name)}
    await app_filter(request)
    if "status" in filters and filters["status"] not in _STATUSES:
        raise BadRequest(f"status must be one of {', '.join(_STATUSES)}")
    limit = parse_limit(request, default=50)
    before = decode_cursor(request.query.get("cursor"))
    await _flush(request)
    rows = await request.app[DB].read(
        lambda conn: store.list_invocations(conn, filters, before, limit + 1)
    )
    return json_response(page([r.to_json() for r in rows], limit, lambda item: item["id"]))


@routes.get(f"{API}/admin/invocations/{{id}}")
@doc("One invocation with its captured log.", response={"id": "inv_...", "log": "..."})
async def get_invocation(request: web.Request) -> web.Response:
    invocation_id = request.match_info["id"]
    await _flush(request)
    row = await request.app[DB].read(lambda conn: store.get(conn, invocation_id))
    if row is None:
        raise NotFound(f"invocation {invocation_id!r:.80} does not exist")
    return json_response(row.to_json(with_log=True))
