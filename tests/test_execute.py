"""The execute path end to end: real daemon, real zygote, real sandboxed workers."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from picloud.executor import EXECUTOR
from tests.conftest import Daemon

HELLO = "def handle(ctx):\n    return {'hello': 'world'}\n"
ECHO_CTX = "def handle(ctx):\n    return ctx\n"
PID = "import os\ndef handle(ctx):\n    return os.getpid()\n"
COUNTER = "n = 0\ndef handle(ctx):\n    global n\n    n += 1\n    return n\n"


async def _run(daemon: Daemon, path: str, method: str = "GET", **kw: Any) -> tuple[int, Any]:
    resp = await daemon.client.request(method, path, **kw)
    body: Any = await resp.read()
    if resp.content_type == "application/json":
        body = await resp.json()
    return resp.status, body


@pytest.fixture
async def home(daemon: Daemon) -> Daemon:
    await daemon.make_app("home")
    return daemon


async def test_hello_returns_json(home: Daemon) -> None:
    await home.deploy("hello", HELLO)
    resp = await home.client.get("/api/v1/execute/hello")
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    assert await resp.json() == {"hello": "world"}
    assert resp.headers["X-PiCloud-Invocation"].startswith("inv_")


async def test_ctx_is_exactly_the_contract(home: Daemon) -> None:
    await home.deploy("echo", ECHO_CTX)
    await home.call(
        "PUT", "/api/v1/admin/apps/home/secrets/token", json={"value": "s3cret"}, expect=None
    )
    status, ctx = await _run(
        home,
        "/api/v1/execute/echo/a/b?x=1&x=2&y=z",
        "POST",
        json={"n": 1},
        headers={"X-Thing": "Yes"},
    )
    assert status == 200, ctx
    assert set(ctx) == {
        "sdk_version",
        "app_id",
        "script_id",
        "invocation_id",
        "request",
        "is_dead_letter_handler",
        "secrets",
    }
    assert ctx["sdk_version"] == "1.0"
    assert (ctx["app_id"], ctx["script_id"]) == ("home", "echo")
    assert ctx["invocation_id"].startswith("inv_")
    assert ctx["is_dead_letter_handler"] is False
    req = ctx["request"]
    assert set(req) == {"method", "path", "tail", "query", "headers", "body", "json"}
    assert req["method"] == "POST"
    assert req["path"] == "/api/v1/execute/echo/a/b"
    assert req["tail"] == "/a/b"
    assert req["query"] == {"x": "2", "y": "z"}
    assert req["headers"]["x-thing"] == "Yes"
    assert all(name == name.lower() for name in req["headers"])
    assert req["json"] == {"n": 1}
    assert req["body"] == '{"n": 1}'
    assert isinstance(ctx["secrets"], dict)


async def test_ctx_without_body(home: Daemon) -> None:
    await home.deploy("echo", ECHO_CTX)
    status, ctx = await _run(home, "/api/v1/execute/echo")
    assert status == 200
    assert ctx["request"]["tail"] == ""
    assert ctx["request"]["body"] is None
    assert ctx["request"]["json"] is None
    status, ctx = await _run(home, "/api/v1/execute/echo", "POST", data=b"not json")
    assert ctx["request"]["body"] == "not json"
    assert ctx["request"]["json"] is None


@pytest.mark.parametrize(
    ("ret", "status", "ctype", "body"),
    [
        ("{'a': [1, 2]}", 200, "application/json", b'{"a":[1,2]}'),
        ("[1, 'x']", 200, "application/json", b'[1,"x"]'),
        ("42", 200, "application/json", b"42"),
        ("True", 200, "application/json", b"true"),
        ("None", 204, None, b""),
        ("'héllo'", 200, "text/plain", "héllo".encode()),
        ("b'\\x00\\x01'", 200, "application/octet-stream", b"\x00\x01"),
        (
            "Response('made', status=201, headers={'X-A': 'b'})",
            201,
            "text/plain",
            b"made",
        ),
        (
            "Response({'k': 1}, status=202, headers={'Content-Type': 'application/x-k'})",
            202,
            "application/x-k",
            b'{"k":1}',
        ),
    ],
)
async def test_return_mapping(
    home: Daemon, ret: str, status: int, ctype: str | None, body: bytes
) -> None:
    await home.deploy("ret", f"def handle(ctx):\n    return {ret}\n")
    resp = await home.client.get("/api/v1/execute/ret")
    assert resp.status == status
    if ctype is not None:
        assert resp.content_type == ctype
    assert await resp.read() == body
    if status == 201:
        assert resp.headers["X-A"] == "b"


@pytest.mark.parametrize(
    ("source", "status", "code"),
    [
        ("def handle(ctx):\n    raise ValueError('boom')\n", 500, "script_error"),
        ("import sys\ndef handle(ctx):\n    sys.exit(3)\n", 500, "script_error"),
        ("def handle(ctx):\n    return object()\n", 500, "script_error"),
        ("def handle(ctx):\n    return {'x': {1, 2}}\n", 500, "script_error"),
        ("def handle(ctx):\n    return Response('x', status=999)\n", 500, "script_error"),
        ("raise RuntimeError('at import')\ndef handle(ctx):\n    return 1\n", 500, "script_error"),
    ],
)
async def test_script_errors(home: Daemon, source: str, status: int, code: str) -> None:
    await home.deploy("bad", source)
    got, body = await _run(home, "/api/v1/execute/bad")
    assert got == status
    assert body["error"]["code"] == code
    assert "Traceback" not in body["error"]["message"]
    # and the worker still answers afterwards
    await home.deploy("hello", HELLO)
    assert (await _run(home, "/api/v1/execute/hello"))[0] == 200


async def test_traceback_goes_to_the_log_not_the_caller(home: Daemon) -> None:
    await home.deploy("bad", "def handle(ctx):\n    print('before')\n    raise KeyError('k')\n")
    resp = await home.client.get("/api/v1/execute/bad")
    body = await resp.json()
    assert body == {"error": {"code": "script_error", "message": "KeyError: 'k'"}}
    inv = await home.call(
        "GET", f"/api/v1/admin/invocations/{resp.headers['X-PiCloud-Invocation']}", expect=200
    )
    assert "before" in inv["log"]
    assert "Traceback" in inv["log"]
    assert "KeyError" in inv["log"]
    assert "worker.py" not in inv["log"]


async def test_unknown_script_is_404(home: Daemon) -> None:
    status, body = await _run(home, "/api/v1/execute/nope")
    assert status == 404
    assert body["error"]["code"] == "not_found"


async def test_private_script_needs_an_app_key(home: Daemon) -> None:
    await home.deploy("priv", HELLO, public=False)
    await home.make_app("other")
    key = (await home.call("POST", "/api/v1/admin/apps/home/keys", json={}, expect=201))["key"]
    other = (await home.call("POST", "/api/v1/admin/apps/other/keys", json={}, expect=201))["key"]
    status, body = await _run(home, "/api/v1/execute/priv")
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    status, body = await _run(home, "/api/v1/execute/priv", headers={"X-PiCloud-Key": other})
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    status, _ = await _run(home, "/api/v1/execute/priv", headers={"X-PiCloud-Key": key})
    assert status == 200
    auth = {"Authorization": f"Bearer {key}"}
    assert (await _run(home, "/api/v1/execute/priv", headers=auth))[0] == 200


async def test_body_cap_is_413(home: Daemon) -> None:
    await home.deploy("echo", ECHO_CTX)
    cap = home.settings.max_execute_body_bytes
    status, body = await _run(home, "/api/v1/execute/echo", "POST", data=b"x" * (cap + 1))
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    status, _ = await _run(home, "/api/v1/execute/echo", "POST", data=b"x" * 1000)
    assert status == 200


async def test_timeout_in_a_warm_worker_is_504_and_the_app_recovers(home: Daemon) -> None:
    await home.deploy("slow", "import time\ndef handle(ctx):\n    time.sleep(30)\n", timeout_ms=300)
    await home.deploy("hello", HELLO)
    assert (await _run(home, "/api/v1/execute/hello"))[0] == 200  # a warm worker exists
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await _run(home, "/api/v1/execute/slow")
    assert (status, body["error"]["code"]) == (504, "timeout")
    assert loop.time() - started < 3.0  # 0.3 s limit; slack for a loaded machine
    assert (await _run(home, "/api/v1/execute/hello"))[0] == 200


async def test_warm_workers_are_reused_and_fresh_ones_are_not(home: Daemon) -> None:
    await home.deploy("count", COUNTER)
    seen = [(await _run(home, "/api/v1/execute/count"))[1] for _ in range(5)]
    assert seen == [1, 2, 3, 4, 5]  # sequential calls land on the same warm worker
    await home.deploy("fcount", COUNTER, isolation="fresh")
    fresh = [(await _run(home, "/api/v1/execute/fcount"))[1] for _ in range(4)]
    assert fresh == [1, 1, 1, 1]
    await home.deploy("fpid", PID, isolation="fresh")
    fresh_pids = [(await _run(home, "/api/v1/execute/fpid"))[1] for _ in range(3)]
    assert len(set(fresh_pids)) == 3


async def test_new_version_runs_in_the_same_warm_worker(home: Daemon) -> None:
    await home.deploy("v", PID)
    pid1 = (await _run(home, "/api/v1/execute/v"))[1]
    await home.call(
        "PUT",
        "/api/v1/admin/scripts/v",
        json={"source": "import os\ndef handle(ctx):\n    return [os.getpid()]\n"},
        expect=200,
    )
    assert (await _run(home, "/api/v1/execute/v"))[1] == [pid1]


async def test_workers_are_recycled_after_max_invocations(home: Daemon) -> None:
    pool = home.client.app[EXECUTOR].pool
    pool.settings = dataclasses.replace(pool.settings, worker_max_invocations=3)
    await home.deploy("count", COUNTER)
    seen = [(await _run(home, "/api/v1/execute/count"))[1] for _ in range(7)]
    assert seen == [1, 2, 3, 1, 2, 3, 1]


async def test_apps_never_share_a_worker(home: Daemon) -> None:
    await home.make_app("other")
    await home.deploy("a", PID)
    await home.deploy("b", PID, app="other")
    pa = {(await _run(home, "/api/v1/execute/a"))[1] for _ in range(3)}
    pb = {(await _run(home, "/api/v1/execute/b"))[1] for _ in range(3)}
    assert pa
    assert pb
    assert not pa & pb


async def test_state_survives_only_within_an_app(home: Daemon) -> None:
    poison = "import json\ndef handle(ctx):\n    json.dumps = lambda *a, **k: 'poisoned'\n"
    check = "import json\ndef handle(ctx):\n    return json.dumps(1)\n"
    await home.make_app("other")
    await home.deploy("poison", poison)
    await home.deploy("check", check, app="other")
    assert (await _run(home, "/api/v1/execute/poison"))[0] == 204
    assert (await _run(home, "/api/v1/execute/check"))[1] == b"1"


async def test_admission_refuses_with_503_and_retry_after(home: Daemon) -> None:
    executor = home.client.app[EXECUTOR]
    adm = executor.admission
    adm.max_per_app, adm.max_queue, adm.timeout_s = 1, 1, 0.3
    await home.deploy("slow", "import time\ndef handle(ctx):\n    time.sleep(0.8)\n    return 1\n")
    calls = [asyncio.ensure_future(_run(home, "/api/v1/execute/slow")) for _ in range(3)]
    results = await asyncio.gather(*calls)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200, 503, 503], results
    resp = await home.client.get("/api/v1/execute/slow")
    assert resp.status == 200
    first = asyncio.ensure_future(home.client.get("/api/v1/execute/slow"))
    for _ in range(200):  # until the first call holds the app's only slot
        if adm.running == 1:
            break
        await asyncio.sleep(0.01)
    resp = await home.client.get("/api/v1/execute/slow")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["error"]["code"] == "unavailable"
    (await first).close()


async def test_client_disconnect_kills_the_worker(home: Daemon) -> None:
    await home.deploy("hang", PID.replace("return", "while True: pass\n    return"))
    await home.deploy("pid", PID)
    executor = home.client.app[EXECUTOR]
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(home.client.get("/api/v1/execute/hang"), 0.3)
    for _ in range(40):
        await asyncio.sleep(0.1)
        if executor.admission.running == 0:
            break
    assert executor.admission.running == 0
    assert (await _run(home, "/api/v1/execute/pid"))[0] == 200
    runs = await home.call("GET", "/api/v1/admin/invocations?script=hang", expect=200)
    assert runs["items"][0]["status"] == "internal"
    assert "went away" in runs["items"][0]["error"]


async def test_healthz_is_ok_with_a_pool(home: Daemon) -> None:
    resp = await home.client.get("/healthz")
    assert resp.status == 200


async def test_sandbox_layers_are_reported(daemon: Daemon) -> None:
    layers: dict[str, Any] = daemon.client.app[EXECUTOR].layers
    assert layers["mode"] == "auto"
    assert layers["seccomp"] is True
    assert layers["fd_close"] is True


async def test_sdk_calls_reach_the_broker(home: Daemon) -> None:
    source = (
        "def handle(ctx):\n"
        "    c = kv.collection('widgets')\n"
        "    c.set('k', {'n': 1})\n"
        "    try:\n"
        "        c.set('', 1)\n"
        "        bad = 'accepted'\n"
        "    except ValueError as exc:\n"
        "        bad = 'ValueError'\n"
        "    return {'got': c.get('k'), 'bad': bad}\n"
    )
    await home.deploy("kvuse", source)
    status, body = await _run(home, "/api/v1/execute/kvuse")
    assert status == 200, body
    assert body == {"got": {"n": 1}, "bad": "ValueError"}


async def test_print_and_log_are_captured(home: Daemon) -> None:
    source = "def handle(ctx):\n    print('p', 1)\n    log.warning('w %d', 2)\n    return None\n"
    await home.deploy("logs", source)
    resp = await home.client.get("/api/v1/execute/logs")
    assert resp.status == 204
    inv_id = resp.headers["X-PiCloud-Invocation"]
    inv = await home.call("GET", f"/api/v1/admin/invocations/{inv_id}", expect=200)
    assert inv["log"] == "p 1\nWARNING w 2\n"


async def test_a_revoked_key_is_refused_at_once(home: Daemon) -> None:
    await home.deploy("priv", HELLO, public=False)
    made = await home.call("POST", "/api/v1/admin/apps/home/keys", json={}, expect=201)
    headers = {"X-PiCloud-Key": made["key"]}
    assert (await _run(home, "/api/v1/execute/priv", headers=headers))[0] == 200
    await home.call("DELETE", f"/api/v1/admin/apps/home/keys/{made['id']}", expect=None)
    assert (await _run(home, "/api/v1/execute/priv", headers=headers))[0] == 401


async def test_a_recreated_script_runs_its_new_source(home: Daemon) -> None:
    await home.deploy("again", "def handle(ctx):\n    return 'old'\n")
    assert (await _run(home, "/api/v1/execute/again"))[1] == b"old"
    await home.call("DELETE", "/api/v1/admin/scripts/again", expect=None)
    await home.deploy("again", "def handle(ctx):\n    return 'new'\n")
    assert (await _run(home, "/api/v1/execute/again"))[1] == b"new"


@pytest.mark.parametrize(("size", "status"), [(3 << 20, 200), (5 << 20, 500)])
async def test_response_body_cap(home: Daemon, size: int, status: int) -> None:
    await home.deploy("big", f"def handle(ctx):\n    return 'x' * {size}\n")
    got, body = await _run(home, "/api/v1/execute/big")
    assert got == status
    if status == 500:
        assert body["error"]["code"] == "resource_limit"
    else:
        assert len(body) == size


async def test_forget_app_retires_its_warm_workers(home: Daemon) -> None:
    await home.deploy("pid", PID)
    first = (await _run(home, "/api/v1/execute/pid"))[1]
    assert (await _run(home, "/api/v1/execute/pid"))[1] == first
    home.client.app[EXECUTOR].forget_app("home")
    assert (await _run(home, "/api/v1/execute/pid"))[1] != first
