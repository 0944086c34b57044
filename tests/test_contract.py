"""PRODUCT.md walked from outside: every route, shape and code a user relies on, black-box."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ERROR_CODES, Daemon
from tests.daemon_process import clean_env, cli

A = "/api/v1/admin"
X = "/api/v1/execute"
MiB = 1024 * 1024


async def run(d: Daemon, sid: str, method: str = "GET", tail: str = "", **kw: Any) -> Any:
    """An execute call: (status, content type, decoded body, headers)."""
    resp = await d.client.request(method, f"{X}/{sid}{tail}", **kw)
    body: Any = await resp.read()
    if resp.content_type == "application/json":
        body = await resp.json()
    return resp.status, resp.content_type, body, resp.headers


def is_error(body: Any, code: str) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"error"}
        and set(body["error"]) == {"code", "message"}
        and body["error"]["code"] == code
        and code in ERROR_CODES
    )


async def wait_for(check: Callable[[], Awaitable[Any]], limit_s: float = 10.0) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


# --- surface ----------------------------------------------------------------------------


async def test_surface_routes(daemon: Daemon) -> None:
    c = daemon.client
    resp = await c.get("/healthz")
    assert (resp.status, resp.content_type, await resp.text()) == (200, "text/plain", "ok")
    version = await (await c.get("/version")).json()
    assert set(version) == {"product", "sdk", "api", "schema", "wire"}
    assert version["sdk"] == "1.0"
    assert version["api"] == 1
    assert version["wire"] == 1
    assert version["product"].startswith("0.")
    assert isinstance(version["schema"], int)
    for path in ("/api/nope", "/api/", "/api/v2/admin/apps", "/api/v1/execute", f"{A}x"):
        resp = await c.get(path)
        assert (resp.status, resp.content_type) == (404, "application/json"), path
        assert is_error(await resp.json(), "not_found")
    resp = await c.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    resp = await c.get(f"{A}/apps", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401
    assert is_error(await resp.json(), "unauthorized")


async def test_openapi_lists_every_method_of_the_execute_route(daemon: Daemon) -> None:
    doc = await (await daemon.client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    for path in (f"{A}/apps", f"{A}/scripts/{{id}}/rollback", f"{A}/dead-letters/{{id}}/replay"):
        assert path in doc["paths"], path
    # Regression: the data plane was listed only under "x-any", invisible to OpenAPI tools.
    for path in (f"{X}/{{id}}", f"{X}/{{id}}/{{tail}}"):
        assert {"get", "post", "put", "delete", "patch"} <= set(doc["paths"][path]), path
    # Regression: the catch-all was documented as answering 200 "success".
    assert set(doc["paths"]["/api/{tail}"]["get"]["responses"]) == {"404", "default"}
    schemes = doc["components"]["securitySchemes"].values()
    assert {"type": "apiKey", "in": "header", "name": "X-PiCloud-Key"} in schemes


# --- admin minimal shapes ---------------------------------------------------------------


async def test_admin_minimal_shapes(daemon: Daemon) -> None:
    assert (await daemon.call("POST", f"{A}/apps", json={"id": "home"}, expect=201))["id"]
    dup = await daemon.call("POST", f"{A}/apps", json={"id": "home"}, expect=409)
    assert is_error(dup, "conflict")
    key = await daemon.call("POST", f"{A}/apps/home/keys", json={}, expect=201)
    assert key["key"]
    listed = await daemon.call("GET", f"{A}/apps/home/keys", expect=200)
    assert set(listed) == {"items", "cursor"}
    assert "key" not in listed["items"][0]
    src = "def handle(ctx):\n    return 1\n"
    body = {"id": "hello", "app": "home", "source": src, "public": True}
    made = await daemon.call(
        "POST", f"{A}/scripts", json={**body, "timeout_ms": 5000, "memory_mb": 64}, expect=201
    )
    assert (made["id"], made["version"]) == ("hello", 1)
    upd = await daemon.call("PUT", f"{A}/scripts/hello", json={"source": src + "#\n"}, expect=200)
    assert upd["version"] == 2
    versions = await daemon.call("GET", f"{A}/scripts/hello/versions", expect=200)
    assert [v["version"] for v in versions["items"]] == [1, 2]
    assert "cursor" in versions
    back = await daemon.call("POST", f"{A}/scripts/hello/rollback", json={"version": 1}, expect=200)
    assert back["version"] == 3
    assert (await daemon.call("GET", f"{A}/scripts/hello", expect=200))["source"] == src
    for path in ("/apps", "/scripts", "/triggers", "/dead-letters", "/invocations"):
        assert set(await daemon.call("GET", A + path, expect=200)) >= {"items", "cursor"}
    await daemon.call("DELETE", f"{A}/scripts/hello", expect=204)
    gone = await daemon.call("GET", f"{A}/scripts/hello", expect=404)
    assert is_error(gone, "not_found")


@pytest.mark.parametrize(
    ("fields", "status", "code", "needle"),
    [
        ({"source": "def handle(ctx) pass"}, 400, "bad_request", "line 1"),
        ({"source": "x = 1\ny = (\n"}, 400, "bad_request", "line 2"),
        ({"source": "def other(ctx):\n    pass\n"}, 400, "bad_request", "handle"),
        ({"source": "handle = 3\n"}, 400, "bad_request", "line 1: handle must be a function"),
        ({"source": "x = 1\nhandle = [1]\n"}, 400, "bad_request", "line 2"),
        ({"timeout_ms": 60001}, 400, "bad_request", "timeout_ms"),
        ({"memory_mb": 513}, 400, "bad_request", "memory_mb"),
        ({"timeout_ms": 0}, 400, "bad_request", "timeout_ms"),
        ({"id": "Bad"}, 400, "bad_request", "id"),
        ({"source": "#" * (256 * 1024) + "\ndef handle(ctx): pass"}, 413, "payload_too_large", ""),
    ],
)
async def test_script_upload_refusals(
    daemon: Daemon, fields: dict[str, Any], status: int, code: str, needle: str
) -> None:
    await daemon.make_app("home")
    body = {"id": "s", "app": "home", "source": "def handle(ctx): pass", **fields}
    got = await daemon.call("POST", f"{A}/scripts", json=body, expect=status)
    assert is_error(got, code)
    assert needle in got["error"]["message"]


async def test_script_caps_are_inclusive(daemon: Daemon) -> None:
    await daemon.make_app("home")
    made = await daemon.deploy("s", "def handle(ctx): pass", timeout_ms=60000, memory_mb=512)
    assert (made["timeout_ms"], made["memory_mb"]) == (60000, 512)
    made = await daemon.deploy("d", "def handle(ctx): pass")
    assert (made["timeout_ms"], made["memory_mb"]) == (5000, 64)
    for change in ({"timeout_ms": 60001}, {"memory_mb": 513}):
        got = await daemon.call("PUT", f"{A}/scripts/s", json=change, expect=400)
        assert is_error(got, "bad_request")


# --- execute ----------------------------------------------------------------------------


async def test_private_scripts_take_either_key_header(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.make_app("other")
    await daemon.deploy("priv", "def handle(ctx):\n    return 'ok'", public=False)
    key = (await daemon.call("POST", f"{A}/apps/home/keys", json={}, expect=201))["key"]
    alien = (await daemon.call("POST", f"{A}/apps/other/keys", json={}, expect=201))["key"]
    for headers in ({}, {"X-PiCloud-Key": "pc_key_wrong"}, {"Authorization": f"Bearer {alien}"}):
        status, _, body, _ = await run(daemon, "priv", headers=headers)
        assert (status, is_error(body, "unauthorized")) == (401, True), headers
    both = {"X-PiCloud-Key": key, "Authorization": "Bearer for-a-proxy"}
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-PiCloud-Key": key}, both):
        assert (await run(daemon, "priv", headers=headers))[:3] == (200, "text/plain", b"ok")
    status, _, body, _ = await run(daemon, "nosuch")
    assert status == 404
    assert is_error(body, "not_found")


async def test_ctx_is_the_documented_dict(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.call("PUT", f"{A}/apps/home/secrets/tok", json={"value": "s3"}, expect=200)
    await daemon.deploy("echo", "def handle(ctx):\n    return ctx")
    status, _, ctx, _ = await run(
        daemon, "echo", "POST", "/a/b?x=1&x=2&y=3", data=b'{"q": 1}', headers={"X-Foo": "Bar"}
    )
    assert status == 200
    assert set(ctx) == {
        "sdk_version",
        "app_id",
        "script_id",
        "invocation_id",
        "request",
        "is_dead_letter_handler",
        "secrets",
    }
    assert (ctx["sdk_version"], ctx["app_id"], ctx["script_id"]) == ("1.0", "home", "echo")
    assert isinstance(ctx["invocation_id"], str)
    assert ctx["invocation_id"]
    assert ctx["is_dead_letter_handler"] is False
    assert ctx["secrets"] == {"tok": "s3"}
    req = ctx["request"]
    assert set(req) == {"method", "path", "tail", "query", "headers", "body", "json"}
    assert (req["method"], req["path"], req["tail"]) == ("POST", f"{X}/echo/a/b", "/a/b")
    assert req["query"] == {"x": "2", "y": "3"}
    assert req["headers"]["x-foo"] == "Bar"
    assert all(k == k.lower() for k in req["headers"])
    assert (req["body"], req["json"]) == ('{"q": 1}', {"q": 1})
    req = (await run(daemon, "echo"))[2]["request"]
    assert (req["tail"], req["query"], req["body"], req["json"]) == ("", {}, None, None)
    req = (await run(daemon, "echo", "PUT", data=b"not json"))[2]["request"]
    assert (req["body"], req["json"]) == ("not json", None)


@pytest.mark.parametrize(
    ("expr", "status", "ctype", "body"),
    [
        ("{'a': 1}", 200, "application/json", {"a": 1}),
        ("[1, 2]", 200, "application/json", [1, 2]),
        ("1.5", 200, "application/json", 1.5),
        ("True", 200, "application/json", True),
        ("None", 204, "application/octet-stream", b""),
        ("'hi'", 200, "text/plain", b"hi"),
        ("b'\\x00\\x01'", 200, "application/octet-stream", b"\x00\x01"),
        ("Response('made', status=201, headers={'X-A': 'b'})", 201, "text/plain", b"made"),
        ("Response({'x': 1}, status=202)", 202, "application/json", {"x": 1}),
    ],
)
async def test_return_value_mapping(
    daemon: Daemon, expr: str, status: int, ctype: str, body: Any
) -> None:
    await daemon.make_app("home")
    await daemon.deploy("r", f"def handle(ctx):\n    return {expr}")
    got = await run(daemon, "r")
    assert got[0] == status
    assert got[2] == body
    if status != 204:
        assert got[1] == ctype
    if "X-A" in expr:
        assert got[3]["X-A"] == "b"


async def test_script_failures_map_to_codes(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy(
        "boom", "def handle(ctx):\n    print('before')\n    raise RuntimeError('x')"
    )
    status, _, body, headers = await run(daemon, "boom")
    assert status == 500
    assert is_error(body, "script_error")
    assert "Traceback" not in str(body)
    assert "line" not in body["error"]["message"]
    inv_id = headers["X-PiCloud-Invocation"]
    inv = await daemon.call("GET", f"{A}/invocations/{inv_id}", expect=200)
    assert "before" in inv["log"]
    assert "Traceback" in inv["log"]
    assert inv["status"] == "script_error"
    page = await daemon.call("GET", f"{A}/invocations?script=boom&limit=20", expect=200)
    assert [i["id"] for i in page["items"]] == [inv_id]
    assert "cursor" in page
    cases = {
        "ex1": ("import sys\ndef handle(ctx):\n    sys.exit()", {}, 500, "script_error"),
        "ex2": ("import sys\ndef handle(ctx):\n    sys.exit(0)", {}, 500, "script_error"),
        "slow": ("def handle(ctx):\n    while True: pass", {"timeout_ms": 300}, 504, "timeout"),
        "fat": (
            "def handle(ctx):\n    return len(bytearray(200 << 20))",
            {},
            500,
            "resource_limit",
        ),
    }
    for sid, (src, fields, want_status, code) in cases.items():
        await daemon.deploy(sid, src, **fields)
        status, _, body, _ = await run(daemon, sid)
        assert (status, is_error(body, code)) == (want_status, True), (sid, body)


async def test_body_caps(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("n", "def handle(ctx):\n    return len(ctx['request']['body'])")
    assert (await run(daemon, "n", "POST", data=b"a" * MiB))[2] == MiB
    status, _, body, _ = await run(daemon, "n", "POST", data=b"a" * (MiB + 1))
    assert status == 413
    assert is_error(body, "payload_too_large")
    big = b'{"value": "' + b"a" * (2 * MiB) + b'"}'
    got = await daemon.call(
        "PUT",
        f"{A}/apps/home/kv/c/k",
        data=big,
        headers={"Content-Type": "application/json"},
        expect=413,
    )
    assert is_error(got, "payload_too_large")


async def test_log_capture_is_capped_with_a_marker(daemon: Daemon) -> None:
    await daemon.make_app("home")
    src = (
        "def handle(ctx):\n    for _ in range(2000):\n        print('x' * 99)\n    log.info('end')"
    )
    await daemon.deploy("chatty", src)
    _, _, _, headers = await run(daemon, "chatty")
    inv = await daemon.call("GET", f"{A}/invocations/{headers['X-PiCloud-Invocation']}")
    assert 64 * 1024 <= len(inv["log"].encode()) < 64 * 1024 + 200
    assert "truncated" in inv["log"][-100:]


async def test_sdk_names_and_utility_modules(daemon: Daemon) -> None:
    await daemon.make_app("home")
    src = (
        "from picloud.sdk import kv as k2, log as l2, Response as R2\n"
        "import json, base64, uuid, random, secrets, datetime, time, hashlib, hmac, re, math\n"
        "def handle(ctx):\n"
        "    assert kv is k2 and log is l2 and Response is R2\n"
        "    hmac.new(b'k', b'm', hashlib.sha256).hexdigest()\n"
        "    return [uuid.uuid4().hex != '', secrets.token_hex(2) != '', math.pi > 3,\n"
        "            bool(re.match('a', 'a')), base64.b64encode(b'a').decode(),\n"
        "            json.loads('1'), random.random() < 1, time.time() > 0,\n"
        "            datetime.datetime.now(datetime.timezone.utc).year > 2000]\n"
    )
    await daemon.deploy("mods", src)
    status, _, body, _ = await run(daemon, "mods")
    assert status == 200
    assert body == [True, True, True, True, "YQ==", 1, True, True, True]


@pytest.mark.parametrize(
    "code",
    [
        "import socket\n    socket.create_connection(('127.0.0.1', PORT), timeout=1)",
        "import subprocess\n    subprocess.run(['true'])",
        "import os\n    os.fork()",
        "open(STATE + '/picloud.db', 'rb').read(16)",
        "open(STATE + '/admin.token').read()",
    ],
)
async def test_sandbox_refuses(daemon: Daemon, code: str) -> None:
    await daemon.make_app("home")
    port = daemon.client.server.port
    src = f"PORT = {port}\nSTATE = {str(daemon.settings.state_dir)!r}\ndef handle(ctx):\n    {code}"
    await daemon.deploy("jail", src)
    status, _, body, _ = await run(daemon, "jail")
    assert (status, is_error(body, "script_error")) == (500, True), body


# --- KV ---------------------------------------------------------------------------------

KV_SCRIPT = """
def handle(ctx):
    w = kv.collection("widgets")
    out = [w.set("k", {"n": 1}), w.get("k"), w.has("k"), w.delete("k"), w.delete("k"),
           w.get("k"), w.has("k")]
    w.set("n", None)
    out += [w.has("n"), w.get("n")]
    for i in range(5):
        w.set("p%d" % i, i)
    first = w.list(prefix="p", limit=2)
    out += [first, w.list(prefix="p", limit=2, cursor=first["cursor"])]
    out.append(w.list(prefix="p", limit=10)["cursor"])
    out += [w.incr("c"), w.incr("c", by=5)]
    w.set("é" * 256, 1)
    errors = []
    for bad in (lambda: w.set("", 1), lambda: w.set("é" * 257, 1), lambda: w.set(1, 1),
                lambda: w.set("v", {1, 2}), lambda: kv.collection(""),
                lambda: kv.collection("bad/name"), lambda: w.set("v", "x" * (1 << 20))):
        try:
            bad()
            errors.append(None)
        except (ValueError, TypeError) as exc:
            errors.append(type(exc).__name__)
    return out + [errors]
"""


async def test_kv_sdk_rules(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("kvs", KV_SCRIPT)
    status, _, out, _ = await run(daemon, "kvs")
    assert status == 200, out
    assert out[:7] == [None, {"n": 1}, True, True, False, None, False]
    assert out[7:9] == [True, None]
    first, second = out[9], out[10]
    assert [i["key"] for i in first["items"]] == ["p0", "p1"]
    assert first["cursor"]
    assert second["items"] == [{"key": "p2", "value": 2}, {"key": "p3", "value": 3}]
    assert out[11] is None
    assert out[12:14] == [1, 6]
    assert out[14] == ["ValueError", "ValueError", "TypeError", "TypeError"] + ["ValueError"] * 3


async def test_kv_ttl_expires(daemon: Daemon) -> None:
    await daemon.make_app("home")
    src = "def handle(ctx):\n    w = kv.collection('t')\n    if ctx['request']['query']:\n"
    src += "        w.set('k', 1, ttl=1)\n    return [w.get('k'), w.has('k')]"
    await daemon.deploy("ttl", src)
    assert (await run(daemon, "ttl", tail="?set=1"))[2] == [1, True]
    await asyncio.sleep(1.2)
    assert (await run(daemon, "ttl"))[2] == [None, False]


async def test_kv_admin_shapes(daemon: Daemon) -> None:
    await daemon.make_app("home")
    base = f"{A}/apps/home/kv/widgets"
    for key, value in (("a", 1), ("b", None), ("c", {"x": [1]})):
        await daemon.call("PUT", f"{base}/{key}", json={"value": value}, expect=200)
    assert await daemon.call("GET", f"{base}/b", expect=200) == {"key": "b", "value": None}
    page = await daemon.call("GET", f"{base}?prefix=&limit=2", expect=200)
    assert page["items"] == [{"key": "a", "value": 1}, {"key": "b", "value": None}]
    rest = await daemon.call("GET", f"{base}?limit=2&cursor={page['cursor']}", expect=200)
    assert rest == {"items": [{"key": "c", "value": {"x": [1]}}], "cursor": None}
    assert is_error(await daemon.call("PUT", f"{base}/z", json={}, expect=400), "bad_request")
    await daemon.call("DELETE", f"{base}/a", expect=204)
    assert is_error(await daemon.call("GET", f"{base}/a", expect=404), "not_found")
    bad = await daemon.call("GET", f"{base}/{'k' * 513}", expect=400)
    assert is_error(bad, "bad_request")


# --- triggers ---------------------------------------------------------------------------


async def kv_items(d: Daemon, app: str, coll: str) -> dict[str, Any]:
    page = await d.call("GET", f"{A}/apps/{app}/kv/{coll}?limit=100", expect=200)
    return {i["key"]: i["value"] for i in page["items"]}


async def test_kv_trigger_events(daemon: Daemon) -> None:
    await daemon.make_app("home")
    record = "def handle(ctx):\n    e = ctx['event']\n    kv.collection('seen').set("
    record += "e['op'], [e, ctx['is_dead_letter_handler'], 'request' in ctx])"
    await daemon.deploy("on-widget", record)
    body = {
        "app": "home",
        "kind": "kv",
        "collection": "widgets",
        "ops": ["insert", "update", "delete"],
        "script": "on-widget",
    }
    trig = await daemon.call("POST", f"{A}/triggers", json=body, expect=201)
    assert trig["id"]
    assert trig["max_attempts"] == 3
    await daemon.deploy(
        "w",
        "def handle(ctx):\n    w = kv.collection('widgets')\n"
        "    w.set('k', 1)\n    w.set('k', 2)\n    w.delete('k')",
    )
    await run(daemon, "w")
    seen = await wait_for(lambda: _when_len(kv_items(daemon, "home", "seen"), 3))
    for op, value in (("insert", 1), ("update", 2), ("delete", None)):
        event, dl, has_request = seen[op]
        assert (dl, has_request) == (False, False)
        assert set(event) == {"type", "op", "collection", "key", "value", "at"}
        assert (event["type"], event["op"], event["collection"]) == ("kv", op, "widgets")
        assert (event["key"], event["value"]) == ("k", value)
        assert event["at"].endswith("Z")
        assert "T" in event["at"]


async def _when_len(got: Awaitable[dict[str, Any]], n: int) -> dict[str, Any] | None:
    items = await got
    return items if len(items) >= n else None


async def test_dead_letter_flow(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("failer", "def handle(ctx):\n    raise ValueError('nope')")
    dl_src = "def handle(ctx):\n    kv.collection('dls').set('got', "
    dl_src += "[ctx['event'], ctx['is_dead_letter_handler']])"
    await daemon.deploy("dl", dl_src)
    body = {
        "app": "home",
        "kind": "kv",
        "collection": "fail",
        "ops": ["insert"],
        "script": "failer",
        "dead_letter_script": "dl",
        "backoff_base_ms": 50,
    }
    trig = await daemon.call("POST", f"{A}/triggers", json=body, expect=201)
    await daemon.call("PUT", f"{A}/apps/home/kv/fail/x", json={"value": 5}, expect=200)
    got = await wait_for(lambda: _when_len(kv_items(daemon, "home", "dls"), 1))
    event, is_dl = got["got"]
    assert is_dl is True
    assert set(event) == {"type", "original", "trigger_id", "script_id", "attempts", "error"}
    assert (event["type"], event["trigger_id"], event["script_id"]) == (
        "dead_letter",
        trig["id"],
        "failer",
    )
    assert event["attempts"] == 3
    assert "nope" in event["error"]
    assert (event["original"]["key"], event["original"]["value"]) == ("x", 5)
    runs = await daemon.call("GET", f"{A}/invocations?script=failer&limit=20", expect=200)
    assert len(runs["items"]) == 3
    assert len((await daemon.call("GET", f"{A}/invocations?script=dl"))["items"]) == 1
    page = await daemon.call("GET", f"{A}/dead-letters?app=home", expect=200)
    assert set(page) >= {"items", "cursor"}
    assert len(page["items"]) == 1
    dl_id = page["items"][0]["id"]
    await daemon.call("POST", f"{A}/dead-letters/{dl_id}/replay", expect=202)
    await daemon.call("DELETE", f"{A}/dead-letters/{dl_id}", expect=204)
    missing = await daemon.call("POST", f"{A}/dead-letters/{dl_id}/replay", expect=404)
    assert is_error(missing, "not_found")


async def test_trigger_loop_is_cut_at_depth_8(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy(
        "looper", "def handle(ctx):\n    kv.collection('ping').set('k', ctx['event']['value'] + 1)"
    )
    body = {"app": "home", "kind": "kv", "collection": "ping", "script": "looper"}
    await daemon.call("POST", f"{A}/triggers", json=body, expect=201)
    await daemon.call("PUT", f"{A}/apps/home/kv/ping/k", json={"value": 0}, expect=200)

    async def dead() -> list[Any]:
        page = await daemon.call("GET", f"{A}/dead-letters?app=home", expect=200)
        return list(page["items"])

    items = await wait_for(dead)
    assert items[0]["error"] == "trigger_loop"
    assert (await daemon.call("GET", f"{A}/apps/home/kv/ping/k"))["value"] == 8


def test_state_dir_precedence(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    runs = [
        ({"PICLOUD_STATE_DIR": str(tmp_path / "p"), "STATE_DIRECTORY": str(tmp_path / "s")}, "p"),
        ({"STATE_DIRECTORY": str(tmp_path / "s")}, "s"),
        ({}, "work/.picloud"),
    ]
    for extra, where in runs:
        out = cli(["token"], clean_env(tmp_path, **extra), cwd=work)
        token = (tmp_path / where / "admin.token").read_text().strip()
        assert token.startswith("pc_admin_"), where
        assert token in out.stdout, where


async def test_apps_never_see_each_other(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.make_app("other")
    await daemon.call("PUT", f"{A}/apps/home/secrets/tok", json={"value": "s3"}, expect=200)
    await daemon.deploy("writer", "def handle(ctx):\n    kv.collection('shared').set('k', 'A')")
    reader = "def handle(ctx):\n    c = kv.collection('shared')\n"
    reader += "    return [c.get('k'), c.has('k'), c.list()['items'], ctx['secrets']]"
    await daemon.deploy("reader", reader, app="other")
    await run(daemon, "writer")
    assert (await run(daemon, "reader"))[2] == [None, False, [], {}]
    empty = await daemon.call("GET", f"{A}/apps/other/kv/shared", expect=200)
    assert empty["items"] == []


async def test_triggered_ctx_has_event_and_no_request(daemon: Daemon) -> None:
    await daemon.make_app("home")
    src = "def handle(ctx):\n    kv.collection('out').set('ctx', sorted(ctx))"
    await daemon.deploy("keys", src)
    body = {"app": "home", "kind": "kv", "collection": "in", "script": "keys"}
    await daemon.call("POST", f"{A}/triggers", json=body, expect=201)
    await daemon.call("PUT", f"{A}/apps/home/kv/in/x", json={"value": 1}, expect=200)
    got = await wait_for(lambda: _when_len(kv_items(daemon, "home", "out"), 1))
    assert got["ctx"] == sorted(
        [
            "sdk_version",
            "app_id",
            "script_id",
            "invocation_id",
            "event",
            "is_dead_letter_handler",
            "secrets",
        ]
    )


# Mismatches the audit found in the executor, fixed there: a script that ends its own
# worker, and an error message that cannot be encoded as UTF-8.


@pytest.mark.parametrize(
    "code",
    [
        "import os\n    os._exit(0)",
        "import os, signal\n    os.kill(os.getpid(), signal.SIGKILL)",
        "import signal, time\n    signal.alarm(1)\n    time.sleep(2)",
    ],
)
async def test_a_script_killing_its_worker_is_a_script_error(daemon: Daemon, code: str) -> None:
    await daemon.make_app("home")
    await daemon.deploy("suicide", f"def handle(ctx):\n    {code}")
    status, _, body, _ = await run(daemon, "suicide")
    assert (status, is_error(body, "script_error")) == (500, True), body


async def test_an_exception_with_a_lone_surrogate_is_a_script_error(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("sur", "def handle(ctx):\n    raise ValueError('\\udcff')")
    status, _, body, _ = await run(daemon, "sur")
    assert (status, is_error(body, "script_error")) == (500, True), body


# Regressions for what the audit fixed in picloud/sdk/response.py and picloud/sdk/log.py.


@pytest.mark.parametrize(
    "headers",
    ["{'Bad Name': 'v'}", "{'X-A:': 'v'}", "{'X-A': 'a\\x00b'}", "{'X-A': '\\udcff'}", "{'': 'v'}"],
)
async def test_malformed_response_headers_are_a_script_error(daemon: Daemon, headers: str) -> None:
    # A name with a space used to reach the wire; a lone surrogate killed the worker (internal).
    await daemon.make_app("home")
    await daemon.deploy("hdr", f"def handle(ctx):\n    return Response('x', headers={headers})")
    status, _, body, _ = await run(daemon, "hdr")
    assert (status, is_error(body, "script_error")) == (500, True), body
    assert "header" in body["error"]["message"]


@pytest.mark.parametrize("status", [100, 101, 199])
async def test_an_informational_status_is_a_script_error(daemon: Daemon, status: int) -> None:
    # 100 used to cut the connection off and 101 to leave the client hanging.
    await daemon.make_app("home")
    await daemon.deploy("st", f"def handle(ctx):\n    return Response('x', status={status})")
    got = await asyncio.wait_for(run(daemon, "st"), 10)
    assert (got[0], is_error(got[2], "script_error")) == (500, True), got


@pytest.mark.parametrize(
    "code", ["print('a \\udcff b')", "log.info('a \\udcff b')", "sys.stdout.write('a \\ud800 b')"]
)
async def test_a_lone_surrogate_in_the_log_is_escaped(daemon: Daemon, code: str) -> None:
    # It used to kill the worker (500 internal) and lose the whole log.
    await daemon.make_app("home")
    await daemon.deploy("sur", f"import sys\ndef handle(ctx):\n    {code}\n    return 'ok'")
    status, _, body, headers = await run(daemon, "sur")
    assert (status, body) == (200, b"ok")
    inv = await daemon.call("GET", f"{A}/invocations/{headers['X-PiCloud-Invocation']}")
    assert "a \\ud" in inv["log"]
    assert inv["log"].rstrip().endswith(" b")


async def test_a_latin1_request_header_is_not_a_500(daemon: Daemon) -> None:
    # Cheap devices send Latin-1 header values; aiohttp hands them on as lone surrogates.
    await daemon.make_app("home")
    await daemon.deploy("h", "def handle(ctx):\n    return ctx['request']['headers']['x-bin']")
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.client.server.port)
    writer.write(
        f"GET {X}/h HTTP/1.1\r\nHost: x\r\nX-Bin: caf\xe9\r\nConnection: close\r\n\r\n".encode(
            "latin-1"
        )
    )
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK"
    assert answer.endswith("caf\xe9".encode())
