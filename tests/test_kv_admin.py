"""Admin KV routes on the real daemon: browse, edit, keys in URLs, errors, triggers, TTL purge."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from urllib.parse import quote

import pytest

from picloud.kv import KV
from tests.conftest import Daemon

BASE = "/api/v1/admin/apps/home/kv"


def _url(collection: str, key: str) -> str:
    return f"{BASE}/{collection}/{quote(key, safe='')}"


@pytest.fixture
async def home(daemon: Daemon) -> Daemon:
    await daemon.make_app("home")
    return daemon


async def test_put_get_delete(home: Daemon) -> None:
    put = await home.call("PUT", _url("w", "k"), json={"value": {"n": 1}}, expect=200)
    assert put == {"key": "k", "value": {"n": 1}, "op": "insert"}
    put = await home.call("PUT", _url("w", "k"), json={"value": [1, "é"]}, expect=200)
    assert put["op"] == "update"
    assert await home.call("GET", _url("w", "k"), expect=200) == {"key": "k", "value": [1, "é"]}
    await home.call("DELETE", _url("w", "k"), expect=204)
    missing = await home.call("GET", _url("w", "k"), expect=404)
    assert missing["error"]["code"] == "not_found"
    assert (await home.call("DELETE", _url("w", "k"), expect=404))["error"]["code"] == "not_found"


async def test_null_and_falsy_values(home: Daemon) -> None:
    for value in (None, 0, False, "", [], {}):
        await home.call("PUT", _url("w", "k"), json={"value": value}, expect=200)
        assert (await home.call("GET", _url("w", "k"), expect=200))["value"] == value


KEYS = ["with space", "ünï©ødé ✓", "a/b", "/lead", "trail/", "a//b", "50%", "q?x=1#f", "😀"]


async def test_keys_with_any_characters(home: Daemon) -> None:
    for key in KEYS:
        await home.call("PUT", _url("w", key), json={"value": key}, expect=200)
        assert await home.call("GET", _url("w", key), expect=200) == {"key": key, "value": key}
    page = await home.call("GET", f"{BASE}/w", expect=200)
    assert page["items"] == [{"key": k, "value": k} for k in sorted(KEYS, key=str.encode)]
    for key in KEYS:
        await home.call("DELETE", _url("w", key), expect=204)


async def test_a_raw_slash_in_the_key_works_too(home: Daemon) -> None:
    await home.call("PUT", f"{BASE}/w/dir/file", json={"value": 1}, expect=200)
    assert await home.call("GET", _url("w", "dir/file"), expect=200) == {
        "key": "dir/file",
        "value": 1,
    }


async def test_browse_pages_like_the_sdk(home: Daemon) -> None:
    for n in range(12):
        await home.call("PUT", _url("w", f"item:{n:02}"), json={"value": n}, expect=200)
    await home.call("PUT", _url("w", "other"), json={"value": 0}, expect=200)
    seen, cursor = [], ""
    while True:
        page = await home.call(
            "GET", f"{BASE}/w", params={"prefix": "item:", "limit": "5", "cursor": cursor}
        )
        seen += page["items"]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == [{"key": f"item:{n:02}", "value": n} for n in range(12)]
    # The same service: the cursor is tied to its prefix here too.
    first = await home.call("GET", f"{BASE}/w", params={"prefix": "item:", "limit": "5"})
    wrong = await home.call(
        "GET", f"{BASE}/w", params={"prefix": "x", "cursor": first["cursor"]}, expect=400
    )
    assert "another listing" in wrong["error"]["message"]


async def test_collections_with_counts(home: Daemon) -> None:
    for collection, n in (("b", 2), ("a", 3), ("c.d", 1)):
        for i in range(n):
            await home.call("PUT", _url(collection, f"k{i}"), json={"value": i}, expect=200)
    body = await home.call("GET", BASE, expect=200)
    assert body["items"] == [
        {"collection": "a", "count": 3},
        {"collection": "b", "count": 2},
        {"collection": "c.d", "count": 1},
    ]
    assert body["cursor"] is None
    assert body["usage_bytes"] == 6 * 3
    assert body["quota_bytes"] == home.settings.kv_app_quota_bytes
    page = await home.call("GET", BASE, params={"limit": "2"}, expect=200)
    assert [c["collection"] for c in page["items"]] == ["a", "b"]
    rest = await home.call("GET", BASE, params={"cursor": page["cursor"]}, expect=200)
    assert [c["collection"] for c in rest["items"]] == ["c.d"]


async def test_unknown_app_is_404(home: Daemon) -> None:
    for method, path in (
        ("GET", "/api/v1/admin/apps/ghost/kv"),
        ("GET", "/api/v1/admin/apps/ghost/kv/w"),
        ("GET", "/api/v1/admin/apps/ghost/kv/w/k"),
        ("DELETE", "/api/v1/admin/apps/ghost/kv/w/k"),
    ):
        body = await home.call(method, path, expect=404)
        assert body["error"]["code"] == "not_found"
    body = await home.call("PUT", "/api/v1/admin/apps/ghost/kv/w/k", json={"value": 1}, expect=404)
    assert "ghost" in body["error"]["message"]


BAD_PUTS = [
    (f"{BASE}/bad!name/k", {"value": 1}),
    (f"{BASE}/w/{'k' * 513}", {"value": 1}),
    (f"{BASE}/w/k", {}),
    (f"{BASE}/w/k", {"value": 1, "extra": 2}),
    (f"{BASE}/w/k", {"value": 1, "ttl": -1}),
    (f"{BASE}/w/k", {"value": 1, "ttl": "soon"}),
    (f"{BASE}/w/k", [1]),
]


async def test_bad_input_is_400(home: Daemon) -> None:
    for path, body in BAD_PUTS:
        resp = await home.call("PUT", path, json=body, expect=400)
        assert resp["error"]["code"] == "bad_request", (path, body)
    assert (await home.call("GET", f"{BASE}/w"))["items"] == []


async def test_bad_query_is_400(home: Daemon) -> None:
    for params in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"cursor": "%%%"}):
        resp = await home.call("GET", f"{BASE}/w", params=params, expect=400)
        assert resp["error"]["code"] == "bad_request"
    resp = await home.call("GET", f"{BASE}/bad!name", expect=400)
    assert resp["error"]["code"] == "bad_request"
    resp = await home.call("GET", BASE, params={"cursor": "%%%"}, expect=400)
    assert resp["error"]["code"] == "bad_request"


async def test_not_json_bodies_are_400(home: Daemon) -> None:
    for data in (b"{", b"NaN", b'{"value": NaN}'):
        resp = await home.call("PUT", _url("w", "k"), data=data, expect=400)
        assert resp["error"]["code"] == "bad_request"


async def test_value_too_large_is_413_and_quota_409(home: Daemon) -> None:
    kv = home.client.server.app[KV]
    limit = home.settings.kv_max_value_bytes
    big = "x" * (limit - 2)  # exactly at the limit once quoted
    await home.call("PUT", _url("w", "big"), json={"value": big}, expect=200)
    assert (await home.call("GET", _url("w", "big"), expect=200))["value"] == big
    resp = await home.call("PUT", _url("w", "big"), json={"value": big + "x"}, expect=413)
    assert resp["error"]["code"] == "payload_too_large"
    kv.quota_bytes = await kv.usage("home") + 10  # type: ignore[attr-defined]
    resp = await home.call("PUT", _url("w", "more"), json={"value": "x" * 20}, expect=409)
    assert resp["error"]["code"] == "conflict"
    assert "quota exceeded" in resp["error"]["message"]
    await home.call("PUT", _url("w", "s"), json={"value": 1}, expect=200)


async def test_ttl_through_the_admin_api_and_background_purge(home: Daemon) -> None:
    kv = home.client.server.app[KV]
    await home.call("PUT", _url("w", "t"), json={"value": 1, "ttl": 0.5}, expect=200)
    assert (await home.call("GET", _url("w", "t"), expect=200))["value"] == 1
    await asyncio.sleep(0.6)
    await home.call("GET", _url("w", "t"), expect=404)
    assert (await home.call("GET", f"{BASE}/w"))["items"] == []
    # The kv-purge task (every second) gives the space back without any call.
    for _ in range(40):
        if await kv.usage("home") == 0:
            break
        await asyncio.sleep(0.1)
    assert await kv.usage("home") == 0


async def test_admin_changes_fire_triggers_like_sdk_changes(home: Daemon) -> None:
    # A handler that always fails, so its events stay in the outbox (retrying) to be read.
    await home.deploy("on-w", "def handle(ctx):\n    raise RuntimeError('keep')\n")
    trigger = {"app": "home", "kind": "kv", "collection": "w", "script": "on-w"}
    await home.call("POST", "/api/v1/admin/triggers", json=trigger, expect=201)
    await home.call("PUT", _url("w", "k"), json={"value": 1}, expect=200)
    await home.call("PUT", _url("w", "k"), json={"value": 2}, expect=200)
    await home.call("DELETE", _url("w", "k"), expect=204)
    await home.call("PUT", _url("other", "k"), json={"value": 1}, expect=200)
    conn = sqlite3.connect(home.settings.db_path)
    rows = conn.execute("SELECT payload, depth FROM events ORDER BY id").fetchall()
    conn.close()
    events = [(json.loads(p), depth) for p, depth in rows]
    assert [(e["op"], e["collection"], e["key"], e["value"], d) for e, d in events] == [
        ("insert", "w", "k", 1, 0),
        ("update", "w", "k", 2, 0),
        ("delete", "w", "k", None, 0),
    ]


async def test_largest_page_of_collections_is_not_a_server_error(home: Daemon) -> None:
    await home.call("PUT", _url("c1", "k"), json={"value": 1}, expect=200)
    body = await home.call("GET", "/api/v1/admin/apps/home/kv?limit=1000", expect=200)
    assert [c["collection"] for c in body["items"]] == ["c1"]
    await home.call("GET", "/api/v1/admin/apps/home/kv?limit=1001", expect=400)
