"""The execute path's pure mappings: an HTTP request to `ctx`, an `Outcome` to an HTTP response."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from picloud.errors import error_body
from picloud.executor.api import Outcome
from picloud.versions import SDK_VERSION

__all__ = ["ERROR_STATUS", "build_ctx", "outcome_response", "parse_json_body"]

# Status of an invocation that did not succeed -> (HTTP status, error code).
ERROR_STATUS = {
    "script_error": (500, "script_error"),
    "timeout": (504, "timeout"),
    "resource_limit": (500, "resource_limit"),
    "internal": (500, "internal"),
}
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def parse_json_body(text: str | None) -> Any:
    """The parsed body, or None when it is absent or not JSON."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def build_ctx(
    *,
    app_id: str,
    script_id: str,
    method: str,
    path: str,
    tail: str,
    query: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    body: bytes,
    secrets: Mapping[str, str],
) -> dict[str, Any]:
    """`ctx` of a direct call, exactly as PRODUCT.md (invocation_id is set by the executor)."""
    text = body.decode("utf-8", "replace") if body else None
    return {
        "sdk_version": SDK_VERSION,
        "app_id": app_id,
        "script_id": script_id,
        "invocation_id": "",
        "request": {
            "method": method,
            "path": path,
            "tail": tail,
            "query": {k: _wire_text(v) for k, v in query},  # the last of repeated keys wins
            "headers": {name.lower(): _wire_text(value) for name, value in headers},
            "body": text,
            "json": parse_json_body(text),
        },
        "is_dead_letter_handler": False,
        "secrets": dict(secrets),
    }


def outcome_response(outcome: Outcome) -> web.Response:
    """The HTTP reply of an invocation: the script's own, or the JSON error shape."""
    if outcome.status == "ok" and outcome.response is not None:
        reply = outcome.response
        resp = web.Response(status=reply.status, body=reply.body or None)
        resp.headers.update(reply.headers)
    else:
        status, code = ERROR_STATUS.get(outcome.status, (500, "internal"))
        message = outcome.error or code
        resp = web.Response(
            status=status,
            text=_encoder.encode(error_body(code, message)),
            content_type="application/json",
        )
    resp.headers["X-PiCloud-Invocation"] = outcome.invocation_id
    return resp


def _wire_text(value: str) -> str:
    """aiohttp hands non-UTF-8 header bytes on as lone surrogates, which no frame can carry:
    read such a value as Latin-1 (what cheap devices send), the way browsers do."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("latin-1")
    return value
