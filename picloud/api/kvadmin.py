"""Admin routes to browse and edit an app's KV collections.

They call the same `KvService` methods as scripts do, so an admin change
validates, counts against the quota and fires triggers exactly like an SDK
change (at trigger depth 0). Values are spliced into responses as the JSON
text stored, never decoded and re-encoded.

The key is the rest of the path after the collection, percent-decoded: a
client should percent-encode it as one segment (`%2F` for `/`), though a raw
`/` works too.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from picloud.api.apps import read_admin_json
from picloud.api.common import (
    API,
    Body,
    decode_cursor,
    doc,
    encode_cursor,
    parse_limit,
)
from picloud.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from picloud.kv import KV, rules
from picloud.kv.api import AppNotFound, KvService
from picloud.state import SETTINGS

__all__ = ["routes"]

routes = web.RouteTableDef()

_BASE = f"{API}/admin/apps/{{app}}/kv"
_ITEM = {"key": "string", "value": "any JSON"}


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_text(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json")


def _item(key: str, value_json: str) -> str:
    return f'{{"key":{_dumps(key)},"value":{value_json}}}'


async def _service(request: web.Request) -> tuple[KvService, str]:
    """The KV service and the path's app, which must exist (404 otherwise)."""
    kv = request.app[KV]
    app_id = request.match_info["app"]
    if not await kv.app_exists(app_id):
        raise NotFound(f"app {app_id!r:.80} does not exist")
    return kv, app_id


def _mapped(exc: Exception) -> Exception:
    """The HTTP error for a KV rule broken through the admin API."""
    if isinstance(exc, rules.ValueTooLarge):
        return PayloadTooLarge(str(exc))
    if isinstance(exc, rules.QuotaExceeded):
        return Conflict(str(exc))
    if isinstance(exc, AppNotFound):
        return NotFound(str(exc))
    return BadRequest(str(exc))


def _after(cursor: str | None) -> str:
    """The collection a collections cursor names (any other cursor is a 400)."""
    if not cursor:
        return ""
    name = decode_cursor(cursor)
    if name is None or not rules.COLLECTION_RE.fullmatch(name):
        raise BadRequest("cursor is not valid")
    return name


@routes.get(_BASE)
@doc(
    "The app's KV collections with their live key counts, and its bytes against the quota",
    query=["limit", "cursor"],
    response={"items": [{"collection": "string", "count": 0}], "cursor": "string|null"},
)
async def list_collections(request: web.Request) -> web.Response:
    kv, app_id = await _service(request)
    limit = parse_limit(request)
    after = _after(request.query.get("cursor"))
    found = await kv.collections(app_id, after=after, limit=limit + 1)
    more = len(found) > limit
    items = [{"collection": c.name, "count": c.count} for c in found[:limit]]
    cursor = encode_cursor(found[limit - 1].name) if more else None
    body = {
        "items": items,
        "cursor": cursor,
        "usage_bytes": await kv.usage(app_id),
        "quota_bytes": request.app[SETTINGS].kv_app_quota_bytes,
    }
    return _json_text(_dumps(body))


@routes.get(f"{_BASE}/{{collection}}")
@doc(
    "Browse a collection in key order, with the SDK's pagination",
    query=["prefix", "limit", "cursor"],
    response={"items": [_ITEM], "cursor": "string|null"},
)
async def browse(request: web.Request) -> web.Response:
    kv, app_id = await _service(request)
    limit = parse_limit(request)
    try:
        page = await kv.list(
            app_id,
            request.match_info["collection"],
            prefix=request.query.get("prefix", ""),
            limit=limit,
            cursor=request.query.get("cursor") or None,
        )
    except (TypeError, ValueError) as exc:
        raise _mapped(exc) from None
    items = ",".join(_item(key, value) for key, value in page.items)
    return _json_text(f'{{"items":[{items}],"cursor":{_dumps(page.cursor)}}}')


@routes.get(f"{_BASE}/{{collection}}/{{key:.+}}")
@doc("One key's value", response=_ITEM)
async def get_key(request: web.Request) -> web.Response:
    kv, app_id = await _service(request)
    collection, key = request.match_info["collection"], request.match_info["key"]
    try:
        value = await kv.get(app_id, collection, key)
    except (TypeError, ValueError) as exc:
        raise _mapped(exc) from None
    if value is None:
        raise NotFound(f"key {key!r:.80} does not exist in collection {collection!r}")
    return _json_text(_item(key, value))


@routes.put(f"{_BASE}/{{collection}}/{{key:.+}}")
@doc(
    "Set one key's value (optionally with a ttl in seconds); fires kv triggers like a script",
    body={"value": "any JSON", "ttl": "number|null"},
    response={**_ITEM, "op": "insert|update"},
)
async def put_key(request: web.Request) -> web.Response:
    kv, app_id = await _service(request)
    collection, key = request.match_info["collection"], request.match_info["key"]
    body = Body(await read_admin_json(request), ["value", "ttl"])
    if "value" not in body:
        raise BadRequest("field 'value' is required")
    value: Any = body.data["value"]
    try:
        text = rules.encode_value(value)
        op = await kv.set(app_id, collection, key, text, ttl=body.data.get("ttl"))
    except (TypeError, ValueError, AppNotFound) as exc:
        raise _mapped(exc) from None
    return _json_text(f'{_item(key, text)[:-1]},"op":"{op}"}}')


@routes.delete(f"{_BASE}/{{collection}}/{{key:.+}}")
@doc("Delete one key; fires kv triggers like a script", status=204)
async def delete_key(request: web.Request) -> web.Response:
    kv, app_id = await _service(request)
    collection, key = request.match_info["collection"], request.match_info["key"]
    try:
        deleted = await kv.delete(app_id, collection, key)
    except (TypeError, ValueError) as exc:
        raise _mapped(exc) from None
    if not deleted:
        raise NotFound(f"key {key!r:.80} does not exist in collection {collection!r}")
    return web.Response(status=204)
