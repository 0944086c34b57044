"""`Response` for scripts, and the mapping of a handler's return value to an HTTP reply."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["BadReturn", "Response", "to_http"]

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_BYTES = "application/octet-stream"
# Headers the daemon sets itself; a script cannot override framing.
_RESERVED = frozenset({"content-length", "transfer-encoding", "connection"})
# RFC 9110 field-name (a token) and field-value (no controls but tab, no DEL).
_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class BadReturn(TypeError):
    """The handler returned something that has no HTTP form."""


class Response:
    """Full control over the reply: `Response(body, status=200, headers={})`."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, body: Any = None, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.body = body
        self.status = status
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"Response(status={self.status!r}, headers={self.headers!r})"


def _body(value: Any) -> tuple[bytes, str | None]:
    """(bytes, default content type) of a value; None means no body."""
    if value is None:
        return b"", None
    if isinstance(value, str):
        # A lone surrogate is no UTF-8: send it escaped rather than invalid bytes.
        return value.encode("utf-8", "backslashreplace"), _TEXT
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), _BYTES
    if isinstance(value, dict | list | tuple | int | float | bool):
        try:
            return _encoder.encode(value).encode(), _JSON
        except (TypeError, ValueError) as exc:
            raise BadReturn(f"the return value is not JSON serialisable: {exc}") from None
    raise BadReturn(
        f"handle() returned a {type(value).__name__}; return a dict, list, number, bool, str,"
        " bytes, None or Response"
    )


def to_http(value: Any) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) for a handler's return value, as PRODUCT.md maps it."""
    if not isinstance(value, Response):
        body, ctype = _body(value)
        if ctype is None:
            return 204, {}, b""
        return 200, {"Content-Type": ctype}, body
    status = value.status
    # Not 1xx: an informational status is no final answer (101 even switches protocols),
    # so the client would hang or be cut off.
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise BadReturn(f"Response status must be an integer 200-599, got {status!r:.40}")
    headers: dict[str, str] = {}
    for name, val in value.headers.items():
        _check_header(name, val)
        if name.lower() not in _RESERVED:
            headers[name] = val
    body, ctype = _body(value.body)
    if ctype is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = ctype
    return status, headers, body


def _check_header(name: Any, val: Any) -> None:
    """BadReturn unless `name: val` can go on the wire as one well-formed header line."""
    if not isinstance(name, str) or not isinstance(val, str):
        raise BadReturn("Response headers must map str to str")
    if "\n" in name or "\r" in name or "\n" in val or "\r" in val:
        raise BadReturn("Response headers must not contain line breaks")
    if not _NAME.fullmatch(name):
        raise BadReturn(f"Response header name {name!r:.60} is not a valid HTTP header name")
    if _BAD_VALUE.search(val):
        raise BadReturn(f"Response header {name!r} has a control character in its value")
    try:
        val.encode("utf-8")
    except UnicodeEncodeError:
        raise BadReturn(f"Response header {name!r} is not valid Unicode (lone surrogate)") from None
