"""Admin API: apps, their API keys and secrets, against the real daemon."""

from __future__ import annotations

import hashlib
import sqlite3

from tests.conftest import Daemon

APPS = "/api/v1/admin/apps"


async def test_create_get_list_delete_app(daemon: Daemon) -> None:
    created = await daemon.call("POST", APPS, json={"id": "home"}, expect=201)
    assert created["id"] == "home"
    assert created["created_at"].endswith("Z")
    assert (await daemon.call("GET", f"{APPS}/home", expect=200))["id"] == "home"
    listed = await daemon.call("GET", APPS, expect=200)
    assert [a["id"] for a in listed["items"]] == ["home"]
    assert listed["cursor"] is None
    await daemon.call("DELETE", f"{APPS}/home", expect=204)
    body = await daemon.call("GET", f"{APPS}/home", expect=404)
    assert body["error"]["code"] == "not_found"
    assert "home" in body["error"]["message"]


async def test_duplicate_app_is_conflict(daemon: Daemon) -> None:
    await daemon.make_app("home")
    body = await daemon.call("POST", APPS, json={"id": "home"}, expect=409)
    assert body == {"error": {"code": "conflict", "message": "app 'home' already exists"}}


async def test_app_list_paginates_with_cursor(daemon: Daemon) -> None:
    ids = [f"app-{n:02d}" for n in range(7)]
    for app_id in reversed(ids):
        await daemon.make_app(app_id)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        got = await daemon.call("GET", APPS, params=query, expect=200)
        assert len(got["items"]) <= 3
        seen += [a["id"] for a in got["items"]]
        cursor = got["cursor"]
        if cursor is None:
            break
    assert seen == ids


async def test_delete_unknown_app_is_404(daemon: Daemon) -> None:
    body = await daemon.call("DELETE", f"{APPS}/nope", expect=404)
    assert body["error"]["code"] == "not_found"


async def test_deleting_an_app_removes_everything_it_owns(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.make_app("other")
    await daemon.deploy("hello", "def handle(ctx):\n    return 1\n", app="home")
    await daemon.deploy("keep", "def handle(ctx):\n    return 1\n", app="other")
    await daemon.call("POST", f"{APPS}/home/keys", json={}, expect=201)
    await daemon.call("PUT", f"{APPS}/home/secrets/TOKEN", json={"value": "x"}, expect=200)
    await daemon.call("PUT", f"{APPS}/home/kv/c/k", json={"value": {"n": 1}}, expect=200)
    got = await daemon.call("GET", f"{APPS}/home", expect=200)
    assert (got["scripts"], got["keys"], got["secrets"]) == (1, 1, 1)
    assert got["kv_bytes"] > 0
    await daemon.call("DELETE", f"{APPS}/home", expect=204)
    await daemon.call("GET", "/api/v1/admin/scripts/hello", expect=404)
    await daemon.call("GET", "/api/v1/admin/scripts/keep", expect=200)
    with sqlite3.connect(daemon.settings.db_path) as conn:
        for table in ("api_keys", "secrets", "scripts", "script_versions", "kv", "kv_usage"):
            rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert rows == (1 if table in ("scripts", "script_versions") else 0), table
    # The id is free again, and the new app starts empty.
    await daemon.make_app("home")
    keys = await daemon.call("GET", f"{APPS}/home/keys", expect=200)
    assert keys["items"] == []


async def test_key_is_shown_once_and_stored_as_hash(daemon: Daemon) -> None:
    await daemon.make_app("home")
    created = await daemon.call("POST", f"{APPS}/home/keys", json={}, expect=201)
    key = created["key"]
    assert key.startswith("pc_key_")
    assert len(key) > 40
    assert key.startswith(created["prefix"])
    assert len(created["prefix"]) < 20
    listed = await daemon.call("GET", f"{APPS}/home/keys", expect=200)
    assert [k["id"] for k in listed["items"]] == [created["id"]]
    assert "key" not in listed["items"][0]
    assert key not in str(listed)
    assert listed["items"][0]["last_used_at"] is None
    with sqlite3.connect(daemon.settings.db_path) as conn:
        (stored,) = conn.execute("SELECT hash FROM api_keys").fetchone()
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    raw = daemon.settings.db_path.read_bytes()
    assert key.encode() not in raw


async def test_key_without_body_and_revocation(daemon: Daemon) -> None:
    await daemon.make_app("home")
    created = await daemon.call("POST", f"{APPS}/home/keys", expect=201)
    await daemon.call("DELETE", f"{APPS}/home/keys/{created['id']}", expect=204)
    assert (await daemon.call("GET", f"{APPS}/home/keys", expect=200))["items"] == []
    body = await daemon.call("DELETE", f"{APPS}/home/keys/{created['id']}", expect=404)
    assert body["error"]["code"] == "not_found"


async def test_key_of_another_app_cannot_be_revoked_through_this_one(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.make_app("other")
    created = await daemon.call("POST", f"{APPS}/other/keys", json={}, expect=201)
    await daemon.call("DELETE", f"{APPS}/home/keys/{created['id']}", expect=404)
    listed = await daemon.call("GET", f"{APPS}/other/keys", expect=200)
    assert len(listed["items"]) == 1


async def test_keys_of_unknown_app_are_404(daemon: Daemon) -> None:
    await daemon.call("POST", f"{APPS}/nope/keys", json={}, expect=404)
    await daemon.call("GET", f"{APPS}/nope/keys", expect=404)


async def test_secrets_set_list_names_replace_delete(daemon: Daemon) -> None:
    await daemon.make_app("home")
    put = await daemon.call("PUT", f"{APPS}/home/secrets/API_TOKEN", json={"value": "s1"})
    assert put == {"name": "API_TOKEN", "created": True}
    again = await daemon.call("PUT", f"{APPS}/home/secrets/API_TOKEN", json={"value": "s2"})
    assert again["created"] is False
    await daemon.call("PUT", f"{APPS}/home/secrets/B", json={"value": ""}, expect=200)
    listed = await daemon.call("GET", f"{APPS}/home/secrets", expect=200)
    assert [s["name"] for s in listed["items"]] == ["API_TOKEN", "B"]
    assert "s2" not in str(listed)
    with sqlite3.connect(daemon.settings.db_path) as conn:
        value = conn.execute("SELECT value FROM secrets WHERE name = 'API_TOKEN'").fetchone()
    assert value == ("s2",)
    await daemon.call("DELETE", f"{APPS}/home/secrets/API_TOKEN", expect=204)
    await daemon.call("DELETE", f"{APPS}/home/secrets/API_TOKEN", expect=404)
    listed = await daemon.call("GET", f"{APPS}/home/secrets", expect=200)
    assert [s["name"] for s in listed["items"]] == ["B"]


async def test_secret_bad_name_and_value(daemon: Daemon) -> None:
    await daemon.make_app("home")
    for name in ("1abc", "a-b", "a.b", "x" * 200):
        body = await daemon.call("PUT", f"{APPS}/home/secrets/{name}", json={"value": "v"})
        assert body["error"]["code"] == "bad_request", name
    for value in (1, None, ["x"], {"a": 1}):
        body = await daemon.call("PUT", f"{APPS}/home/secrets/A", json={"value": value})
        assert body["error"]["code"] == "bad_request", value
    body = await daemon.call("PUT", f"{APPS}/home/secrets/A", json={}, expect=400)
    assert "value" in body["error"]["message"]
    big = {"value": "x" * (64 * 1024 + 1)}
    body = await daemon.call("PUT", f"{APPS}/home/secrets/A", json=big, expect=413)
    assert body["error"]["code"] == "payload_too_large"
    await daemon.call("PUT", f"{APPS}/nope/secrets/A", json={"value": "v"}, expect=404)
    lone = b'{"value": "\\ud800"}'
    body = await daemon.call("PUT", f"{APPS}/home/secrets/A", data=lone, expect=400)
    assert "surrogate" in body["error"]["message"]
    listed = await daemon.call("GET", f"{APPS}/home/secrets", expect=200)
    assert listed["items"] == []


async def test_a_key_calls_private_scripts_of_its_app_until_revoked(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.make_app("other")
    source = "def handle(ctx):\n    return {'secret': ctx['secrets'].get('S')}\n"
    await daemon.deploy("private", source, app="home", public=False)
    await daemon.call("PUT", f"{APPS}/home/secrets/S", json={"value": "v1"}, expect=200)
    key = await daemon.call("POST", f"{APPS}/home/keys", json={}, expect=201)
    foreign = (await daemon.call("POST", f"{APPS}/other/keys", json={}, expect=201))["key"]
    url = "/api/v1/execute/private"
    resp = await daemon.client.get(url, headers={"Authorization": f"Bearer {key['key']}"})
    assert resp.status == 200
    assert await resp.json() == {"secret": "v1"}
    resp = await daemon.client.get(url, headers={"X-PiCloud-Key": key["key"]})
    assert resp.status == 200
    for bad in (foreign, key["prefix"], "", "pc_key_x"):
        resp = await daemon.client.get(url, headers={"X-PiCloud-Key": bad})
        assert resp.status == 401, bad
    await daemon.call("DELETE", f"{APPS}/home/keys/{key['id']}", expect=204)
    resp = await daemon.client.get(url, headers={"X-PiCloud-Key": key["key"]})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_a_recreated_app_never_meets_the_old_apps_warm_worker(daemon: Daemon) -> None:
    source = (
        "import os\nSEEN = []\n"
        "def handle(ctx):\n    SEEN.append(1)\n    return {'pid': os.getpid(), 'runs': len(SEEN)}\n"
    )
    await daemon.make_app("home")
    await daemon.deploy("pid", source)
    first = await daemon.call("GET", "/api/v1/execute/pid", expect=200)
    await daemon.call("DELETE", "/api/v1/admin/apps/home", expect=204)
    await daemon.make_app("home")
    await daemon.deploy("pid", source)
    second = await daemon.call("GET", "/api/v1/execute/pid", expect=200)
    assert second["runs"] == 1
    assert second["pid"] != first["pid"]
