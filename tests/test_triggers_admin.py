"""The trigger admin API: create, validate, list, change, enable/disable, delete."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Daemon

T = "/api/v1/admin/triggers"
SRC = "def handle(ctx):\n    return None\n"


@pytest.fixture
async def home(daemon: Daemon) -> Daemon:
    await daemon.make_app("home")
    await daemon.make_app("other")
    await daemon.deploy("on-widget", SRC)
    await daemon.deploy("dl", SRC)
    await daemon.deploy("foreign", SRC, app="other")
    return daemon


def kv_body(**extra: Any) -> dict[str, Any]:
    return {"app": "home", "kind": "kv", "collection": "widgets", "script": "on-widget", **extra}


async def test_create_kv_trigger_with_defaults(home: Daemon) -> None:
    body = kv_body(dead_letter_script="dl")
    t = await home.call("POST", T, json=body, expect=201)
    assert t["id"].startswith("trg_")
    assert t["kind"] == "kv"
    assert t["app"] == "home"
    assert t["collection"] == "widgets"
    assert t["ops"] == ["insert", "update", "delete"]
    assert t["script"] == "on-widget"
    assert t["dead_letter_script"] == "dl"
    assert (t["max_attempts"], t["backoff_base_ms"], t["backoff_max_ms"]) == (3, 1000, 300000)
    assert t["enabled"] is True
    assert (t["pending"], t["retrying"], t["dead"]) == (0, 0, 0)
    got = await home.call("GET", f"{T}/{t['id']}", expect=200)
    assert got == t


async def test_create_cron_trigger(home: Daemon) -> None:
    body = {"app": "home", "kind": "cron", "schedule": "*/5 * * * *", "script": "on-widget"}
    t = await home.call("POST", T, json={**body, "timezone": "Europe/Berlin"}, expect=201)
    assert t["schedule"] == "*/5 * * * *"
    assert t["timezone"] == "Europe/Berlin"
    assert t["skipped_runs"] == 0
    assert t["next_run_at"] is not None
    assert "collection" not in t


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (kv_body(script="foreign"), 400),  # script of another app
        (kv_body(dead_letter_script="foreign"), 400),
        (kv_body(script="missing"), 400),
        (kv_body(script="Bad Id"), 400),
        (kv_body(collection="no spaces"), 400),
        (kv_body(collection=""), 400),
        (kv_body(ops=["insert", "upsert"]), 400),
        (kv_body(ops=[]), 400),
        (kv_body(ops="insert"), 400),
        (kv_body(ops=["insert", "insert"]), 400),
        (kv_body(max_attempts=0), 400),
        (kv_body(max_attempts="3"), 400),
        (kv_body(backoff_base_ms=5000, backoff_max_ms=1000), 400),
        (kv_body(backoff_base_ms=-1), 400),
        (kv_body(schedule="* * * * *"), 400),  # a cron field on a kv trigger
        (kv_body(surprise=1), 400),
        (kv_body(enabled="yes"), 400),
        (kv_body(app="nope"), 404),
        ({"app": "home", "kind": "queue", "script": "on-widget"}, 400),
        ({"app": "home", "kind": "cron", "script": "on-widget"}, 400),
        ({"app": "home", "kind": "cron", "schedule": "* * * *", "script": "on-widget"}, 400),
        ({"app": "home", "kind": "cron", "schedule": "61 * * * *", "script": "on-widget"}, 400),
        ({"app": "home", "kind": "cron", "schedule": "* * * * * *", "script": "on-widget"}, 400),
        ({"app": "home", "kind": "cron", "schedule": 5, "script": "on-widget"}, 400),
        (
            {
                "app": "home",
                "kind": "cron",
                "schedule": "* * * * *",
                "timezone": "Mars/Olympus",
                "script": "on-widget",
            },
            400,
        ),
    ],
)
async def test_bad_trigger_bodies_are_refused(
    home: Daemon, body: dict[str, Any], status: int
) -> None:
    err = await home.call("POST", T, json=body, expect=status)
    assert set(err["error"]) == {"code", "message"}
    listed = await home.call("GET", T, expect=200)
    assert listed["items"] == []


async def test_non_object_and_malformed_bodies(home: Daemon) -> None:
    for raw in (b"[1]", b"{nope", b'"text"'):
        err = await home.call("POST", T, data=raw, expect=400)
        assert err["error"]["code"] == "bad_request"


async def test_list_filters_by_app_and_pages(home: Daemon) -> None:
    await home.deploy("f2", SRC, app="other")
    ids = [(await home.call("POST", T, json=kv_body(), expect=201))["id"] for _ in range(3)]
    other = {"app": "other", "kind": "kv", "collection": "c", "script": "f2"}
    await home.call("POST", T, json=other, expect=201)
    first = await home.call("GET", f"{T}?app=home&limit=2", expect=200)
    assert [t["id"] for t in first["items"]] == ids[:2]
    assert first["cursor"]
    rest = await home.call("GET", f"{T}?app=home&limit=2&cursor={first['cursor']}", expect=200)
    assert [t["id"] for t in rest["items"]] == ids[2:]
    assert rest["cursor"] is None
    assert len((await home.call("GET", T, expect=200))["items"]) == 4
    await home.call("GET", f"{T}?app=ghost", expect=404)
    await home.call("GET", f"{T}?limit=0", expect=400)
    await home.call("GET", f"{T}?cursor=_w", expect=400)


async def test_patch_enable_disable_and_policy(home: Daemon) -> None:
    t = await home.call("POST", T, json=kv_body(), expect=201)
    off = await home.call("PATCH", f"{T}/{t['id']}", json={"enabled": False}, expect=200)
    assert off["enabled"] is False
    changed = await home.call(
        "PATCH",
        f"{T}/{t['id']}",
        json={"enabled": True, "max_attempts": 5, "ops": ["delete"], "dead_letter_script": "dl"},
        expect=200,
    )
    assert changed["enabled"] is True
    assert changed["max_attempts"] == 5
    assert changed["ops"] == ["delete"]
    assert changed["dead_letter_script"] == "dl"
    cleared = await home.call(
        "PATCH", f"{T}/{t['id']}", json={"dead_letter_script": None}, expect=200
    )
    assert cleared["dead_letter_script"] is None
    for bad in ({"schedule": "* * * * *"}, {"app": "other"}, {"script": "foreign"}, {"kind": "x"}):
        await home.call("PATCH", f"{T}/{t['id']}", json=bad, expect=400)
    await home.call("PATCH", f"{T}/trg_missing", json={"enabled": False}, expect=404)


async def test_delete_trigger(home: Daemon) -> None:
    t = await home.call("POST", T, json=kv_body(), expect=201)
    await home.call("DELETE", f"{T}/{t['id']}", expect=204)
    await home.call("GET", f"{T}/{t['id']}", expect=404)
    await home.call("DELETE", f"{T}/{t['id']}", expect=404)


async def test_triggers_need_the_admin_token(home: Daemon) -> None:
    resp = await home.client.get(T)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"
