"""Bad input on every admin route gets the JSON error shape and never a 500.

The routes come from the app's own OpenAPI document, so routes added later by
any component are walked too. Generic checks assert only `status < 500` and
the error shape; the apps and scripts routes also pin the exact status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientTimeout
from yarl import URL

from picloud.api.openapi import build_document
from picloud.config import Settings
from tests.conftest import ADMIN_TOKEN, ERROR_CODES, Daemon

CODES = ERROR_CODES
CAP = 64 * 1024
# Values for path parameters that reach the handler (an app and a script exist).
GOOD = {"app": "home", "id": "hello", "script": "hello"}
BAD_IDS = [
    "..",
    "%2E%2E",
    "..%2F..%2Fetc",
    "a%2Fb",
    "%2Fetc%2Fpasswd",
    "a%00b",
    "UPPER",
    "a%20b",
    "%C3%A9t%C3%A9",
    "x" * 300,
    "-lead",
    "%25",
]
BODIES: list[tuple[str, bytes]] = [
    ("malformed", b"{"),
    ("truncated", b'{"id": "x"'),
    ("array", b"[]"),
    ("string", b'"x"'),
    ("number", b"12"),
    ("null", b"null"),
    ("unknown field", b'{"zz_unknown_field": 1}'),
    ("not utf-8", b"\xff\xfe\xfd"),
    ("deep nesting", b"[" * 50_000),
    ("nul", b'{"id": "a\\u0000b", "value": "\\u0000"}'),
    ("lone surrogate", b'{"id": "\\ud800", "value": "\\ud800", "source": "\\udfff"}'),
    ("huge number", b'{"version": 1e999, "limit": 99999999999999999999999}'),
]
MINE = ("/api/v1/admin/apps", "/api/v1/admin/scripts")


def _mine(path: str) -> bool:
    """The routes of this issue (apps, keys, secrets, scripts), whose statuses are pinned."""
    if path.startswith(MINE[1]):
        return True
    rest = path.removeprefix(MINE[0]).removeprefix("/{app}").split("/")
    return path.startswith(MINE[0]) and rest[1:2] in ([], ["keys"], ["secrets"])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        bind="127.0.0.1:0",
        state_dir=tmp_path / "state",
        admin_token=ADMIN_TOKEN,
        max_admin_body_bytes=CAP,
    )


def _operations(daemon: Daemon) -> list[tuple[str, str, dict[str, Any]]]:
    doc = build_document(daemon.client.server.app)
    ops = []
    for path, methods in doc["paths"].items():
        if not path.startswith("/api/v1/admin"):
            continue
        for method, op in methods.items():
            if not method.startswith("x-"):
                ops.append((method.upper(), path, op))
    assert ops, "no admin routes found"
    return ops


def _fill(path: str, override: dict[str, str] | None = None) -> str:
    out = path
    for name in _params(path):
        out = out.replace("{" + name + "}", (override or {}).get(name, GOOD.get(name, "x")))
    return out


def _params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _example(op: dict[str, Any]) -> Any:
    content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    return content.get("example")


async def _send(
    daemon: Daemon, method: str, path: str, data: bytes | None = None
) -> tuple[int, Any]:
    """One request; the body is read only when it is an error (a 2xx may be a stream)."""
    headers = {**daemon.headers, "Content-Type": "application/json"}
    resp = await daemon.client.request(
        method,
        URL(path, encoded=True),
        data=data,
        headers=headers,
        timeout=ClientTimeout(total=10),
    )
    async with resp:
        if resp.status < 400:
            return resp.status, None
        assert resp.content_type == "application/json", (method, path, resp.status)
        return resp.status, json.loads(await resp.read())


def _assert_shape(status: int, body: Any, what: str) -> None:
    assert status < 500, (what, status, body)
    if status >= 400:
        assert isinstance(body, dict), what
        assert set(body) == {"error"}, (what, body)
        assert set(body["error"]) == {"code", "message"}, (what, body)
        assert body["error"]["code"] in CODES, (what, body)
        assert isinstance(body["error"]["message"], str), (what, body)
        assert "Traceback" not in body["error"]["message"], what


async def _prepare(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("hello", "def handle(ctx):\n    return 1\n", app="home")


def _wrong(value: Any) -> Any:
    """A value of another JSON type than `value`."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return "1"
    if isinstance(value, str):
        return 1
    if isinstance(value, list):
        return {"a": 1}
    return [1]


async def test_malformed_bodies_on_every_route(daemon: Daemon) -> None:
    await _prepare(daemon)
    for method, path, _ in _operations(daemon):
        if method in ("GET", "DELETE"):
            continue
        for what, data in BODIES:
            status, body = await _send(daemon, method, _fill(path), data)
            _assert_shape(status, body, f"{method} {path} {what}")
            if _mine(path):
                assert status in (400, 404), (method, path, what, status, body)


async def test_wrong_types_in_every_documented_field(daemon: Daemon) -> None:
    await _prepare(daemon)
    for method, path, op in _operations(daemon):
        example = _example(op)
        if method in ("GET", "DELETE") or not isinstance(example, dict):
            continue
        variants = [(f, _wrong(v)) for f, v in example.items()]
        variants += [(f, "\ud800 \x00") for f, v in example.items() if isinstance(v, str)]
        for field, value in variants:
            data = json.dumps({**example, field: value}).encode()
            status, body = await _send(daemon, method, _fill(path), data)
            _assert_shape(status, body, f"{method} {path} {field}")
            if _mine(path):
                assert status in (400, 404), (method, path, field, status, body)


async def test_oversized_bodies_on_every_route(daemon: Daemon) -> None:
    await _prepare(daemon)
    big = b'{"value": "' + b"x" * CAP + b'"}'
    for method, path, _ in _operations(daemon):
        if method in ("GET", "DELETE"):
            continue
        status, body = await _send(daemon, method, _fill(path), big)
        _assert_shape(status, body, f"{method} {path} oversized")
        if _mine(path):
            assert status == 413, (method, path, status, body)
            assert body["error"]["code"] == "payload_too_large"


async def test_chunked_oversized_body_is_413(daemon: Daemon) -> None:
    async def chunks() -> Any:
        for _ in range(CAP // 1024 + 2):
            yield b" " * 1024

    resp = await daemon.client.post("/api/v1/admin/apps", data=chunks(), headers=daemon.headers)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_bad_ids_and_path_traversal_on_every_route(daemon: Daemon) -> None:
    await _prepare(daemon)
    for method, path, _ in _operations(daemon):
        for name in _params(path):
            for bad in BAD_IDS:
                url = _fill(path, {name: bad})
                status, body = await _send(daemon, method, url, b"{}")
                _assert_shape(status, body, f"{method} {url}")
                if _mine(path) and name in ("app", "id"):
                    assert status in (400, 404), (method, url, status, body)


async def test_bad_query_parameters_on_list_routes(daemon: Daemon) -> None:
    await _prepare(daemon)
    queries = [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=99999999999999999999",
        "cursor=%%%",
        "cursor=!!!!",
        "cursor=%FF%FE",
        "app=..%2F",
        "app=UPPER",
        "script=..",
    ]
    for method, path, _ in _operations(daemon):
        if method != "GET":
            continue
        for query in queries:
            status, body = await _send(daemon, method, f"{_fill(path)}?{query}")
            _assert_shape(status, body, f"GET {path}?{query}")
            if path in MINE and (
                query.startswith("limit") or (path.endswith("scripts") and query.startswith("app"))
            ):
                assert status in (400, 404), (path, query, status, body)


async def test_traversal_reaches_no_other_resource(daemon: Daemon) -> None:
    await _prepare(daemon)
    for raw in ("..%2Fhello", "x%2F..%2Fhello", "%2E%2E%2Fscripts%2Fhello"):
        status, body = await _send(daemon, "GET", f"/api/v1/admin/scripts/{raw}")
        assert status in (400, 404), raw
        _assert_shape(status, body, raw)
        status, body = await _send(daemon, "DELETE", f"/api/v1/admin/apps/{raw}")
        assert status in (400, 404), raw
    await daemon.call("GET", "/api/v1/admin/scripts/hello", expect=200)
    await daemon.call("GET", "/api/v1/admin/apps/home", expect=200)
