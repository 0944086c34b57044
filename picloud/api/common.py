"""Shared handler helpers: bounded JSON bodies, field checks, cursors, route docs."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from aiohttp import web

from picloud.errors import BadRequest, NotFound, PayloadTooLarge
from picloud.ids import check_slug
from picloud.state import DB
from picloud.store.apps import app_exists

__all__ = [
    "app_filter",
    "API",
    "Body",
    "decode_cursor",
    "doc",
    "encode_cursor",
    "json_response",
    "page",
    "parse_limit",
    "read_body",
    "read_json",
]

API = "/api/v1"
F = TypeVar("F", bound=Callable[..., Any])
_MISSING: Any = object()


def doc(
    summary: str,
    *,
    body: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    status: int = 200,
    auth: str = "admin",
    query: Iterable[str] = (),
) -> Callable[[F], F]:
    """Attach the OpenAPI description of a handler (picloud/api/openapi.py reads it)."""

    def mark(handler: F) -> F:
        handler.__openapi__ = {  # type: ignore[attr-defined]
            "summary": summary,
            "body": body,
            "response": response,
            "status": status,
            "auth": auth,
            "query": list(query),
        }
        return handler

    return mark


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes (checked before reading it all)."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body is {request.content_length} bytes; the limit is {limit}")
    # StreamReader.read(n) returns whatever has arrived, so read chunk by chunk to the end.
    raw = bytearray()
    async for chunk in request.content.iter_any():
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
    return bytes(raw)


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """A JSON object body; BadRequest for anything else."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    try:  # a \ud800 escape decodes to a str that SQLite (and UTF-8) cannot store
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadRequest("body contains an unpaired UTF-16 surrogate escape") from None
    return data


class Body:
    """Typed access to a JSON object's fields; unknown fields are refused."""

    def __init__(self, data: dict[str, Any], allowed: Iterable[str]) -> None:
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
        self.data = data

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str, default: Any) -> Any:
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise BadRequest(f"field '{name}' is required")
        return default

    def text(self, name: str, default: Any = _MISSING, *, max_len: int | None = None) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise BadRequest(f"field '{name}' must be a string")
        if max_len is not None and len(value.encode()) > max_len:
            raise PayloadTooLarge(f"field '{name}' exceeds {max_len} bytes")
        return value

    def integer(self, name: str, default: Any = _MISSING, *, lo: int, hi: int) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"field '{name}' must be an integer")
        if not lo <= value <= hi:
            raise BadRequest(f"field '{name}' must be between {lo} and {hi}")
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, bool):
            raise BadRequest(f"field '{name}' must be true or false")
        return value

    def strings(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f"field '{name}' must be a list of strings")
        return value


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None or cursor == "":
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("cursor is not valid") from None


def parse_limit(request: web.Request, default: int = 100, maximum: int = 1000) -> int:
    raw = request.query.get("limit")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"limit must be an integer, got {raw!r:.40}") from None
    if not 1 <= value <= maximum:
        raise BadRequest(f"limit must be between 1 and {maximum}")
    return value


def page(items: list[Any], limit: int, last_key: Callable[[Any], str]) -> dict[str, Any]:
    """The one list shape: `{"items", "cursor"}`; callers fetch limit+1 rows to know if more."""
    more = len(items) > limit
    items = items[:limit]
    cursor = encode_cursor(last_key(items[-1])) if more and items else None
    return {"items": items, "cursor": cursor}


async def app_filter(request: web.Request) -> str | None:
    """The `?app=` filter of a list: None when absent; 404 for an app that does not exist
    (nothing of a deleted app outlives it, so an unknown app is a mistake, not an empty
    list)."""
    app_id = request.query.get("app")
    if not app_id:
        return None
    check_slug(app_id, "app")
    if not request.app[DB].read_now(lambda c: app_exists(c, app_id)):
        raise NotFound(f"app '{app_id}' does not exist")
    return app_id
