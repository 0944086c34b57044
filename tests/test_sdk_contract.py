"""Golden tests of the script contract, SDK 1.0 (PRODUCT.md, "The script contract").

Everything a script can notice is pinned here: the names `picloud.sdk` exports,
the signatures of `kv`, its collection handles, `log` and `Response`, the shapes
KV calls return, the exceptions wrong use raises, the keys of `ctx`, and how a
return value becomes an HTTP reply. A failure here means the SDK changed: if that
was intended, bump `SDK_VERSION` (docs/versioning.md: MINOR for an addition a
script cannot notice, MAJOR for anything else) and update the goldens with it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

import picloud.sdk
from picloud.sdk import Response, kv, log
from picloud.versions import SDK_VERSION
from tests.conftest import Daemon

GOLDEN_SDK_VERSION = "1.0"


def _shape(fn: Callable[..., Any]) -> str:
    """A signature as a script sees it: names, kinds and defaults (annotations are docs)."""
    sig = inspect.signature(fn)
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def _public(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


# ---- the surface, statically


def test_sdk_version_is_the_golden_one() -> None:
    assert SDK_VERSION == GOLDEN_SDK_VERSION
    assert picloud.sdk.SDK_VERSION == GOLDEN_SDK_VERSION


def test_sdk_exports() -> None:
    assert sorted(picloud.sdk.__all__) == ["Response", "kv", "log"]
    assert sorted(kv.__all__) == ["Collection", "collection"]


def test_kv_signatures() -> None:
    assert _shape(kv.collection) == "(name)"
    handle = kv.collection("widgets")
    assert _public(handle) == {"name", "get", "set", "has", "delete", "list", "incr"}
    assert handle.name == "widgets"
    assert {name: _shape(getattr(handle, name)) for name in sorted(_public(handle) - {"name"})} == {
        "delete": "(key)",
        "get": "(key)",
        "has": "(key)",
        "incr": "(key, by=1)",
        "list": "(prefix='', limit=100, cursor=None)",
        "set": "(key, value, ttl=None)",
    }


def test_log_signatures() -> None:
    methods = {"debug", "info", "warning", "warn", "error", "exception"}
    assert _public(log) == methods
    for name in methods:
        assert _shape(getattr(log, name)) == "(message, *args)", name


def test_response_signature() -> None:
    assert _shape(Response) == "(body=None, status=200, headers=None)"
    reply = Response("x", status=201, headers={"X-A": "1"})
    assert (reply.body, reply.status, reply.headers) == ("x", 201, {"X-A": "1"})


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: kv.collection(""), ValueError),
        (lambda: kv.collection("no spaces"), ValueError),
        (lambda: kv.collection("x" * 65), ValueError),
        (lambda: kv.collection(b"bytes"), TypeError),
        (lambda: kv.collection("w").get(""), ValueError),
        (lambda: kv.collection("w").get("k" * 513), ValueError),
        (lambda: kv.collection("w").has(1), TypeError),
        (lambda: kv.collection("w").set("k", object()), TypeError),
        (lambda: kv.collection("w").set("k", float("inf")), ValueError),
        (lambda: kv.collection("w").set("k", 1, ttl=0), ValueError),
        (lambda: kv.collection("w").set("k", 1, ttl="1"), TypeError),
        (lambda: kv.collection("w").list(limit=1001), ValueError),
        (lambda: kv.collection("w").list(prefix=None), TypeError),
        (lambda: kv.collection("w").list(cursor="not a cursor"), ValueError),
        (lambda: kv.collection("w").incr("k", by="1"), TypeError),
    ],
)
def test_wrong_use_fails_in_the_script_process(call: Callable[[], Any], error: type) -> None:
    """Checked before any round trip: these raise even with no daemon to talk to."""
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error


# ---- the contract, end to end in a real sandbox

CONTRACT = """
import base64, datetime, hashlib, hmac, json, math, random, re, secrets, time, uuid

from picloud.sdk import Response as R, kv as K, log as L

def handle(ctx):
    q = ctx["request"]["query"] if "request" in ctx else {}
    what = q.get("what", "ctx")
    if what == "ctx":
        req = ctx["request"]
        return {
            "keys": sorted(ctx),
            "request_keys": sorted(req),
            "sdk_version": ctx["sdk_version"],
            "ids": [ctx["app_id"], ctx["script_id"], bool(ctx["invocation_id"])],
            "types": {k: type(v).__name__ for k, v in ctx.items()},
            "request": {k: req[k] for k in ("method", "path", "tail", "query", "body", "json")},
            "header": req["headers"].get("x-test"),
            "globals": [kv is K, log is L, Response is R],
        }
    if what == "kv":
        w = kv.collection("contract")
        return {
            "set": w.set("k", {"v": [1, 2.5, "s", None, True]}),
            "get": w.get("k"),
            "get_missing": w.get("missing"),
            "has": w.has("k"),
            "incr": w.incr("n"),
            "list": w.list(),
            "list_page": w.list(limit=1)["cursor"] is not None,
            "delete": w.delete("k"),
            "delete_missing": w.delete("k"),
        }
    if what == "log":
        print("printed")
        log.info("hello %s", "world")
        return None
    returns = {
        "dict": {"a": 1}, "list": [1, 2], "int": 7, "float": 1.5, "bool": True,
        "none": None, "str": "text", "bytes": b"\\x00\\x01",
        "response": Response("made", status=201, headers={"X-Made": "yes"}),
    }
    if what in returns:
        return returns[what]
    if what == "raise":
        raise KeyError("boom")
    if what == "exit":
        import sys
        sys.exit(3)
    if what == "spin":
        while True:
            pass
    return {"unknown": what}
"""

RETURNS = {
    "dict": (200, "application/json", b'{"a":1}'),
    "list": (200, "application/json", b"[1,2]"),
    "int": (200, "application/json", b"7"),
    "float": (200, "application/json", b"1.5"),
    "bool": (200, "application/json", b"true"),
    "none": (204, None, b""),
    "str": (200, "text/plain", b"text"),
    "bytes": (200, "application/octet-stream", b"\x00\x01"),
    "response": (201, "text/plain", b"made"),
}


@pytest.fixture
async def contract(daemon: Daemon) -> Daemon:
    await daemon.make_app("home")
    await daemon.deploy("contract", CONTRACT, timeout_ms=500)
    return daemon


async def test_ctx_keys(contract: Daemon) -> None:
    resp = await contract.client.post(
        "/api/v1/execute/contract/a/b?what=ctx&x=1&x=2",
        data=b'{"j": 1}',
        headers={"X-Test": "yes"},
    )
    assert resp.status == 200, await resp.text()
    out = await resp.json()
    assert out["keys"] == [
        "app_id",
        "invocation_id",
        "is_dead_letter_handler",
        "request",
        "script_id",
        "sdk_version",
        "secrets",
    ]
    assert out["request_keys"] == ["body", "headers", "json", "method", "path", "query", "tail"]
    assert out["sdk_version"] == GOLDEN_SDK_VERSION
    assert out["ids"] == ["home", "contract", True]
    assert out["types"] == {
        "app_id": "str",
        "invocation_id": "str",
        "is_dead_letter_handler": "bool",
        "request": "dict",
        "script_id": "str",
        "sdk_version": "str",
        "secrets": "dict",
    }
    assert out["request"] == {
        "method": "POST",
        "path": "/api/v1/execute/contract/a/b",
        "tail": "/a/b",
        "query": {"what": "ctx", "x": "2"},
        "body": '{"j": 1}',
        "json": {"j": 1},
    }
    assert out["header"] == "yes"
    assert out["globals"] == [True, True, True]


async def test_kv_return_shapes(contract: Daemon) -> None:
    resp = await contract.client.get("/api/v1/execute/contract?what=kv")
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {
        "set": None,
        "get": {"v": [1, 2.5, "s", None, True]},
        "get_missing": None,
        "has": True,
        "incr": 1,
        "list": {
            "items": [
                {"key": "k", "value": {"v": [1, 2.5, "s", None, True]}},
                {"key": "n", "value": 1},
            ],
            "cursor": None,
        },
        "list_page": True,
        "delete": True,
        "delete_missing": False,
    }


async def test_return_value_mapping(contract: Daemon) -> None:
    for what, (status, ctype, body) in RETURNS.items():
        resp = await contract.client.get(f"/api/v1/execute/contract?what={what}")
        assert resp.status == status, (what, await resp.text())
        if ctype is not None:
            assert resp.content_type == ctype, what
        assert await resp.read() == body, what
    resp = await contract.client.get("/api/v1/execute/contract?what=response")
    assert resp.headers["X-Made"] == "yes"


async def test_failures_map_to_error_codes(contract: Daemon) -> None:
    for what, status, code in (
        ("raise", 500, "script_error"),
        ("exit", 500, "script_error"),
        ("spin", 504, "timeout"),
    ):
        resp = await contract.client.get(f"/api/v1/execute/contract?what={what}")
        assert resp.status == status, what
        body = json.loads(await resp.read())
        assert body["error"]["code"] == code, (what, body)
        assert "Traceback" not in body["error"]["message"]


async def test_log_and_print_are_captured(contract: Daemon) -> None:
    resp = await contract.client.get("/api/v1/execute/contract?what=log")
    assert resp.status == 204
    invocation = resp.headers["X-PiCloud-Invocation"]
    for _ in range(50):  # invocation records are written in batches
        resp = await contract.client.get(
            f"/api/v1/admin/invocations/{invocation}", headers=contract.headers
        )
        if resp.status != 404:
            break
        await asyncio.sleep(0.05)
    assert resp.status == 200
    record = await resp.json()
    assert "printed" in record["log"]
    assert "hello world" in record["log"]


ON_CHANGE = """
def handle(ctx):
    event = ctx["event"]
    seen = {
        "keys": sorted(ctx),
        "event_keys": sorted(event),
        "event": {k: event[k] for k in ("type", "op", "collection", "key", "value")},
        "at": event["at"],
        "is_dead_letter_handler": ctx["is_dead_letter_handler"],
    }
    kv.collection("seen").set(event["key"], seen)
"""


async def test_triggered_ctx_and_kv_event(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("on-change", ON_CHANGE, public=False)
    trigger = {"app": "home", "kind": "kv", "collection": "watched", "script": "on-change"}
    await daemon.call("POST", "/api/v1/admin/triggers", json=trigger, expect=201)
    await daemon.call(
        "PUT", "/api/v1/admin/apps/home/kv/watched/k1", json={"value": {"n": 1}}, expect=200
    )
    for _ in range(100):
        resp = await daemon.client.get("/api/v1/admin/apps/home/kv/seen/k1", headers=daemon.headers)
        if resp.status == 200:
            break
        await asyncio.sleep(0.05)
    assert resp.status == 200, await resp.text()
    seen = (await resp.json())["value"]
    assert seen["keys"] == [
        "app_id",
        "event",
        "invocation_id",
        "is_dead_letter_handler",
        "script_id",
        "sdk_version",
        "secrets",
    ]
    assert seen["event_keys"] == ["at", "collection", "key", "op", "type", "value"]
    assert seen["event"] == {
        "type": "kv",
        "op": "insert",
        "collection": "watched",
        "key": "k1",
        "value": {"n": 1},
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", seen["at"]), seen["at"]
    assert seen["is_dead_letter_handler"] is False
